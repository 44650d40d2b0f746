"""The observation-only FPI rule: its prior against a loop-by-loop statement, its use.

The externality oracle below is written from the definition (M/G/1 relative values,
:mod:`envs.two_tier.reference`) with the scenario's arrays read directly, one node
at a time; nothing here calls :mod:`envs.two_tier.externality`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig, make_region_vec_env
from envs.scenario import (
    NODE_CORES,
    REG_END,
    REG_START,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_EXEC_S,
    TYPE_SLO_S,
    World,
)
from envs.two_tier.heuristics import S_SHAPE
from envs.two_tier.layout import NODE_FEATURES, REGION_FEATURES, ObsLayout
from policies.config import PolicyConfig
from policies.evaluation import TwoTierEvalSpec, evaluate_two_tier
from policies.factory import build_model
from policies.networks.two_tier import (
    FpiGreedyPolicy,
    TwoTierScorer,
    limit_exceedance,
)
from tests.envs.two_tier_oracle import (
    expected_penalty_oracle,
    node_column,
    region_column,
    weighted_choices,
    weighted_node_scores,
    weighted_region_scores,
)

REWARD = RewardConfig(1.0, 0.5, 1.0, 0.25, 1.0)
WEIGHTS = {
    "latency": 1.0,
    "queueing": 0.5,
    "slo_violation": 1.0,
    "cost": 0.25,
    "carbon": 1.0,
}
RHO_MAX = 0.95


def model(
    load_input: bool, region: str = "eu-central", network: str = "two_tier_scorer_fpi"
) -> MaskablePPO:
    env = make_region_vec_env(
        "small",
        region,
        4,
        seed=3,
        config=TwoTierEnvConfig(load_input=load_input),
        reward=REWARD,
    )
    return build_model(env, PolicyConfig(network=network, n_steps=64, batch_size=64))


def node_mean_service(world: World, n: int) -> float:
    """Mean service on node ``n`` of the jobs its region sends it (capable types)."""
    q = int(world.node_region[n])
    shares = np.diff(world.mix_cum[q], prepend=0.0)
    total = weighted = 0.0
    for k in range(world.n_types):
        if world.type_node[k, n, TYPE_NODE_CAPABLE] > 0:
            total += shares[k]
            weighted += shares[k] * world.type_node[k, n, TYPE_NODE_EXEC_S]
    return weighted / total


def region_weight(world: World, q: int) -> float:
    """Reward units per second of waiting of region ``q``'s later jobs."""
    shares = np.diff(world.mix_cum[q], prepend=0.0)
    mean_inv_slo = sum(
        shares[k] / world.type_f[k, TYPE_SLO_S] for k in range(world.n_types)
    )
    return (WEIGHTS["latency"] + WEIGHTS["queueing"]) * mean_inv_slo


def lb_node(world: World, k: int, q: int) -> int | None:
    """The node the LB phase assumes: the fastest capable, the most cores among equals."""
    lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
    capable = [n for n in range(lo, hi) if world.type_node[k, n, TYPE_NODE_CAPABLE] > 0]
    if not capable:
        return None
    return min(
        capable,
        key=lambda m: (
            world.type_node[k, m, TYPE_NODE_EXEC_S],
            -world.node_f[m, NODE_CORES],
        ),
    )


def lb_wait_view(
    world: World, lay: ObsLayout, row: np.ndarray, lb_wait: bool
) -> dict[int, tuple[float, float]]:
    """LB phase: each region's (wait, service) in seconds, as the prior assumes them.

    Without ``lb_wait`` the best completion is all service; with it the LB node's
    execution is the service and the rest of the best completion, less half the
    RTT, the wait.
    """
    k = int(np.argmax(row[lay.type_offset : lay.type_offset + lay.n_types]))
    slo = float(world.type_f[k, TYPE_SLO_S])
    regions = row[lay.region_offset : lay.node_offset].reshape(-1, REGION_FEATURES)
    out = {}
    for q in range(lay.n_regions):
        n = lb_node(world, k, q)
        if n is None:
            continue
        best = float(regions[q, region_column("best_completion")]) * slo
        if not lb_wait:
            out[q] = (0.0, best)
            continue
        service = float(world.type_node[k, n, TYPE_NODE_EXEC_S])
        half_rtt = float(regions[q, region_column("rtt")]) * slo / 2
        out[q] = (max(max(best - service, 0.0) - half_rtt, 0.0), service)
    return out


