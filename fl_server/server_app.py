"""Flower ServerApp: config in, strategy from config, rounds out (``@app.main``).

The run folder, resume, evaluation and checkpoints are ``fl_server.session``'s; the
strategy is ``fl_server.strategies``'; the config is parsed by ``fl_server.config``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, UserConfig
from flwr.serverapp import Grid, ServerApp

from fl_server.config import from_run_config, to_run_config
from fl_server.grid import PollingGrid
from fl_server.pulls import quick_object_pulls
from fl_server.session import FederationSession
from fl_server.strategies import make_strategy

log = logging.getLogger(__name__)


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _log_to(out: Path) -> list[logging.Handler]:
    """Mirror this package's and Flower's logs into ``<out>/server.log``.

    Under ``flwr run`` nobody configured logging in the ServerApp's process, so
    this package's progress (waiting for nodes, the run folder) would be dropped:
    it then also goes to stderr, which ``flwr run --stream`` shows.
    """
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "server.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    for name in ("fl_server", "flwr"):
        logging.getLogger(name).addHandler(handler)
    ours = logging.getLogger("fl_server")
    ours.setLevel(logging.DEBUG if os.environ.get("FRL_DEBUG") else logging.INFO)
    handlers: list[logging.Handler] = [handler]
    if not logging.getLogger().handlers:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter(FORMAT))
        ours.addHandler(console)
        handlers.append(console)
    return handlers


def make_app(run_config: UserConfig | None = None) -> ServerApp:
    """The ServerApp; ``run_config`` replaces ``context.run_config`` when given.

    In-process ``run_simulation`` hands the app an empty run config, so the Simulation
    Engine binds the flattened config here; ``flwr run`` leaves it None.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = from_run_config(context.run_config if run_config is None else run_config)
        fed = cfg.federation
        out = Path(fed.output_dir or f"outputs/federation/run-{context.run_id}")
        handlers = _log_to(out)
        log.info("run folder: %s", out.resolve())
        try:
            session = FederationSession(cfg, to_run_config(cfg), out, context.run_id)
            if session.finished():
                log.info("%s: all %d rounds are complete already", out, fed.rounds)
                return
            strategy = make_strategy(cfg, session)
            _quick_reply_pulls(grid)
            polling = PollingGrid(grid, cfg.engine.server_poll_s)
            session.directory.grid = polling  # names the node behind an error reply
            _wait_for_nodes(
                polling, session.regions, fed.min_nodes, fed.round_timeout_s
            )
            session.directory.refresh(polling, fed.round_timeout_s)
            strategy.start(
                grid=polling,
                initial_arrays=session.initial_arrays,
                num_rounds=session.remaining,
                timeout=fed.round_timeout_s,
                train_config=ConfigRecord({"local-steps": fed.local_steps}),
                evaluate_config=ConfigRecord(),
                evaluate_fn=session.end_of_round,
            )
            log.info("federation finished: %s", out)
        finally:
            for handler in handlers:
                for name in ("fl_server", "flwr"):
                    logging.getLogger(name).removeHandler(handler)
                handler.close()

    return app


def _quick_reply_pulls(grid: Grid) -> None:
    """Deployment Engine: reply objects pulled without Flower's 1 s first backoff."""
    from flwr.superlink.grid import http_grid

    if isinstance(grid, http_grid.HttpGrid):
        quick_object_pulls(http_grid)


def _wait_for_nodes(
    grid: Grid, regions: list[str], least: int, timeout: float, every: float = 5.0
) -> None:
    """Wait until every region's SuperNode is connected, saying so every few seconds.

    At ``timeout`` the federation starts with the nodes it has if they are at least
    ``least`` (``federation.min_nodes``); with fewer it fails, naming both settings.
    """
    wanted = len(regions)
    started = time.monotonic()
    next_report = started
    while (connected := len(list(grid.get_node_ids()))) < wanted:
        waited = time.monotonic() - started
        if waited >= timeout:
            if connected >= least:
                log.warning(
                    "starting with %d of %d SuperNodes after %.0f s "
                    "(federation.min_nodes=%d): regions without a node sit out",
                    connected,
                    wanted,
                    waited,
                    least,
                )
                return
            raise TimeoutError(
                f"federation: {connected} of {wanted} SuperNodes connected after "
                f"{timeout:.0f} s (federation.round_timeout_s); needs one per region "
                f"of federation.regions {regions}, at least federation.min_nodes="
                f"{least}. Start more SuperNodes, or for Flower's local simulation "
                f"set `flwr federation simulation-config --num-supernodes {wanted}`, "
                "or list fewer regions"
            )
        if time.monotonic() >= next_report:
            log.info(
                "waiting for SuperNodes: %d of %d connected (one per region of %s; "
                "federation.min_nodes=%d), %.0f s left of federation.round_timeout_s",
                connected,
                wanted,
                ", ".join(regions),
                least,
                timeout - waited,
            )
            next_report += every
        time.sleep(0.5)


app = make_app()
