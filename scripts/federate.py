"""Run a federation: ``python -m scripts.federate [hydra overrides]``.

``engine=simulation`` (default) runs the apps on Flower's Simulation Engine in this
process: one virtual SuperNode per region (Ray). ``engine=deployment`` runs them for
real on loopback (:mod:`fl_server.launch.deployment`): ``flower-superlink`` and one
``flower-supernode`` per region on free 127.0.0.1 ports, the run submitted with
``flwr run``, its logs streamed, every process stopped by PID at the end (also on
Ctrl-C or failure). ``engine.tls=true`` serves the SuperLink over TLS with
certificates generated into the run folder; ``engine.node_auth=true`` admits only
SuperNodes whose EC keys were registered (``flwr supernode register``).

Everything lands in the run folder (``federation.output_dir`` or Hydra's): metrics,
checkpoints, ``run_config.toml`` (the flattened config, what ``flwr run`` received),
Flower's home (``flwr/``), certificates and keys (``tls/``, ``keys/``) and every
process's log (``logs/``). Examples::

    python -m scripts.federate strategy=fedprox federation.rounds=10
    python -m scripts.federate engine=deployment engine.tls=true engine.node_auth=true
    python -m scripts.federate -m strategy=fedavg,fedprox,local,centralized
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import conf.schema  # noqa: F401  (registers the typed schema)
from conf.schema import EngineName, RunConfig
from fl_server.config import regions_of, to_run_config
from fl_server.launch import FLWR_ENV, prepare, run_deployment_engine, summary

log = logging.getLogger("federate")


def run(cfg: RunConfig, out: Path) -> Path:
    """Run the federation on ``cfg.engine`` into ``out``; returns the run folder."""
    cfg = prepare(cfg, out)
    folder = Path(cfg.federation.output_dir)
    log.info(
        "%s federation: %s, %d regions, %d rounds x %d local steps -> %s",
        cfg.engine.name.name,
        cfg.strategy.name.name,
        len(regions_of(cfg)),
        cfg.federation.rounds,
        cfg.federation.local_steps,
        folder,
    )
    if cfg.engine.name == EngineName.simulation:
        run_simulation_engine(cfg)
    else:
        run_deployment_engine(cfg)
    return folder


def run_simulation_engine(cfg: RunConfig) -> None:
    """Flower's Simulation Engine in-process: one virtual SuperNode per region.

    ``run_simulation`` gives the apps an empty run config, so the flattened config is
    bound into both apps (the same keys ``flwr run --run-config`` would carry).
    """
    from flwr.simulation import run_simulation

    from fl_clients.client_app import make_app as make_client_app
    from fl_server.server_app import make_app as make_server_app

    flat = to_run_config(cfg)
    cpus = cfg.engine.ray_cpus or os.cpu_count() or 1
    os.environ.update(FLWR_ENV)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray starts its workers at nice 15 (its default ``worker_niceness``): beside any
    # CPU-bound process at nice 0 the clients then get a few per cent of a core and
    # a round seems to stall (measured: 2 s of CPU in 8 min). The clients are the
    # federation's work, so they run at the launcher's priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Flower inside Ray's actors (imported there, after this): errors only; a failed
    # client also comes back to the server as an error reply, which it logs.
    os.environ.setdefault("FLWR_LOG_LEVEL", "ERROR")
    os.environ["FLWR_HOME"] = str(Path(cfg.federation.output_dir) / "flwr")
    run_simulation(
        server_app=make_server_app(flat),
        client_app=make_client_app(flat),
        num_supernodes=len(regions_of(cfg)),
        backend_config={
            "client_resources": {"num_cpus": cfg.engine.client_cpus, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "include_dashboard": False},
        },
    )


EXPECTED_FLOWER_WARNINGS = (
    "DEPRECATED FEATURE: The `run_simulation` function",  # our in-process engine
    "fraction_evaluate is set to 0.0",  # federation.client_eval=false, on purpose
)
"""Flower warnings about this launcher's deliberate choices: not news to a user."""
OUR_LOGGERS = ("federate", "demo", "fl_server", "fl_clients", "policies", "envs",
               "analysis", "scripts")  # fmt: skip
"""Loggers shown at INFO; every other library's (fontTools, absl, ray...) at WARNING."""


class _DropExpected(logging.Filter):
    """Drops Flower's console warnings about this launcher's deliberate choices."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in EXPECTED_FLOWER_WARNINGS)


def configure_logging() -> None:
    """Our progress on stderr; Flower's own console output kept to real warnings.

    Scoped to this entry point (and the demo that calls it): the library modules
    never touch logging or warning filters.
    """
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    from flwr.common.logger import console_handler  # created on flwr's first import

    console_handler.setLevel(logging.WARNING)
    console_handler.addFilter(_DropExpected())
    logging.getLogger("flwr").propagate = False
    # Ray's start-up tip about GPU visibility: no GPU is requested here.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(raw: DictConfig) -> None:
    """Hydra entry point."""
    configure_logging()
    cfg = OmegaConf.to_object(raw)
    assert isinstance(cfg, RunConfig)
    out = Path(cfg.federation.output_dir or HydraConfig.get().runtime.output_dir)
    folder = run(cfg, out)
    print(summary(folder))


if __name__ == "__main__":
    main()