def externality_oracle(
    world: World, lay: ObsLayout, row: np.ndarray, lb_wait: bool = False
) -> dict[int, float]:
    """Externality of each region (LB phase) or node of the selected region."""
    k = int(np.argmax(row[lay.type_offset : lay.type_offset + lay.n_types]))
    slo = float(world.type_f[k, TYPE_SLO_S])
    regions = row[lay.region_offset : lay.node_offset].reshape(-1, REGION_FEATURES)
    nodes = row[lay.node_offset :].reshape(-1, NODE_FEATURES)
    if lay.load_input:
        loads = row[lay.load_offset : lay.load_offset + lay.n_regions]
    else:
        loads = regions[:, region_column("utilization")]

    def queue_value(q: int) -> float:
        rho = min(float(loads[q]), RHO_MAX)
        return region_weight(world, q) * rho / (2 * (1 - rho))

    out = {}
    if row[0] > 0.5:  # LB: the fastest capable node, the most cores among equals
        for q, (wait, service) in lb_wait_view(world, lay, row, lb_wait).items():
            n = lb_node(world, k, q)
            assert n is not None
            out[q] = (
                queue_value(q)
                * service
                / node_mean_service(world, n)
                * (2 * wait + service / world.node_f[n, NODE_CORES])
            )
        return out
    q = int(np.flatnonzero(regions[:, region_column("is_selected")])[0])
    rtt = float(regions[q, region_column("rtt")])
    lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
    for i, n in enumerate(range(lo, hi)):
        service = float(nodes[i, node_column("exec")]) * slo
        backlog = max(float(nodes[i, node_column("wait")]) - rtt / 2, 0.0) * slo
        if world.type_node[k, n, TYPE_NODE_CAPABLE] <= 0:
            continue
        out[i] = (
            queue_value(q)
            * service
            / node_mean_service(world, n)
            * (2 * backlog + service / world.node_f[n, NODE_CORES])
        )
    return out


@pytest.mark.parametrize(
    ("load_input", "lb_wait"), [(True, False), (False, False), (True, True)]
)
def test_prior_is_the_penalty_plus_the_externality_and_fpi_greedy_follows_it(
    load_input: bool, lb_wait: bool
) -> None:
    network = "two_tier_scorer_fpi_wait" if lb_wait else "two_tier_scorer_fpi"
    learner = model(load_input, network=network)
    scorer = learner.policy.action_net
    for mlp in (scorer.region_mlp, scorer.node_mlp):
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)
    core = learner.env.core
    world, lay = core.world, core.layout
    baseline = FpiGreedyPolicy(core, lb_wait=lb_wait)
    rng = np.random.default_rng(7)
    learner.env.reset()
    seen = {"lb": 0, "scheduler": 0, "externality": 0, "lb_wait": 0}
    for _ in range(60):
        obs = core.obs.copy()
        masks = core.action_masks().copy()
        region_pen, node_pen = scorer.penalties(torch.as_tensor(obs))
        learned, _ = learner.predict(obs, deterministic=True, action_masks=masks)
        rule, _ = baseline.predict(obs, action_masks=masks)
        for b in range(core.num_envs):
            regions = obs[b, lay.region_offset : lay.node_offset].reshape(
                -1, REGION_FEATURES
            )
            nodes = obs[b, lay.node_offset :].reshape(-1, NODE_FEATURES)
            ext = externality_oracle(world, lay, obs[b], lb_wait)
            if obs[b, 0] > 0.5:
                scores = weighted_region_scores(regions, WEIGHTS, REWARD.term_cap, 1.0)
                slo = float(obs[b, lay.type_offset : lay.type_offset + lay.n_types]
                            @ world.type_f[:, TYPE_SLO_S])  # fmt: skip
                for q, (wait, service) in lb_wait_view(
                    world, lay, obs[b], lb_wait
                ).items():
                    if q not in scores:
                        continue
                    scores[q] = expected_penalty_oracle(
                        WEIGHTS,
                        REWARD.term_cap,
                        1.0,
                        float(regions[q, region_column("rtt")])
                        + float(regions[q, region_column("transfer")])
                        + wait / slo,
                        wait / slo,
                        service / slo,
                        float(regions[q, region_column("cost")]),
                        float(regions[q, region_column("carbon")]),
                    )
                    seen["lb_wait"] += wait > 1e-4
                got, util = region_pen[b], regions[:, region_column("utilization")]
                seen["lb"] += 1
            else:
                q = int(np.flatnonzero(regions[:, region_column("is_selected")])[0])
                rtt, transfer = (
                    float(regions[q, region_column(c)]) for c in ("rtt", "transfer")
                )
                scores = weighted_node_scores(
                    nodes, WEIGHTS, REWARD.term_cap, 1.0, rtt, transfer
                )
                got, util = node_pen[b], nodes[:, node_column("utilization")]
                seen["scheduler"] += 1
            for i in scores:
                scores[i] += ext.get(i, 0.0)
                assert float(got[i]) == pytest.approx(scores[i], rel=1e-4, abs=1e-6)
            seen["externality"] += any(v > 1e-4 for v in ext.values())
            valid = {i for i in scores if masks[b, i]}
            allowed = weighted_choices({i: scores[i] for i in valid}, util, tol=1e-4)
            assert learned[b] in allowed and rule[b] in allowed, (b, scores)
        sampled = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        learner.env.step(sampled)
    assert seen["lb"] and seen["scheduler"] and seen["externality"] > 20, seen
    assert (seen["lb_wait"] > 10) == lb_wait, seen  # queues the LB phase read


