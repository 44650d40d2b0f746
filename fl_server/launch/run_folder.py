"""A run folder fixed into the config before any engine starts.

The folder is made absolute and written into ``federation.output_dir`` (every app and
process finds it there), the federation's clients are checked, rescheduling clients
are padded to a common size, and the flat config every app will parse is written to
``run_config.toml``: what ``flwr run --run-config`` receives, and a record of the run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conf.schema import RunConfig
from fl_server.config import regions_of, to_run_config, to_toml, with_common_padding


def prepare(cfg: RunConfig, out: Path) -> RunConfig:
    """Fix the run folder into the config (absolute) and write the flat config there."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, federation=replace(cfg.federation, output_dir=str(out)))
    regions_of(cfg)  # fail here, naming the field, rather than inside an app
    cfg = with_common_padding(cfg)
    (out / "run_config.toml").write_text(to_toml(to_run_config(cfg)))
    return cfg
