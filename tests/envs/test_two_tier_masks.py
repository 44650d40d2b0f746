"""Masks over random scenarios and states (hypothesis): never empty, never infeasible."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import TwoTierCore, TwoTierEnvConfig, load_scenario
from envs.datasets import regions
from envs.scenario import TN_CAPABLE
from envs.two_tier import kernels as K

REGIONS = list(regions())


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    ids = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=4, unique=True))
    cpu_classes = [0, 1, 2]
    region_specs = []
    for rid in ids:
        pools = []
        for j in range(draw(st.integers(1, 3))):
            pools.append(
                {
                    "name": f"p{j}",
                    "layer": draw(st.sampled_from(["edge", "cloud"])),
                    "size": draw(st.sampled_from(["small", "medium", "large"])),
                    "count": draw(st.integers(1, 5)),
                    "cpu_type": draw(st.sampled_from(cpu_classes)),
                    "memory_gib": draw(st.sampled_from([1.0, 4.0, 16.0])),
                }
            )
        # Every region gets one node able to serve everything (the config rule).
        pools.append({"name": "base", "cpu_type": 0, "memory_gib": 64.0, "vcpus": 2})
        region_specs.append(
            {
                "id": rid,
                "pools": pools,
                "target_utilization": draw(st.floats(0.2, 1.4)),
                "trace": draw(st.sampled_from(["conv", "code", "poisson"])),
            }
        )
    types = []
    for k in range(draw(st.integers(1, 3))):
        classes = draw(
            st.lists(st.sampled_from(cpu_classes), min_size=0, max_size=3, unique=True)
        )
        times = {str(c): f"{draw(st.integers(1, 300))}ms" for c in {0, *classes}}
        types.append(
            {
                "name": f"t{k}",
                "share": draw(st.floats(0.1, 1.0)),
                "execution_time": times,
                "memory_gib": draw(st.sampled_from([0.1, 0.5, 2.0, 8.0])),
                "slo": f"{draw(st.integers(20, 2000))}ms",
                "same_continent": draw(st.booleans()),
            }
        )
    return {"name": "random", "regions": region_specs, "request_types": types}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=scenarios(),
    learn=st.sampled_from(["both", "lb", "scheduler"]),
    saturation=st.sampled_from(["0s", "20ms", "1s"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_masks_never_empty_never_infeasible(
    spec: dict, learn: str, saturation: str, seed: int
) -> None:
    config = TwoTierEnvConfig(
        learn=learn, episode_length=40, saturation_wait=saturation, warmup="50ms"
    )
    core = TwoTierCore(
        load_scenario(spec),
        num_envs=3,
        controlled=[spec["regions"][0]["id"]],
        config=config,
    )
    world = core.world
    rng = np.random.default_rng(seed)
    core.reset(seed=seed)
    for _ in range(120):
        masks = core.action_masks()
        assert masks.any(axis=1).all(), "a mask admits no action"
        for b in range(core.num_envs):
            k = core.ist[b, K.IS_TYPE]
            o = core.ist[b, K.IS_ORIGIN]
            if core.ist[b, K.IS_PHASE] == 0:
                for q in np.flatnonzero(masks[b]):
                    lo, hi = world.region_i[q, 0], world.region_i[q, 1]
                    assert world.type_node[k, lo:hi, TN_CAPABLE].any()
                    if world.type_f[k, 3]:  # same continent
                        assert world.region_i[q, 2] == world.region_i[o, 2]
            else:
                q = core.ist[b, K.IS_SELECTED]
                lo, hi = world.region_i[q, 0], world.region_i[q, 1]
                for i in np.flatnonzero(masks[b]):
                    assert lo + i < hi, "a padded node slot is admitted"
                    assert world.type_node[k, lo + i, TN_CAPABLE] > 0, (
                        "an incapable node"
                    )
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        out = core.step(actions)
        assert not core.comps[:, K.C_INVALID].any()
        assert np.isfinite(out.reward).all()
        assert (out.obs >= core.single_observation_space.low).all()
        assert (out.obs <= core.single_observation_space.high).all()
