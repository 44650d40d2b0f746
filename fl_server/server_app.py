"""Flower ServerApp: config in, strategy from config, rounds out (``@app.main``).

The run folder, resume, evaluation and checkpoints are ``fl_server.session``'s; the
strategy is ``fl_server.strategies``'; the config is parsed by ``fl_server.config``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, UserConfig
from flwr.serverapp import Grid, ServerApp

from fl_server.config import from_run_config, to_run_config
from fl_server.grid import PollingGrid
from fl_server.session import FederationSession
from fl_server.strategies import make_strategy

log = logging.getLogger(__name__)


def _log_to(out: Path) -> logging.Handler:
    """Mirror this package's and Flower's logs into ``<out>/server.log``."""
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "server.log", encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for name in ("fl_server", "flwr"):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("fl_server").setLevel(logging.INFO)
    return handler


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
        handler = _log_to(out)
        try:
            session = FederationSession(cfg, to_run_config(cfg), out, context.run_id)
            if session.finished():
                log.info("%s: all %d rounds are complete already", out, fed.rounds)
                return
            strategy = make_strategy(cfg, session)
            polling = PollingGrid(grid)
            session.directory.grid = polling  # names the node behind an error reply
            _wait_for_nodes(
                polling, len(session.regions), fed.min_nodes, fed.round_timeout_s
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
            for name in ("fl_server", "flwr"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()

    return app


def _wait_for_nodes(grid: Grid, wanted: int, least: int, timeout: float) -> None:
    """Wait until every region's node is connected (or ``least`` at the timeout)."""
    deadline = time.monotonic() + timeout
    while (connected := len(list(grid.get_node_ids()))) < wanted:
        if time.monotonic() > deadline:
            if connected >= least:
                log.warning("starting with %d of %d nodes", connected, wanted)
                return
            raise TimeoutError(
                f"federation: {connected} of {wanted} nodes connected after "
                f"{timeout:.0f} s (federation.min_nodes={least})"
            )
        time.sleep(0.5)


app = make_app()
