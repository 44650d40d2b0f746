"""Common random numbers: decisions never change the requests an env generates.

Each environment draws its world (arrivals, origins, types, service factors, start
hour, burst offsets) from one stream and what decisions cause (remote RTTs, random
heuristics) from another, so two policies on one seed meet the same requests and a
paired comparison measures decisions only.
"""

from __future__ import annotations

import numpy as np

from envs import TwoTierCore, TwoTierEnvConfig
from envs.two_tier import kernels as K


def pending_requests(
    policy: str, seed: int, steps: int, background: str = "least_loaded"
) -> tuple[np.ndarray, float]:
    """(time, origin, type, service factor) of each LB decision; the remote share."""
    config = TwoTierEnvConfig(background_scheduler=background)
    core = TwoTierCore("small", 2, ["eu-central", "us-east"], config)
    core.seed_each([seed, seed + 1])
    for i in range(core.num_envs):
        core.reset_one(i)
    rng = np.random.default_rng(99)
    seen, remote, placed = [], 0, 0
    for _ in range(steps):
        lb = core.ist[:, K.IS_PHASE] == 0
        for b in np.flatnonzero(lb):
            seen.append(
                (
                    b,
                    core.fs[b, K.FS_T],
                    core.ist[b, K.IS_ORIGIN],
                    core.ist[b, K.IS_TYPE],
                    core.fs[b, K.FS_G],
                )
            )
        if policy == "first":  # the first valid action: never random
            actions = core.mask.argmax(axis=1)
        else:
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in core.mask])
        core.step(actions)
        placed_now = core.comps[:, K.C_PLACED] > 0
        placed += int(placed_now.sum())
        remote += int(
            (
                core.comps[placed_now, K.C_REGION] != core.comps[placed_now, K.C_ORIGIN]
            ).sum()
        )
    return np.array(seen, dtype=float), remote / max(placed, 1)


def test_two_policies_on_one_seed_meet_the_same_requests() -> None:
    first, _ = pending_requests("first", 7, 600)
    drawn, drawn_remote = pending_requests("random", 7, 600)
    assert drawn_remote > 0.3  # remote RTTs were drawn many times
    n = min(len(first), len(drawn))
    assert n > 500
    np.testing.assert_array_equal(first[:n], drawn[:n])
    other, _ = pending_requests("first", 8, 600)
    assert not np.array_equal(other[:n], first[:n])  # the seed does matter


def test_random_background_draws_do_not_move_the_world() -> None:
    a, _ = pending_requests("first", 3, 300, background="random")
    b, _ = pending_requests("first", 3, 300, background="least_loaded")
    n = min(len(a), len(b))
    np.testing.assert_array_equal(a[:n, :4], b[:n, :4])  # times, origins, types
    np.testing.assert_array_equal(a[:n, 4], b[:n, 4])  # and service factors
