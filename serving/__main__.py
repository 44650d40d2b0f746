"""``python -m serving --checkpoint <path> [--host 127.0.0.1] [--port 5000]``.

Loads the checkpoint (exits with the reason if it cannot), then serves it with
uvicorn, one worker, reloading the file when a new policy is written to the path.
The API key, if any, comes from the ``SERVING_API_KEY`` environment variable (or
the file ``SERVING_API_KEY_FILE`` names, e.g. a mounted secret).
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: the per-decision matrix products are tiny,
# and OpenBLAS's spinning worker threads would take the second core from the event
# loop (a 30x slowdown measured on a busy 2-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No *_created series: they double the exposition and no dashboard reads them.
os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")

import argparse
import logging
import sys
from pathlib import Path

from serving.settings import ServeSettings, api_key_from_environment

log = logging.getLogger("serving")


def parse_args(argv: list[str] | None = None) -> ServeSettings:
    """Command-line options as validated settings (exits with usage on a bad one)."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="policy .zip (.json beside it)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=5000, help="TCP port")
    parser.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="larger bodies get 413"
    )
    parser.add_argument(
        "--max-batch", type=int, default=4096, help="most decisions per batch call"
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the checkpoint file (0: never reload)",
    )
    parser.add_argument(
        "--stochastic",
        action="store_true",
        help="sample from the masked policy instead of taking its best action",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --stochastic")
    parser.add_argument(
        "--strict-deployable",
        action="store_true",
        help="refuse a pod whose pod_deployable list is empty with a 422 (default: "
        "that pod stays where it is, as REACH's pod-migrator expects)",
    )
    parser.add_argument(
        "--wait-for-checkpoint",
        action="store_true",
        help="start without a loadable checkpoint; /readyz is 503 until one loads",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return ServeSettings(
            checkpoint=args.checkpoint,
            host=args.host,
            port=args.port,
            api_key=api_key_from_environment(os.environ),
            max_body_bytes=args.max_body_bytes,
            max_batch=args.max_batch,
            reload_interval_s=args.reload_interval,
            deterministic=not args.stochastic,
            seed=args.seed,
            strict_deployable=args.strict_deployable,
            wait_for_checkpoint=args.wait_for_checkpoint,
        )
    except ValueError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> int:
    """Load, then serve until SIGINT/SIGTERM."""
    settings = parse_args(argv)  # before the heavy imports: bad options fail at once
    import torch
    import uvicorn

    from serving.app import ENDPOINTS, create_app
    from serving.metrics import ServingMetrics
    from serving.model_store import ModelLoadError, ModelStore

    torch.set_num_threads(1)  # small MLPs: one thread is fastest and leaves a core
    metrics = ServingMetrics(ENDPOINTS)
    store = ModelStore(settings, metrics)
    try:
        store.load_initial()
    except ModelLoadError as err:
        if not settings.wait_for_checkpoint:
            log.error("cannot serve: %s", err)
            return 2
        log.warning("no policy yet (%s); waiting for the checkpoint", err)
    app = create_app(store, settings, metrics)
    log.info(
        "listening on http://%s:%d (API key %s)",
        settings.host,
        settings.port,
        "required" if settings.api_key else "off",
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