@pytest.mark.parametrize(
    ("bar", "rule"),
    [("weighted_greedy", "fpi_greedy"), ("fpi_greedy", "fpi_wait_greedy")],
)
def test_each_rule_loses_less_than_the_one_before_in_a_burst(
    bar: str, rule: str
) -> None:
    """Seed 5007 of eu-central meets a burst of its ``code`` trace (lab notebook §2).

    ``fpi_greedy`` prices a request's externality on later ones; its LB phase takes
    a region's best completion as a job's service with no wait, so sending a long
    request to the queueing local region is priced as if its nodes were idle, which
    ``fpi_wait_greedy``'s reading of the wait corrects (§14).
    """
    results = {}
    for name in (bar, rule):
        spec = TwoTierEvalSpec(
            scenario="small",
            region="eu-central",
            seeds=(5007,),
            decisions=8000,
            env=TwoTierEnvConfig(load_input=True),
            reward=RewardConfig(),
        )
        (results[name],) = evaluate_two_tier(name, spec)
    before, after = results[bar], results[rule]
    assert after["mean_reward"] > before["mean_reward"] + 0.2 * abs(
        before["mean_reward"]
    ), (after["mean_reward"], before["mean_reward"])
    assert after["slo_violation_rate"] < before["slo_violation_rate"]


def test_tables_of_another_scenario_are_refused() -> None:
    learner = model(True)
    kwargs = learner.policy.scorer_kwargs
    other = ObsLayout(4, kwargs["n_types"], kwargs["max_nodes"], False, True)
    with pytest.raises(ValueError, match=r"externality\.inv_mean_service"):
        TwoTierScorer(
            other,
            8,
            kwargs["scoring"],
            [8],
            torch.nn.Tanh,
            50.0,
            kwargs["externality"],
        )


@pytest.mark.parametrize("network", ["two_tier_scorer_fpi", "two_tier_scorer_fpi_wait"])
def test_tables_travel_with_the_checkpoint(tmp_path, network: str) -> None:
    learner = model(True, network=network)
    learner.save(tmp_path / "policy.zip")
    loaded = MaskablePPO.load(tmp_path / "policy.zip", device="cpu")
    obs = torch.as_tensor(learner.env.core.obs)
    np.testing.assert_array_equal(
        loaded.policy.action_net(obs).detach().numpy(),
        learner.policy.action_net(obs).detach().numpy(),
    )
    assert loaded.policy.action_net.fpi
    assert loaded.policy.action_net.lb_wait == (network == "two_tier_scorer_fpi_wait")


