"""``two_tier.load_input``: every region's offered load in the header, nothing else moved.

The loads are recomputed here from the scenario's hourly rates and burst trace at the
env's current second, and the rest of the observation, the masks and the rollout
must be those of the same env without the input.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig
from envs.errors import ConfigError
from envs.scenario import HOUR_RATE, REG_BURST_LEN
from envs.two_tier import kernels as K
from envs.two_tier.live import ObservableState

HOURS = 8760


def cores(load_input: bool) -> TwoTierCore:
    config = TwoTierEnvConfig(load_input=load_input)
    core = TwoTierCore("bursty", 3, ["eu-central"], config=config)
    core.reset(seed=17)
    return core


def test_loads_are_inserted_and_the_rollout_is_unchanged() -> None:
    plain, loaded = cores(False), cores(True)
    lay = loaded.layout
    assert lay.size == plain.layout.size + lay.n_regions
    assert lay.load_offset == lay.region_offset - lay.n_regions
    world = loaded.world
    rng = np.random.default_rng(1)
    seen = []
    for _ in range(400):
        inserted = slice(lay.load_offset, lay.load_offset + lay.n_regions)
        rest = np.delete(loaded.obs, np.r_[inserted], axis=1)
        np.testing.assert_array_equal(rest, plain.obs)
        np.testing.assert_array_equal(loaded.mask, plain.mask)
        for b in range(loaded.num_envs):
            sec = loaded.ist[b, K.IS_SEC]
            hour = (loaded.ist[b, K.IS_HOUR0] + sec // 3600) % HOURS
            expected = []
            for r in range(world.n_regions):
                at = (loaded.burst_off[b, r] + sec) % world.region_i[r, REG_BURST_LEN]
                rate = world.hourly[r, hour, HOUR_RATE] * world.burst[r, at]
                expected.append(min(rate / world.capacity_rps[r], 10.0))
            np.testing.assert_allclose(loaded.obs[b, inserted], expected, rtol=1e-6)
            seen.extend(expected)
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in plain.mask])
        plain.step(actions)
        loaded.step(actions)
        np.testing.assert_array_equal(loaded.comps, plain.comps)
    assert min(seen) < 0.3 and max(seen) > 1.0  # calm seconds and overload both seen


def test_load_input_is_off_by_default_and_live_observations_need_rates() -> None:
    assert TwoTierEnvConfig().load_input is False
    assert TwoTierCore("small", 1).layout.load_offset == -1
    core = cores(True)
    regions = core.world.region_ids
    full = dict.fromkeys(regions, 1.0)
    cases = {
        "region_rates: expected the regions' arrival rates": None,
        "region_rates.mars: expected a region of": {**full, "mars": 1.0},
        f"region_rates.{regions[1]}: expected requests/s >= 0 (finite), got -2.0": {
            **full,
            regions[1]: -2.0,
        },
        f"region_rates.{regions[0]}: expected requests/s >= 0 (finite), got nan": {
            **full,
            regions[0]: float("nan"),
        },
        f"region_rates.{regions[2]}: expected requests/s >= 0 (finite), got 'x'": {
            **full,
            regions[2]: "x",
        },
    }
    for message, rates in cases.items():
        state = ObservableState("web", "eu-central", region_rates=rates)
        with pytest.raises(ConfigError, match=re.escape(message)):
            core.observe(0, state)
    with pytest.raises(ValueError, match=re.escape("rates: expected a 1 x 3 array")):
        core.observe_arrays(**_one_live(core, np.ones((1, 2))))
    # a region left out has no arrivals, as a node left out is idle
    partial, _ = core.observe(0, ObservableState("web", "eu-central", region_rates={}))
    zeros = dict.fromkeys(regions, 0.0)
    explicit, _ = core.observe(
        0, ObservableState("web", "eu-central", region_rates=zeros)
    )
    np.testing.assert_array_equal(partial, explicit)


def test_live_rates_become_the_simulated_load_feature() -> None:
    """A rate equal to the simulator's arrival rate gives the simulator's feature."""
    core = cores(True)
    world, lay = core.world, core.layout
    rates = world.capacity_rps * np.array([0.2, 1.5, 40.0])  # the last is clipped
    state = ObservableState(
        "web",
        "eu-central",
        region_rates=dict(zip(world.region_ids, rates, strict=True)),
    )
    obs, _ = core.observe(0, state)
    loads = obs[lay.load_offset : lay.load_offset + lay.n_regions]
    np.testing.assert_allclose(loads, [0.2, 1.5, 10.0], rtol=1e-6)
    plain = TwoTierCore("bursty", 1, ["eu-central"], config=TwoTierEnvConfig())
    without, _ = plain.observe(0, ObservableState("web", "eu-central"))
    inserted = np.r_[lay.load_offset : lay.load_offset + lay.n_regions]
    np.testing.assert_array_equal(np.delete(obs, inserted), without)


def _one_live(core: TwoTierCore, rates: np.ndarray) -> dict[str, object]:
    one = np.zeros(1, dtype=np.int64)
    empty = np.zeros(0)
    return {
        "first": 0, "types": one, "origins": one, "selected": one - 1, "hours": one,
        "rows": empty.astype(np.int64), "cols": empty.astype(np.int64),
        "waits": empty, "busy": empty, "rates": rates,
    }  # fmt: skip
