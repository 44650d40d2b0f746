"""The clairvoyant limit oracle: exact chances, the wait it reads, the bound's prices.

Each part against an independent computation: the within-limit chance against a
Monte Carlo of the simulator's own latency formula and against the bound's floor
law; the wait the oracle reads against the wait the kernel then reports; the
program's prices against finite differences of the bound; the rule at scale 0
against the cleanest admissible node.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig
from envs.errors import ConfigError
from envs.scenario import (
    NODE_ACCESS_RTT_S,
    PAIR_BW_BPS,
    PAIR_RTT_S,
    PAIR_RTT_SIGMA,
    TYPE_BYTES,
    TYPE_IN_GB,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    World,
    compile_scenario,
    load_scenario,
)
from envs.two_tier import kernels as K
from envs.two_tier.carbon_bound import (
    Cell,
    LatencyLimits,
    LimitPrices,
    allowed_nodes,
    carbon_lower_bound,
    floor_cdf,
)
from envs.two_tier.limit_oracle import LimitOracle, within_chance

CORE = TwoTierCore("small", 1)
WORLD = CORE.world
EU, US = WORLD.region_index("eu-central"), WORLD.region_index("us-east")
ANALYTICS = WORLD.type_names.index("analytics")
HOUR = 4928
LIMITS = LatencyLimits(np.array([0.05, 0.2, 0.9, 0.06]), 0.02)


def _monte_carlo(
    origin: int,
    k: int,
    nodes: np.ndarray,
    free_in: np.ndarray,
    threshold: float,
    world: World = WORLD,
) -> np.ndarray:
    """The simulator's latency with the free-at times given, drawn 400,000 times."""
    rng = np.random.default_rng(11)
    q = int(world.node_region[nodes[0]])
    pair = world.pair_f[origin, q]
    normal = rng.standard_normal(400_000)
    shape = world.service_shape
    factor = (
        rng.gamma(shape, 1.0 / shape, normal.size)
        if shape > 0
        else np.ones(normal.size)
    )
    upload = world.type_f[k, TYPE_IN_GB] * 1e9 / pair[PAIR_BW_BPS]
    transfer = world.type_f[k, TYPE_BYTES] / pair[PAIR_BW_BPS]
    out = []
    for n, free in zip(nodes, free_in, strict=True):
        rtt = world.node_f[n, NODE_ACCESS_RTT_S] + (
            pair[PAIR_RTT_S] * np.exp(pair[PAIR_RTT_SIGMA] * normal)
            if q != origin
            else 0
        )
        wait = np.maximum(free - (0.5 * rtt + upload), 0.0)
        service = world.type_node[k, n, TYPE_NODE_EXEC_S] * factor
        out.append(np.mean(rtt + transfer + wait + service <= threshold))
    return np.array(out)


