"""The config sets shipped in envs/data/reach: valid, and every reset can place pods.

Checked the way a user would: the strict loader, and the largest replica counts
placed by both initial placements on many sampled clusters.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.formats import find_call_patterns, load_reach_config

from .conftest import EXAMPLE_ROOT

SHIPPED = {
    "shop/12-28": "aggregator_sequential",
    "tight/9-20": "chain",
    "pinned/10-24": "aggregator_parallel",
    "wide/16-40": "aggregator_sequential",
    "edge/8-18": "chain",
    "tune/11-26": "aggregator_sequential",
}


@pytest.mark.parametrize(("folder", "pattern"), sorted(SHIPPED.items()))
@pytest.mark.parametrize("placement", ["kubernetes", "random"])
def test_shipped_config_loads_and_places(
    folder: str, pattern: str, placement: str
) -> None:
    cluster = EXAMPLE_ROOT / folder
    config = load_reach_config(cluster, find_call_patterns(cluster, pattern))
    nodes, pods = (int(x) for x in cluster.name.split("-"))
    assert (config.n_nodes, config.n_pods) == (nodes, pods)
    settings = RescheduleConfig(
        cluster=str(cluster), pattern=pattern, replicas="max", placement=placement
    )
    core = ReachCore(config, settings, num_envs=16)
    for seed in range(4):
        core.reset(seed=seed)  # raises ReachPlacementError if a placement fails
        assert (core.pod_nodes(0) >= 0).all()
        assert np.isfinite([core.latency(i) for i in range(core.num_envs)]).all()


def test_every_shipped_folder_is_listed() -> None:
    found = {
        f"{p.parent.name}/{p.name}"
        for p in EXAMPLE_ROOT.glob("*/*")
        if (p / "nodes.json").is_file()
    }
    assert found == set(SHIPPED)