def test_a_checkpoint_from_before_the_lb_wait_keeps_its_rule() -> None:
    """Saved before stop 29: no ``lb_exec_s`` table, no ``lb_wait`` argument."""
    learner = model(True)
    kwargs = dict(learner.policy.scorer_kwargs)
    old_tables = {
        name: table
        for name, table in kwargs["externality"].items()
        if name != "lb_exec_s"
    }
    layout = learner.policy.obs_layout
    args = (layout, 8, kwargs["scoring"], [8], torch.nn.Tanh, 50.0)
    old = TwoTierScorer(*args, old_tables)
    assert "lb_exec_s" not in old.state_dict()  # so old state dicts load strictly
    old.load_state_dict(TwoTierScorer(*args, kwargs["externality"]).state_dict())
    obs = torch.as_tensor(learner.env.core.obs)
    np.testing.assert_array_equal(
        old.penalties(obs)[0].numpy(),
        learner.policy.action_net.penalties(obs)[0].numpy(),
    )
    with pytest.raises(ValueError, match=r"externality\.lb_exec_s"):
        TwoTierScorer(*args, old_tables, lb_wait=True)
    with pytest.raises(ValueError, match="lb_wait"):
        TwoTierScorer(*args, None, lb_wait=True)


# ------------------------------------------------- pricing per-type latency limits
def exceedance_oracle(
    fixed: float, service: float, limit: float, shape: float
) -> float:
    """P(fixed + service * G > limit), all over the SLO, ``G`` unit-mean Gamma."""
    from scipy import stats

    if fixed >= limit:
        return 1.0
    if service <= 0:
        return 0.0
    return float(stats.gamma(a=shape, scale=service / shape).sf(limit - fixed))


def test_limit_exceedance_is_the_chance_of_missing_each_types_limit() -> None:
    """Against scipy's Gamma law, row by row, in both phases of a loaded run."""
    env = make_region_vec_env(
        "small", "eu-central", 4, seed=5, config=TwoTierEnvConfig(load_input=True)
    )
    env.reset()
    core = env.core
    world, lay = core.world, core.layout
    slo = world.type_f[:, TYPE_SLO_S]
    limits = 0.6 * slo  # tighter than the SLO: many rows in between 0 and 1
    rule = FpiGreedyPolicy(core, latency_limits_s=limits, limit_weight=1.0)
    shape = float(core.scoring[S_SHAPE])
    rng = np.random.default_rng(11)
    seen = {"lb": 0, "scheduler": 0, "between": 0}
    for _ in range(40):
        obs = core.obs.copy()
        region_tail, node_tail = limit_exceedance(
            rule.scorer, torch.as_tensor(obs), rule.scorer.limits_s
        )
        for b in range(core.num_envs):
            k = int(np.argmax(obs[b, lay.type_offset : lay.type_offset + lay.n_types]))
            limit = limits[k] / slo[k]
            regions = obs[b, lay.region_offset : lay.node_offset].reshape(
                -1, REGION_FEATURES
            )
            col = {name: region_column(name) for name in ("rtt", "transfer")}
            if obs[b, 0] > 0.5:
                seen["lb"] += 1
                for i in np.flatnonzero(regions[:, region_column("valid")] > 0):
                    fixed = float(regions[i, col["rtt"]] + regions[i, col["transfer"]])
                    service = float(regions[i, region_column("best_completion")])
                    want = exceedance_oracle(fixed, service, limit, shape)
                    assert float(region_tail[b, i]) == pytest.approx(want, abs=1e-5)
                    seen["between"] += 0.01 < want < 0.99
            else:
                seen["scheduler"] += 1
                q = int(np.flatnonzero(regions[:, region_column("is_selected")])[0])
                rtt = float(regions[q, col["rtt"]])
                fixed_parts = rtt + float(regions[q, col["transfer"]])
                nodes = obs[b, lay.node_offset :].reshape(-1, NODE_FEATURES)
                for i in np.flatnonzero(nodes[:, node_column("valid")] > 0):
                    wait = max(float(nodes[i, node_column("wait")]) - rtt / 2, 0.0)
                    service = float(nodes[i, node_column("exec")])
                    want = exceedance_oracle(fixed_parts + wait, service, limit, shape)
                    assert float(node_tail[b, i]) == pytest.approx(want, abs=1e-5)
                    seen["between"] += 0.01 < want < 0.99
        masks = core.action_masks()
        core.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    assert seen["lb"] and seen["scheduler"] and seen["between"] > 20, seen


