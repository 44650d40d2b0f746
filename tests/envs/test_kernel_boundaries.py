"""Arrays reaching the compiled kernels are checked first: bad input is a ValueError.

The kernels run without bounds checks, so before these checks an action array longer
than the batch wrote past the state arrays (the process died), and shorter arrays,
out-of-range or float actions and non-contiguous views were taken silently. The
cases that used to kill the process run in a subprocess, so a regression fails the
test instead of ending the test run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig
from envs.checks import check_actions
from envs.reach.core import ReachCore
from envs.reach.payload import PayloadState
from envs.vec_env import BatchedVecEnv


@pytest.fixture(scope="module")
def two_tier() -> TwoTierCore:
    core = TwoTierCore("small", 4)
    core.reset(seed=0)
    return core


@pytest.fixture(scope="module")
def reach() -> ReachCore:
    core = ReachCore.from_settings(num_envs=4)
    core.reset(seed=0)
    return core


def test_actions_longer_than_the_batch_raise_instead_of_crashing() -> None:
    """The reproduction of the review: a 64-entry array on a 4-env core."""
    script = textwrap.dedent(
        """
        import numpy as np
        from envs import TwoTierCore
        from envs.reach.core import ReachCore
        for core in (TwoTierCore("small", 4), ReachCore.from_settings(num_envs=4)):
            core.reset(seed=0)
            core.step(core.action_masks().argmax(axis=1))  # the cached entry point
            for actions in (np.zeros(64, dtype=np.int64), np.full(4, 10**6)):
                try:
                    core.step(actions)
                except ValueError as err:
                    print("refused:", err)
                else:
                    print("accepted")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines == [
        "refused: actions: expected 4 entries (one per environment), got 64 "
        "(shape (64,))",
        # small: 3 regions of 8 nodes, both tiers learned: max(3, 8) actions
        "refused: actions[0]: expected an integer in [0, 8), got 1000000",
        "refused: actions: expected 4 entries (one per environment), got 64 "
        "(shape (64,))",
        "refused: actions[0]: expected an integer in [0, 148), got 1000000",
    ]


@pytest.mark.parametrize("name", ["two_tier", "reach"])
def test_step_refuses_bad_actions_naming_the_expectation(
    name: str, request: pytest.FixtureRequest
) -> None:
    core = request.getfixturevalue(name)
    n = int(core.single_action_space.n)
    before = core.obs.copy()
    cases = {
        "actions: expected 4 entries (one per environment), got 2 (shape (2,))": (
            np.zeros(2, dtype=np.int64)
        ),
        f"actions[1]: expected an integer in [0, {n}), got -5": np.array([0, -5, 0, 0]),
        f"actions[0]: expected an integer in [0, {n}), got {n}": np.full(4, n),
        f"actions[2]: expected an integer in [0, {n}), got 18446744073709551615": (
            np.array([0, 0, 2**64 - 1, 0], dtype=np.uint64)
        ),
        "actions: expected integers (one action index per environment), got dtype "
        "float64": np.full(4, 1.0),
        "actions: expected integers (one action index per environment), got dtype "
        "bool": np.ones(4, dtype=bool),
    }
    for message, actions in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            core.step(actions)
    np.testing.assert_array_equal(core.obs, before)  # nothing was stepped


@pytest.mark.parametrize("name", ["two_tier", "reach"])
def test_any_integer_dtype_shape_and_layout_steps_like_a_plain_int64_array(
    name: str,
) -> None:
    """A strided view, int32 or ``[B, 1]`` input gives the contiguous int64 result.

    The first step resolves the compiled entry point for C-contiguous int64; before
    the checks a later strided view was read with the wrong strides.
    """

    def make() -> TwoTierCore | ReachCore:
        if name == "two_tier":
            return TwoTierCore("small", 4, config=TwoTierEnvConfig(learn="scheduler"))
        return ReachCore.from_settings(num_envs=4)

    plain, other = make(), make()
    plain.reset(seed=1)
    other.reset(seed=1)
    rng = np.random.default_rng(0)
    for form in ("contiguous", "strided", "int32", "column"):
        masks = plain.action_masks()
        np.testing.assert_array_equal(masks, other.action_masks())
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        if form == "strided":
            given = np.repeat(actions, 2)[::2]
            assert not given.flags.c_contiguous
        elif form == "int32":
            given = actions.astype(np.int32)
        elif form == "column":
            given = actions.reshape(4, 1)
        else:
            given = actions.copy()
        plain.step(np.ascontiguousarray(actions, dtype=np.int64))
        other.step(given)
        np.testing.assert_array_equal(plain.obs, other.obs)
        np.testing.assert_array_equal(plain.reward, other.reward)


