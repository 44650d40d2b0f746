"""The carbon lower bound's parts, each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from envs.errors import ConfigError
from envs.scenario import (
    HOUR_CARBON,
    NODE_ACCESS_RTT_S,
    PAIR_BW_BPS,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    TYPE_BYTES,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    compile_scenario,
    load_scenario,
)
from envs.two_tier.carbon_bound import (
    Cell,
    LatencyLimits,
    allowed_nodes,
    carbon_lower_bound,
    floor_cdf,
)

WORLD = compile_scenario(load_scenario("small"))
WEB, INFERENCE, ANALYTICS, PERSONAL = (
    WORLD.type_names.index(t)
    for t in ("web", "inference", "analytics", "personal-data")
)
EU = WORLD.region_index("eu-central")
ASIA = WORLD.region_index("asia-east")
HOUR = 4928  # eu-central 216 gCO2/kWh, us-east 366, asia-east 483
NO_LIMITS = LatencyLimits(np.full(WORLD.n_types, np.inf), 1.0)


def _node(region: int, pool: str) -> int:
    """First node of a pool in a region."""
    return WORLD.node_names.index(f"{WORLD.region_ids[region]}/{pool}-1")


def _floor_chance(origin: int, k: int, n: int, limit: float) -> float:
    """P(floor <= limit) by numerical integration (exponential service in small)."""
    assert WORLD.service_shape == 1.0
    q = int(WORLD.node_region[n])
    pair = WORLD.pair_f[origin, q]
    fixed = (
        WORLD.node_f[n, NODE_ACCESS_RTT_S]
        + WORLD.type_f[k, TYPE_BYTES] / (pair[PAIR_BW_BPS])
    )
    mean = WORLD.type_node[k, n, TYPE_NODE_EXEC_S]

    def within(room: float) -> float:
        return 1.0 - math.exp(-room / mean) if room > 0 else 0.0

    if q == origin:
        return within(limit - fixed)
    median, sigma = pair[PAIR_RTT_S], pair[PAIR_RTT_SIGMA]
    value, _ = integrate.quad(
        lambda z: (
            stats.norm.pdf(z) * within(limit - fixed - median * math.exp(sigma * z))
        ),
        -8.0,
        8.0,
        limit=200,
    )
    return float(value)


@pytest.mark.parametrize(
    ("k", "region", "pool", "limit"),
    [
        (WEB, EU, "cloud", 0.03),
        (WEB, EU, "edge-arm", 0.05),
        (INFERENCE, EU, "cloud", 0.12),
        (ANALYTICS, 0, "cloud", 0.6),  # us-east from eu-central: lognormal RTT
        (INFERENCE, 2, "cloud", 0.4),  # asia-east
    ],
)
def test_floor_cdf_matches_numerical_integration(
    k: int, region: int, pool: str, limit: float
) -> None:
    n = _node(region, pool)
    thresholds = np.full(WORLD.n_types, limit)
    estimate = floor_cdf(WORLD, EU, thresholds)[k, n]
    exact = _floor_chance(EU, k, n, limit)
    assert 0.02 < exact < 0.98  # a chance the case can get wrong
    assert estimate == pytest.approx(exact, abs=4e-3)


def test_floor_cdf_is_zero_where_the_type_may_not_go() -> None:
    cdf = floor_cdf(WORLD, EU, np.full(WORLD.n_types, np.inf))
    allowed = allowed_nodes(WORLD, EU)
    assert np.all(cdf[~allowed] == 0.0) and np.all(cdf[allowed] == 1.0)
    # personal-data stays on its continent; analytics cannot run on the arm nodes
    assert not allowed[PERSONAL, WORLD.node_region != EU].any()
    assert allowed[WEB, WORLD.node_region != EU].any()
    assert not allowed[ANALYTICS, _node(EU, "edge-arm")]


def test_without_limits_the_bound_is_each_requests_cleanest_node() -> None:
    cells = [Cell(EU, HOUR, np.array([50, 30, 10, 5])), Cell(0, 2751, np.ones(4))]
    result = carbon_lower_bound(WORLD, cells, NO_LIMITS)
    total, grams = 0.0, 0.0
    for cell in cells:
        allowed = allowed_nodes(WORLD, cell.origin)
        intensity = WORLD.hourly[WORLD.node_region, cell.hour, HOUR_CARBON]
        for k in range(WORLD.n_types):
            per_node = WORLD.type_node[k, :, TYPE_NODE_ENERGY_J] * intensity / 3.6e6
            grams += cell.counts[k] * per_node[allowed[k]].min()
            total += cell.counts[k]
    assert result.carbon_g_per_1k == pytest.approx(grams / total * 1e3, rel=1e-9)
    assert result.remote_share[PERSONAL] == 0.0  # the continent rule holds
    assert result.region_share.sum(axis=1) == pytest.approx(np.ones(WORLD.n_types))


def test_tighter_limits_never_lower_the_bound() -> None:
    cells = [Cell(ASIA, HOUR, np.array([550, 300, 100, 50]))]  # the dirtiest origin
    free = carbon_lower_bound(WORLD, cells, NO_LIMITS)
    assert free.remote_share[WEB] == 1.0  # unlimited, everything leaves
    previous = math.inf
    for factor, misses in ((1.0, 0.01), (1.5, 0.01), (3.0, 0.1), (100.0, 1.0)):
        p95 = factor * np.array([0.04, 0.2, 0.9, 0.05])  # looser and looser
        bound = carbon_lower_bound(WORLD, cells, LatencyLimits(p95, misses))
        assert bound.carbon_g_per_1k <= previous + 1e-12
        previous = bound.carbon_g_per_1k
    assert previous == pytest.approx(free.carbon_g_per_1k, rel=1e-6)
    tight = carbon_lower_bound(
        WORLD, cells, LatencyLimits(np.array([0.04, 0.2, 0.9, 0.05]), 0.01)
    )
    assert tight.carbon_g_per_1k > free.carbon_g_per_1k * 1.05  # limits bind
    assert tight.remote_share[WEB] <= 0.05 + 1e-9  # only the p95's tail may leave


def test_a_pooled_p95_limit_binds_like_the_per_type_ones() -> None:
    cells = [Cell(ASIA, HOUR, np.array([550, 300, 100, 50]))]
    free = carbon_lower_bound(WORLD, cells, NO_LIMITS)
    pooled = carbon_lower_bound(
        WORLD, cells, LatencyLimits(np.full(WORLD.n_types, np.inf), 1.0, 0.25)
    )
    assert pooled.carbon_g_per_1k > free.carbon_g_per_1k * 1.05


def test_a_tail_margin_raises_the_bound_and_keeps_the_tail_it_leaves() -> None:
    """Asking for more than 95 % within the limits leaves less of the tail to spend.

    With limits only the home region meets, a request may leave only as part of the
    tail: at most ``1 - share`` of web goes remote, and every extra point kept home
    costs carbon. Nothing is ever within for sure (service times are exponential),
    so asking for all of them is impossible, and is refused as such.
    """
    cells = [Cell(ASIA, HOUR, np.array([550, 300, 100, 50]))]
    p95 = np.array([0.04, 0.2, 0.9, 0.05])
    plain = carbon_lower_bound(WORLD, cells, LatencyLimits(p95, 0.01))
    previous = None
    for share in (0.95, 0.955, 0.96):
        bound = carbon_lower_bound(
            WORLD, cells, LatencyLimits(p95, 0.01, within_share=share)
        )
        if share == 0.95:
            assert bound.carbon_g_per_1k == pytest.approx(plain.carbon_g_per_1k)
        else:
            assert bound.carbon_g_per_1k > previous * 1.001
        assert bound.remote_share[WEB] <= 1 - share + 1e-9
        previous = bound.carbon_g_per_1k
    with pytest.raises(ConfigError, match=r"^limits: "):
        carbon_lower_bound(WORLD, cells, LatencyLimits(p95, 0.01, within_share=1.0))
    for share in (0.0, 1.5):
        with pytest.raises(ConfigError, match=r"limits\.within_share"):
            carbon_lower_bound(
                WORLD, cells, LatencyLimits(p95, 0.01, within_share=share)
            )


def test_impossible_limits_and_bad_cells_are_refused_by_name() -> None:
    cells = [Cell(EU, HOUR, np.array([5, 3, 1, 1]))]
    with pytest.raises(ConfigError, match=r"^limits: "):  # faster than any node
        carbon_lower_bound(WORLD, cells, LatencyLimits(np.full(4, 0.001), 0.0))
    with pytest.raises(ConfigError, match=r"cells\[0\]\.counts"):
        carbon_lower_bound(WORLD, [Cell(EU, HOUR, np.ones(3))], NO_LIMITS)
    with pytest.raises(ConfigError, match=r"cells\[0\]\.hour"):
        carbon_lower_bound(WORLD, [Cell(EU, 9000, np.ones(4))], NO_LIMITS)
    with pytest.raises(ConfigError, match=r"cells\[0\]\.origin"):
        carbon_lower_bound(WORLD, [Cell(7, HOUR, np.ones(4))], NO_LIMITS)
    with pytest.raises(ConfigError, match=r"limits\.p95_s"):
        carbon_lower_bound(WORLD, cells, LatencyLimits(np.zeros(4), 0.0))
    with pytest.raises(ConfigError, match=r"limits\.slo_miss_share"):
        carbon_lower_bound(WORLD, cells, LatencyLimits(np.ones(4), 1.5))
    with pytest.raises(ConfigError, match=r"^cells: "):
        carbon_lower_bound(WORLD, [], NO_LIMITS)


def test_capable_mask_is_the_scenarios() -> None:
    capable = WORLD.type_node[:, :, TYPE_NODE_CAPABLE] > 0
    assert np.array_equal(allowed_nodes(WORLD, EU)[WEB], capable[WEB])
