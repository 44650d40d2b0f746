"""Observations of a live state equal the simulator's own for the same state."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest

from envs import ConfigError, TwoTierCore, TwoTierEnvConfig
from envs.datasets import YEAR_START
from envs.two_tier import kernels as K
from envs.two_tier.live import NodeLoad, ObservableState


def snapshot(core: TwoTierCore, b: int) -> ObservableState:
    """What an exporter would report about environment ``b`` of a running core."""
    world = core.world
    t = core.fs[b, K.FS_T]
    hour = (core.ist[b, K.IS_HOUR0] + int(t // 3600)) % 8760
    waits = np.maximum(core.node_dyn[b, K.ND_FREE] - t, 0.0)
    nodes = {
        name: NodeLoad(float(waits[n]), int(core.node_dyn[b, K.ND_BUSY, n]))
        for n, name in enumerate(world.node_names)
    }
    phase = "lb" if core.ist[b, K.IS_PHASE] == 0 else "scheduler"
    selected = core.ist[b, K.IS_SELECTED]
    return ObservableState(
        request_type=world.type_names[core.ist[b, K.IS_TYPE]],
        origin=world.region_ids[core.ist[b, K.IS_ORIGIN]],
        phase=phase,
        selected_region=world.region_ids[selected] if phase == "scheduler" else None,
        time=YEAR_START + timedelta(hours=int(hour)),
        nodes=nodes,
        region_rates={
            name: float(core.reg_dyn[b, K.RD_RATE, r])
            for r, name in enumerate(world.region_ids)
        },
    )


@pytest.mark.parametrize("load_input", [False, True])
@pytest.mark.parametrize("steps", [40, 41])  # an LB phase and a scheduler phase
def test_observe_reproduces_the_simulated_observation(
    steps: int, load_input: bool
) -> None:
    config = TwoTierEnvConfig(load_input=load_input)
    sim = TwoTierCore("default", 2, controlled=["india"], config=config)
    sim.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        sim.step(np.array([rng.choice(np.flatnonzero(m)) for m in sim.action_masks()]))
    live = TwoTierCore("default", 1, controlled=["india"], config=config)
    for b in range(2):
        sim.node_dyn[b, K.ND_NEXT] = np.inf  # counts are current: compare like for like
        K.write_obs(b, sim._world, sim._state, sim.obs, sim.mask)
        obs, mask = live.observe(0, snapshot(sim, b))
        np.testing.assert_allclose(obs, sim.obs[b], atol=1e-6)
        np.testing.assert_array_equal(mask, sim.mask[b])


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            ObservableState("video", "us-east"),
            "request_type: expected one of ['web', 'inference', 'analytics', 'personal-data'], got 'video'",
        ),
        (
            ObservableState("web", "mars"),
            "region: expected one of us-east, eu-central, asia-east, got 'mars'",
        ),
        (
            ObservableState("web", "us-east", phase="scheduler"),
            "selected_region: expected a region id in the scheduler phase",
        ),
        (
            ObservableState("web", "us-east", nodes={"us-east/gpu-1": NodeLoad()}),
            "nodes.us-east/gpu-1: expected a node of the scenario",
        ),
        (
            ObservableState(
                "web", "us-east", nodes={"us-east/cloud-1": NodeLoad(-1.0, 0)}
            ),
            "nodes.us-east/cloud-1: expected a queue wait and busy cores >= 0",
        ),
        (
            ObservableState(
                "web", "us-east", nodes={"us-east/cloud-1": NodeLoad(0.0, 99)}
            ),
            "nodes.us-east/cloud-1.busy_cores: expected at most 4 cores",
        ),
    ],
)
def test_bad_observable_state_names_the_field(
    state: ObservableState, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TwoTierCore("small", 1).observe(0, state)
