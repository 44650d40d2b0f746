"""The privileged reference dispatchers score what the simulator will then do.

``joint``'s score of a node is the weighted penalty of serving the request there,
with the wait it will meet on arrival: recomputed here with the oracle (scipy) from
what the kernel reports once the request is placed (wait, RTT, transfer, egress),
with no RTT tail so that the median the rule uses is the RTT drawn. FPI adds the
M/G/1 externality, recomputed from its formula; SITA its penalty on avoided nodes.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import RewardConfig, TwoTierCore, TwoTierEnvConfig, load_scenario
from envs.scenario import (
    NODE_ACCESS_RTT_S,
    NODE_CORE_OFFSET,
    NODE_PRICE_CORE_S,
    NODE_WATTS_BUSY_CORE,
    PAIR_BW_BPS,
    PAIR_RTT_S,
    TYPE_CARBON_REF,
    TYPE_COST_REF,
    TYPE_IN_GB,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_EXEC_S,
    TYPE_SLO_S,
)
from envs.two_tier import kernels as K
from envs.two_tier.reference import ReferenceDispatcher, ReferenceOptions
from tests.envs.two_tier_oracle import expected_penalty_oracle

REWARD = RewardConfig(1.0, 0.5, 1.0, 0.25, 1.0)
NAMES = ("latency", "queueing", "slo_violation", "cost", "carbon")


def core_without_rtt_tail() -> TwoTierCore:
    scenario = load_scenario("bursty")
    scenario.network.rtt_tail = "none"  # the drawn RTT is the median the rule uses
    core = TwoTierCore(scenario, 2, ["eu-central"], TwoTierEnvConfig(), REWARD)
    core.reset(seed=4)
    return core


def test_joint_scores_the_penalty_the_request_then_meets() -> None:
    core = core_without_rtt_tail()
    rule = ReferenceDispatcher(core, "joint")
    world = core.world
    weights = {name: getattr(REWARD, name) for name in NAMES}
    checked = 0
    for _ in range(150):
        phase = core.ist[:, K.IS_PHASE].copy()
        before = [rule.scores(b) for b in range(core.num_envs)]
        actions = rule.act()
        core.step(actions)
        for b in np.flatnonzero(phase == 1):  # scheduler steps: placed now
            c = core.comps[b]
            k, n, q = int(c[K.C_TYPE]), int(c[K.C_NODE]), int(c[K.C_REGION])
            lo = world.region_i[q, 0]
            allowed = before[b][lo : world.region_i[q, 1]]
            assert n - lo == int(np.argmin(allowed))  # the best valid node was taken
            slo = world.type_f[k, TYPE_SLO_S]
            service = world.type_node[k, n, TYPE_NODE_EXEC_S]
            mean_cost = service * world.node_f[n, NODE_PRICE_CORE_S] + c[K.C_EGRESS]
            carbon = (
                service * world.node_f[n, NODE_WATTS_BUSY_CORE] / 3.6e6
                * core.reg_dyn[b, K.RD_CARBON, q]
            )  # fmt: skip
            expected = expected_penalty_oracle(
                weights,
                REWARD.term_cap,
                1.0,
                (c[K.C_RTT] + c[K.C_TRANSFER] + c[K.C_WAIT]) / slo,
                c[K.C_WAIT] / slo,
                service / slo,
                mean_cost / world.type_f[k, TYPE_COST_REF],
                carbon / world.type_f[k, TYPE_CARBON_REF],
            )
            assert before[b][n] == pytest.approx(expected, rel=1e-6, abs=1e-9)
            checked += 1
    assert checked > 100


def test_fpi_adds_the_mg1_externality_and_sita_its_penalty() -> None:
    core = core_without_rtt_tail()
    joint = ReferenceDispatcher(core, "joint")
    opts = ReferenceOptions(fpi_scale=1.0, rho_max=0.95, sita_penalty=0.3)
    fpi = ReferenceDispatcher(core, "fpi", opts)
    sita = ReferenceDispatcher(core, "sita", opts)
    world = core.world
    seen = 0
    for _ in range(40):
        for b in range(core.num_envs):
            base, ext, avoid = joint.scores(b), fpi.scores(b), sita.scores(b)
            k, o = int(core.ist[b, K.IS_TYPE]), int(core.ist[b, K.IS_ORIGIN])
            t = core.fs[b, K.FS_T]
            for n in np.flatnonzero(np.isfinite(base)):
                q = int(world.node_region[n])
                c = int(world.node_cores[n])
                first = int(world.node_f[n, NODE_CORE_OFFSET])
                rtt = (
                    world.pair_f[o, q, PAIR_RTT_S] + world.node_f[n, NODE_ACCESS_RTT_S]
                )
                upload = (
                    world.type_f[k, TYPE_IN_GB] * 1e9 / world.pair_f[o, q, PAIR_BW_BPS]
                )
                free = core.core_free[b, first : first + c]
                backlog = np.clip(free - (t + rtt / 2 + upload), 0, None).sum() / c
                x = world.type_node[k, n, TYPE_NODE_EXEC_S] / c
                rho = min(core.reg_dyn[b, K.RD_RATE, q] / world.capacity_rps[q], 0.95)
                mix = np.diff(world.mix_cum[q], prepend=0.0)
                capable = world.type_node[:, n, TYPE_NODE_CAPABLE] > 0
                share = mix[capable] / mix[capable].sum()
                mean_s = share @ world.type_node[capable, n, TYPE_NODE_EXEC_S]
                inv_slo = (mix / world.type_f[:, TYPE_SLO_S]).sum()
                expected = (
                    (REWARD.latency + REWARD.queueing) * inv_slo * (rho * c / mean_s)
                    * x * (2 * backlog + x) / (2 * (1 - rho))
                )  # fmt: skip
                assert ext[n] - base[n] == pytest.approx(expected, rel=1e-9, abs=1e-12)
                assert avoid[n] - base[n] in (0.0, pytest.approx(0.3))
                seen += 1
        core.step(joint.act())
    assert seen > 500
    heavy, light = world.type_names.index("analytics"), world.type_names.index("web")
    assert sita.avoid[heavy].any() and not sita.avoid[light].any()
    names = np.array(world.node_names)  # analytics avoid the 4-core cloud nodes only
    assert all("/cloud-" in m for m in names[sita.avoid[heavy]])
    assert not any("spot" in m for m in names[sita.avoid[heavy]])