def _analytics_case(
    world: World, origin: int, q: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Four analytics-capable nodes of ``q``: their free times, upload, transfer."""
    nodes = np.flatnonzero(world.node_region == q)
    nodes = nodes[world.type_node[ANALYTICS, nodes, TYPE_NODE_EXEC_S] > 0][:4]
    free_in = np.array([-1.0, 0.0, 0.15, 0.6])[: nodes.size]
    pair = world.pair_f[origin, q]
    upload = world.type_f[ANALYTICS, TYPE_IN_GB] * 1e9 / pair[PAIR_BW_BPS]
    transfer = world.type_f[ANALYTICS, TYPE_BYTES] / pair[PAIR_BW_BPS]
    return nodes, free_in, float(upload), float(transfer)


@pytest.mark.parametrize("origin", [EU, US])
def test_within_chance_is_the_simulators_latency_law(origin: int) -> None:
    for q in (EU, US):  # home and remote
        nodes, free_in, upload, transfer = _analytics_case(WORLD, origin, q)
        for threshold in (0.4, 0.9, 2.0):
            exact = within_chance(
                WORLD, origin, ANALYTICS, nodes, free_in, upload, transfer, threshold
            )
            drawn = _monte_carlo(origin, ANALYTICS, nodes, free_in, threshold)
            assert exact == pytest.approx(drawn, abs=0.004), (q, threshold)
        # With every core free, the chance is the bound's floor law.
        floor = floor_cdf(WORLD, origin, np.full(WORLD.n_types, 0.9))
        free = within_chance(
            WORLD, origin, ANALYTICS, nodes, np.full(nodes.size, -np.inf), upload,
            transfer, 0.9,
        )  # fmt: skip
        assert free == pytest.approx(floor[ANALYTICS, nodes], abs=0.005)


@pytest.mark.parametrize("cv", [0.0, 0.5])
def test_within_chance_follows_other_service_laws(cv: float) -> None:
    """Deterministic service (cv 0) and a Gamma law of shape 4 (cv 0.5)."""
    scenario = load_scenario("small")
    scenario.workload.service_time_cv = cv
    world = compile_scenario(scenario)
    assert world.service_shape == (0.0 if cv == 0 else 1 / cv**2)
    for q in (EU, US):
        nodes, free_in, upload, transfer = _analytics_case(world, US, q)
        for threshold in (0.4, 0.9):
            exact = within_chance(
                world, US, ANALYTICS, nodes, free_in, upload, transfer, threshold
            )
            drawn = _monte_carlo(US, ANALYTICS, nodes, free_in, threshold, world)
            assert exact == pytest.approx(drawn, abs=0.004), (q, threshold)


def _loaded_core(seed: int = 3) -> TwoTierCore:
    core = TwoTierCore(
        "small",
        2,
        ["eu-central"],
        TwoTierEnvConfig(load_input=True, episode_length=900),
    )
    core.seed_each([seed, seed + 1])
    for i in range(core.num_envs):
        core.reset_one(i)
    return core


def test_the_wait_it_reads_is_the_wait_the_request_meets() -> None:
    """The chances are exact only if the state at the decision fixes the wait."""
    core = _loaded_core()
    prices = LimitPrices(np.full(WORLD.n_types, 1e-4), 1e-5)
    oracle = LimitOracle(core, LIMITS, prices)
    checked = queued = 0
    for _ in range(400):
        lb = core.ist[:, K.IS_PHASE] == 0
        frees = [
            np.minimum.reduceat(core.core_free[b], oracle.first) - core.fs[b, K.FS_T]
            for b in range(core.num_envs)
        ]
        uploads = [
            WORLD.type_f[int(core.ist[b, K.IS_TYPE]), TYPE_IN_GB] * 1e9
            for b in range(core.num_envs)
        ]
        core.step(oracle.act())
        for b in np.flatnonzero(~lb & (core.comps[:, K.C_PLACED] > 0)):
            c = core.comps[b]
            n, q = int(c[K.C_NODE]), int(c[K.C_REGION])
            upload = uploads[b] / WORLD.pair_f[int(c[K.C_ORIGIN]), q, PAIR_BW_BPS]
            wait = max(frees[b][n] - (0.5 * c[K.C_RTT] + upload), 0.0)
            assert c[K.C_WAIT] == pytest.approx(wait, abs=1e-9)
            checked += 1
            queued += wait > 0
    assert checked > 300 and queued > 10  # loaded: some requests do wait


def test_at_scale_zero_it_takes_the_cleanest_admissible_node() -> None:
    core = _loaded_core(5)
    oracle = LimitOracle(core, LIMITS, LimitPrices(np.ones(WORLD.n_types), 1.0), 0.0)
    for _ in range(60):
        for b in np.flatnonzero(core.ist[:, K.IS_PHASE] == 0):
            k, o = int(core.ist[b, K.IS_TYPE]), int(core.ist[b, K.IS_ORIGIN])
            intensity = core.reg_dyn[b, K.RD_CARBON, WORLD.node_region]  # now
            carbon = WORLD.type_node[k, :, TYPE_NODE_ENERGY_J] * intensity
            scores = oracle.scores(int(b))
            admissible = np.isfinite(scores)
            assert admissible.any() and not np.any(
                admissible & ~allowed_nodes(WORLD, o)[k]
            )
            best = np.flatnonzero(admissible)[np.argmin(carbon[admissible])]
            assert carbon[np.argmin(scores)] == pytest.approx(carbon[best])
        core.step(oracle.act())


def test_pricing_the_limits_keeps_more_requests_within_them() -> None:
    within = []
    for scale in (0.0, 1.0):
        core = _loaded_core(7)
        prices = LimitPrices(np.full(WORLD.n_types, 1e-3), 1e-3)
        oracle = LimitOracle(core, LIMITS, prices, scale)
        kept = []
        for _ in range(600):
            core.step(oracle.act())
            for b in np.flatnonzero(core.comps[:, K.C_PLACED] > 0):
                c = core.comps[b]
                kept.append(c[K.C_LATENCY] <= LIMITS.p95_s[int(c[K.C_TYPE])])
        within.append(np.mean(kept))
    assert within[1] > within[0] + 0.05  # priced: far more requests within


def test_the_programs_prices_are_its_sensitivities() -> None:
    """A dual value is what one more within-limit request costs the optimum."""
    cells = [Cell(US, HOUR, np.array([400, 200, 120, 40])), Cell(EU, HOUR, np.ones(4))]
    limits = LatencyLimits(np.array([0.06, 0.25, 1.0, 0.08]), 0.03)
    base = carbon_lower_bound(WORLD, cells, limits)
    prices = base.prices
    counts = np.sum([c.counts for c in cells], axis=0)
    total = float(counts.sum())
    assert np.any(prices.p95 > 0)  # the limits bind
    eps = 1e-4
    tighter = carbon_lower_bound(
        WORLD, cells, LatencyLimits(limits.p95_s, 0.03, within_share=0.95 + eps)
    )
    grams = (tighter.carbon_g_per_1k - base.carbon_g_per_1k) * total / 1e3
    assert grams == pytest.approx(float(prices.p95 @ counts) * eps, rel=0.05)
    # The SLO and pooled rows, each where it binds alone.
    free = np.full(WORLD.n_types, np.inf)
    slo_only = carbon_lower_bound(WORLD, cells, LatencyLimits(free, 0.02))
    assert slo_only.prices.slo > 0
    fewer = carbon_lower_bound(WORLD, cells, LatencyLimits(free, 0.02 - eps))
    grams = (fewer.carbon_g_per_1k - slo_only.carbon_g_per_1k) * total / 1e3
    assert grams == pytest.approx(slo_only.prices.slo * eps * total, rel=0.05)
    pooled = carbon_lower_bound(WORLD, cells, LatencyLimits(free, 1.0, 0.4))
    assert pooled.prices.pooled > 0 and not np.any(pooled.prices.p95)
    more = carbon_lower_bound(
        WORLD, cells, LatencyLimits(free, 1.0, 0.4, within_share=0.95 + eps)
    )
    grams = (more.carbon_g_per_1k - pooled.carbon_g_per_1k) * total / 1e3
    assert grams == pytest.approx(pooled.prices.pooled * eps * total, rel=0.05)


def test_bad_prices_and_scales_are_refused_by_name() -> None:
    core = _loaded_core()
    prices = LimitPrices(np.ones(WORLD.n_types), 1.0)
    with pytest.raises(ConfigError, match=r"^scale"):
        LimitOracle(core, LIMITS, prices, -1.0)
    with pytest.raises(ConfigError, match=r"^prices"):
        LimitOracle(core, LIMITS, LimitPrices(np.full(WORLD.n_types, np.nan), 1.0))
    with pytest.raises(ConfigError, match=r"limits\.p95_s"):
        LimitOracle(core, LatencyLimits(np.ones(3), 0.1), prices)
    with pytest.raises(ConfigError, match=r"limits\.p95_s"):
        LimitOracle(core, LatencyLimits(np.array([0.1, np.nan, 1, 1]), 0.1), prices)
    with pytest.raises(ConfigError, match=r"prices\.p95"):
        LimitOracle(core, LIMITS, LimitPrices(np.ones(2), 1.0))