def test_pricing_the_limits_keeps_more_requests_within_them() -> None:
    """Weight 0 is ``fpi_greedy`` itself; a large weight misses the limits less.

    asia-east with carbon weighing 4: ``fpi_greedy`` sends requests to cleaner,
    farther regions and misses half-SLO limits on 4 % of them.
    """
    from scripts.benchmarks.quality_two_tier import simulate

    config = TwoTierEnvConfig(load_input=True)
    reward = RewardConfig(1.0, 0.0, 1.0, 0.1, 4.0)
    probe = TwoTierCore("small", 1, ["asia-east"], config, reward)
    limits = 0.5 * probe.world.type_f[:, TYPE_SLO_S]

    def run(weight: float | None) -> tuple[np.ndarray, float, float]:
        policy = (
            FpiGreedyPolicy(probe)
            if weight is None
            else FpiGreedyPolicy(probe, latency_limits_s=limits, limit_weight=weight)
        )
        (table,) = simulate(
            "probe", "small", "asia-east", reward, config, [1003], 1500, policy=policy
        ).requests
        kinds = table["request_type"].astype(np.int64)
        missed = float(np.mean(table["latency_s"] > limits[kinds]))
        return table["node"], missed, float(table["carbon_g"].mean())

    plain_nodes, plain_missed, plain_carbon = run(None)
    zero_nodes, _, _ = run(0.0)
    limits = np.full_like(limits, np.inf)  # no type limited: nothing to price
    unlimited_nodes, _, _ = run(20.0)
    assert np.array_equal(unlimited_nodes, plain_nodes)
    limits = 0.5 * probe.world.type_f[:, TYPE_SLO_S]
    _, priced_missed, priced_carbon = run(20.0)
    assert np.array_equal(zero_nodes, plain_nodes)
    assert plain_missed > 0.02, plain_missed
    assert priced_missed < 0.5 * plain_missed, (priced_missed, plain_missed)
    assert priced_carbon > plain_carbon  # what keeping the limits costs


def test_each_type_is_priced_with_its_own_multiplier() -> None:
    """A ``[K]`` weight scores a row of type ``k`` as the scalar weight ``W[k]`` does.

    Rows of a loaded run, both phases, following the rule's own decisions; on many
    rows the limit term is not zero, so any other weight scores them differently.
    """
    env = make_region_vec_env(
        "small",
        "asia-east",
        8,
        seed=3,
        config=TwoTierEnvConfig(load_input=True),
        reward=RewardConfig(1.0, 0.0, 1.0, 0.1, 4.0),  # carbon pulls far: limits bite
    )
    env.reset()
    core = env.core
    lay = core.layout
    limits = 0.5 * core.world.type_f[:, TYPE_SLO_S]
    weights = np.array([0.0, 40.0, 4.0, 12.0])
    per_type = FpiGreedyPolicy(core, latency_limits_s=limits, limit_weight=weights)
    scalar = [
        FpiGreedyPolicy(core, latency_limits_s=limits, limit_weight=float(w))
        for w in weights
    ]
    priced = dict.fromkeys(range(lay.n_types), 0)
    for _ in range(60):
        obs, masks = core.obs.copy(), core.action_masks()
        kinds = obs[:, lay.type_offset : lay.type_offset + lay.n_types].argmax(1)
        lb = obs[:, 0] > 0.5
        region, node = per_type.scores(obs, masks)
        each = [rule.scores(obs, masks) for rule in scalar]
        for b, k in enumerate(kinds):
            mine = region[b] if lb[b] else node[b]
            options = [e[0][b] if lb[b] else e[1][b] for e in each]
            np.testing.assert_allclose(mine, options[k], rtol=1e-6)
            finite = np.isfinite(mine)
            other = options[(k + 1) % len(options)]
            priced[int(k)] += bool(np.any(np.abs(mine[finite] - other[finite]) > 1e-6))
        core.step(per_type.predict(obs, action_masks=masks)[0])
    assert all(count >= 5 for count in priced.values()), priced


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"latency_limits_s": [0.1, 0.2]}, "latency_limits_s"),
        ({"latency_limits_s": [0.1, 0.2, 0.0, 0.1]}, "latency_limits_s"),
        ({"latency_limits_s": [0.1] * 4, "limit_weight": -1.0}, "limit_weight"),
        ({"latency_limits_s": [0.1] * 4, "limit_weight": [1.0, 2.0]}, "limit_weight"),
        (
            {"latency_limits_s": [0.1] * 4, "limit_weight": [1.0, 2.0, -1.0, 1.0]},
            "limit_weight",
        ),
    ],
)
def test_bad_limits_are_refused_naming_them(kwargs: dict, named: str) -> None:
    core = TwoTierCore("small", 1, ["eu-central"], TwoTierEnvConfig(), RewardConfig())
    with pytest.raises(ValueError, match=named):
        FpiGreedyPolicy(core, **kwargs)
