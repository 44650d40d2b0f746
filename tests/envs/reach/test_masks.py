"""Masks never admit an infeasible move: property test over generated configs and states."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.generator import generate
from envs.reach.model import PATTERNS, ReachConfig


def spec_mask(core: ReachCore, config: ReachConfig) -> np.ndarray:
    """Spec §5.3 computed independently from the core's public state accessors."""
    lay = core.layout
    slots = [s for s in config.services for _ in range(s.max_replica)]
    nodes = config.nodes.nodes
    res = core.node_resources(0)
    healthy = core.node_healthy(0)
    placed = core.pod_nodes(0)
    mask = np.zeros((lay.max_nodes, lay.max_pods), dtype=bool)
    for n, node in enumerate(nodes):
        for p, service in enumerate(slots):
            mask[n, p] = bool(
                placed[p] >= 0
                and placed[p] != n
                and not service.persistent
                and service.layer != "client"
                and node.layer != "client"
                and healthy[n]
                and res["cpu_free"][n] + 1e-9 >= service.cpu
                and res["memory_free"][n] + 1e-9 >= service.memory
            )
    return np.append(mask.reshape(-1), True)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    n_nodes=st.integers(3, 14),
    n_pods=st.integers(2, 40),
    config_seed=st.integers(0, 10_000),
    env_seed=st.integers(0, 10_000),
    pattern=st.sampled_from(PATTERNS),
    placement=st.sampled_from(["kubernetes", "random"]),
    events=st.booleans(),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 5)),
    choices=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=40),
)
def test_masks_match_the_spec_and_moves_never_overcommit(
    n_nodes: int,
    n_pods: int,
    config_seed: int,
    env_seed: int,
    pattern: str,
    placement: str,
    events: bool,
    padding: tuple[int, int],
    choices: list[float],
) -> None:
    config = generate(n_nodes, n_pods, seed=config_seed, patterns=(pattern,)).to_config(
        pattern
    )
    settings_ = RescheduleConfig(
        placement=placement,
        max_nodes=n_nodes + padding[0],
        max_pods=n_pods + padding[1],
        failure_prob=0.3 if events else 0.0,
        degradation_prob=0.3 if events else 0.0,
        max_moves=len(choices) + 1,
    )
    core = ReachCore(config, settings_, num_envs=1, autoreset=False)
    core.reset(seed=env_seed)
    for choice in choices:
        mask = core.action_masks()[0]
        assert np.array_equal(mask, spec_mask(core, config))
        valid = np.flatnonzero(mask)
        action = int(valid[int(choice * len(valid))])
        out = core.step(np.array([action]))
        res = core.node_resources(0)
        assert (res["cpu_free"] >= -1e-9).all() and (res["memory_free"] >= -1e-9).all()
        if out.terminated[0] or out.truncated[0]:
            break
