"""Masks over random scenarios and states (hypothesis): never empty, never infeasible.

Feasibility is decided from the scenario spec itself (a node can serve a type when the
type gives an execution time for the node's CPU class and needs no more memory than
the node has per core; residency from the regions table's continents), never from the
tables the simulator compiled.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import TwoTierCore, TwoTierEnvConfig, load_scenario
from envs.two_tier import kernels as K

with (Path(__file__).parents[2] / "envs" / "data" / "regions.csv").open() as _f:
    CONTINENT = {row["region_id"]: row["continent"] for row in csv.DictReader(_f)}
REGIONS = list(CONTINENT)


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
                    "vcpus": draw(st.sampled_from([1, 2, 4, 8])),
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


def capable_from_spec(spec: dict, node_name: str, type_index: int) -> bool:
    """Whether node ``<region>/<pool>-<i>`` can serve the type, read off the spec."""
    region_id, rest = node_name.split("/")
    pool_name = rest.rsplit("-", 1)[0]
    region = next(r for r in spec["regions"] if r["id"] == region_id)
    pool = next(p for p in region["pools"] if p["name"] == pool_name)
    kind = spec["request_types"][type_index]
    has_class = str(pool["cpu_type"]) in kind["execution_time"]
    fits = kind["memory_gib"] <= pool["memory_gib"] / pool["vcpus"]
    return has_class and fits


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
    names = world.node_names
    rng = np.random.default_rng(seed)
    core.reset(seed=seed)
    for _ in range(120):
        masks = core.action_masks()
        assert masks.any(axis=1).all(), "a mask admits no action"
        for b in range(core.num_envs):
            k = core.ist[b, K.IS_TYPE]
            origin = world.region_ids[core.ist[b, K.IS_ORIGIN]]
            kind = spec["request_types"][k]
            if core.ist[b, K.IS_PHASE] == 0:
                for q, region in enumerate(world.region_ids):
                    prefix = f"{region}/"
                    can_serve = any(
                        capable_from_spec(spec, name, k)
                        for name in names
                        if name.startswith(prefix)
                    )
                    resident = (
                        not kind["same_continent"]
                        or CONTINENT[region] == CONTINENT[origin]
                    )
                    assert masks[b, q] == (can_serve and resident), (region, kind)
                assert not masks[b, world.n_regions :].any()
            else:
                region = world.region_ids[core.ist[b, K.IS_SELECTED]]
                nodes = [n for n in names if n.startswith(f"{region}/")]
                for i in np.flatnonzero(masks[b]):
                    assert i < len(nodes), "a padded node slot is admitted"
                    assert capable_from_spec(spec, nodes[i], k), "an incapable node"
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        out = core.step(actions)
        assert not core.comps[:, K.C_INVALID].any()
        assert np.isfinite(out.reward).all()
        assert (out.obs >= core.single_observation_space.low).all()
        assert (out.obs <= core.single_observation_space.high).all()