@pytest.mark.parametrize("num_envs", [1, 16, 17, 1024])  # both ways of checking
def test_check_actions_finds_the_first_bad_entry_at_any_batch_size(
    num_envs: int,
) -> None:
    good = np.arange(num_envs, dtype=np.int64) % 8
    np.testing.assert_array_equal(check_actions(good, num_envs, 8), good)
    for bad, dtype in ((-1, np.int64), (8, np.int64), (2**63, np.uint64)):
        actions = good.astype(dtype)
        actions[num_envs - 1] = bad
        message = f"actions[{num_envs - 1}]: expected an integer in [0, 8), got {bad}"
        with pytest.raises(ValueError, match=re.escape(message)):
            check_actions(actions, num_envs, 8)


def test_vec_env_refuses_float_actions_instead_of_truncating() -> None:
    venv = BatchedVecEnv(TwoTierCore("small", 2), seed=0)
    venv.reset()
    with pytest.raises(ValueError, match=re.escape("got dtype float64")):
        venv.step(np.array([0.7, 1.2]))
    with pytest.raises(ValueError, match=re.escape("expected 2 entries")):
        venv.step(np.zeros(3, dtype=np.int64))


def test_gymnasium_env_refuses_float_actions_instead_of_truncating() -> None:
    from envs import make_region_env

    env = make_region_env("small", "us-east", seed=0).unwrapped
    with pytest.raises(ValueError, match=re.escape("action: expected an integer of")):
        env.step(1.7)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(np.int64(-1))
    env.step(np.int32(int(np.flatnonzero(env.action_masks())[0])))  # any integer


def test_row_indices_are_checked(two_tier: TwoTierCore, reach: ReachCore) -> None:
    for index in (4, -1):
        message = f"index: expected an environment in [0, 4), got {index}"
        with pytest.raises(ValueError, match=re.escape(message)):
            two_tier.reset_one(index)
        with pytest.raises(ValueError, match=re.escape(message)):
            reach.reset_env(index, np.ones(2, dtype=np.uint64))


def _live(core: TwoTierCore, **change: object) -> dict[str, object]:
    world = core.world
    args: dict[str, object] = {
        "first": 0,
        "types": np.array([0, 1]),
        "origins": np.array([0, 2]),
        "selected": np.array([-1, 1]),
        "hours": np.array([0, 8759]),
        "rows": np.array([0, 1, 1]),
        "cols": np.array([0, 5, world.n_nodes - 1]),
        "waits": np.array([0.0, 0.3, 1.0]),
        "busy": np.array([1.0, 0.0, 2.0]),
    }
    args.update(change)
    return args


def test_live_observation_arrays_are_checked(two_tier: TwoTierCore) -> None:
    world = two_tier.world
    n_types, n_regions, n_nodes = world.n_types, world.n_regions, world.n_nodes
    obs, mask = two_tier.observe_arrays(**_live(two_tier))  # type: ignore[arg-type]
    assert obs.shape[0] == 2 and mask[0].any()
    cases = {
        "first: expected rows 3..4 inside [0, 4)": {"first": 3},
        f"types[1]: expected an integer in [0, {n_types}), got {n_types}": {
            "types": np.array([0, n_types])
        },
        f"origins[0]: expected an integer in [0, {n_regions}), got -1": {
            "origins": np.array([-1, 0])
        },
        f"selected[1]: expected an integer in [-1, {n_regions}), got {n_regions}": {
            "selected": np.array([-1, n_regions])
        },
        "hours[1]: expected an integer in [0, 8760), got 8760": {
            "hours": np.array([0, 8760])
        },
        "origins: expected a 1-D integer array of 2 entries, got dtype int64 and "
        "shape (3,)": {"origins": np.array([0, 1, 2])},
        "types: expected a 1-D integer array, got dtype float64 and shape (2,)": {
            "types": np.array([0.0, 1.0])
        },
        "rows[2]: expected an integer in [0, 2), got 2": {"rows": np.array([0, 1, 2])},
        f"cols[0]: expected an integer in [0, {n_nodes}), got {n_nodes}": {
            "cols": np.array([n_nodes, 0, 0])
        },
        "waits[1]: expected a finite number >= 0, got nan": {
            "waits": np.array([0.0, np.nan, 0.0])
        },
        "busy[0]: expected a finite number >= 0, got -1.0": {
            "busy": np.array([-1.0, 0.0, 0.0])
        },
        "waits: expected a 1-D array of 3 numbers, got dtype float64 and shape (2,)": {
            "waits": np.array([0.0, 0.0])
        },
        f"busy[2]: expected at most {world.node_cores[n_nodes - 1]} cores": {
            "busy": np.array([0.0, 0.0, 1e3])
        },
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            two_tier.observe_arrays(**_live(two_tier, **change))  # type: ignore[arg-type]


def test_live_observation_of_one_state_equals_observe(two_tier: TwoTierCore) -> None:
    """The checked fast path still writes what :meth:`observe` writes."""
    from envs.two_tier.live import NodeLoad, ObservableState

    world = two_tier.world
    node = world.node_names[3]
    state = ObservableState(
        request_type=world.type_names[1],
        origin=world.region_ids[0],
        time=datetime(2023, 3, 1, 12, tzinfo=UTC),
        nodes={node: NodeLoad(queue_wait_s=0.2, busy_cores=1)},
    )
    obs, mask = two_tier.observe(0, state)
    hour = (31 + 28) * 24 + 12
    fast, fast_mask = two_tier.observe_arrays(
        1, np.array([1]), np.array([0]), np.array([-1]), np.array([hour]),
        np.array([0]), np.array([3]), np.array([0.2]), np.array([1.0]),
    )  # fmt: skip
    np.testing.assert_array_equal(fast[0], obs)
    np.testing.assert_array_equal(fast_mask[0], mask)


def _payload(core: ReachCore, **change: object) -> PayloadState:
    lay, services = core.layout, core.config.services
    slot_nodes: list[int] = []
    for s in services:
        slot_nodes += [0] * 1 + [-1] * (s.max_replica - 1)
    fields: dict[str, object] = {
        "node_cpu_free": (4.0,) * lay.n_nodes,
        "node_memory_free": (8.0,) * lay.n_nodes,
        "slot_pods": tuple(f"p{i}" for i in range(lay.n_pods)),
        "slot_nodes": tuple(slot_nodes),
        "replicas": (1,) * len(services),
        "deployable": None,
    }
    fields.update(change)
    return PayloadState(**fields)  # type: ignore[arg-type]


def test_payload_states_are_checked_before_the_kernel(reach: ReachCore) -> None:
    lay = reach.layout
    reach.load_payload(0, _payload(reach))  # the well-formed state loads
    bad_nodes = list(_payload(reach).slot_nodes)
    bad_nodes[0] = lay.n_nodes
    cases = {
        f"node_cpu_free: expected a 1-D array of {lay.n_nodes} numbers": {
            "node_cpu_free": (1.0,)
        },
        "node_memory_free[0]: expected a finite number >= 0, got -1.0": {
            "node_memory_free": (-1.0,) * lay.n_nodes
        },
        f"slot_nodes[0]: expected an integer in [-1, {lay.n_nodes}), "
        f"got {lay.n_nodes}": {"slot_nodes": tuple(bad_nodes)},
        "replicas[0]: expected the number of": {
            "replicas": (0,) + (1,) * (len(reach.config.services) - 1)
        },
        f"deployable: expected shape ({lay.n_nodes}, {lay.n_pods})": {
            "deployable": np.ones((1, 1), dtype=bool)
        },
        "index: expected an environment in [0, 4), got 9": {},
    }
    for message, change in cases.items():
        index = 9 if message.startswith("index") else 0
        with pytest.raises(ValueError, match=re.escape(message)):
            reach.load_payload(index, _payload(reach, **change))
