"""The README's main job (today): route traffic on the simulator with each heuristic.

Runs the ``small`` scenario (3 regions, 3 providers) with every region's requests
routed by each load-balancing heuristic and placed by the least-loaded scheduler, and
prints latency, SLO violations, cost and carbon per policy. The federated training
run replaces this once the federation lands (see the README).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from envs import TwoTierCore, TwoTierEnvConfig
from envs import two_tier_kernels as K
from envs.heuristics import LB_HEURISTICS, SCHEDULER_HEURISTICS, choose_node


def evaluate(
    lb: str, scenario: str, envs: int, steps: int, seed: int
) -> dict[str, float]:
    """Every request of every region routed by heuristic ``lb``, placed least-loaded."""
    config = TwoTierEnvConfig(learn="scheduler", lb_heuristic=lb, episode_length=10**9)
    core = TwoTierCore(scenario, envs, config=config)
    core.reset(seed=seed)
    n_max = core.layout.max_nodes
    off = core.layout.node_offset
    rng = np.ones((envs, 2), dtype=np.uint64)
    counter = np.zeros(envs, dtype=np.int64)
    rows = np.empty((steps, envs, 4))
    actions = np.zeros(envs, dtype=np.int64)
    for i in range(steps):
        for b in range(envs):
            block = core.obs[b, off : off + n_max * 7].reshape(n_max, 7)
            actions[b] = choose_node(
                SCHEDULER_HEURISTICS["least_loaded"], block, rng, counter, b
            )
        core.step(actions)
        c = core.comps
        rows[i] = np.stack(
            [c[:, K.C_LATENCY], c[:, K.C_VIOL], c[:, K.C_COST], c[:, K.C_CARBON]],
            axis=1,
        )
    latency, violated, cost, carbon = (rows[:, :, j].ravel() for j in range(4))
    return {
        "p50_ms": float(np.percentile(latency, 50) * 1e3),
        "p95_ms": float(np.percentile(latency, 95) * 1e3),
        "slo_violation_pct": float(violated.mean() * 100),
        "usd_per_1k": float(cost.mean() * 1e3),
        "gco2_per_1k": float(carbon.mean() * 1e3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="small")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"Scenario {args.scenario!r}: {args.envs} x {args.steps} requests per policy")
    header = (
        f"{'load balancer':<14}{'p50 ms':>9}{'p95 ms':>9}{'SLO viol %':>12}"
        f"{'USD/1k':>10}{'gCO2/1k':>10}"
    )
    print(header)
    for lb in LB_HEURISTICS:
        start = time.perf_counter()
        m = evaluate(lb, args.scenario, args.envs, args.steps, args.seed)
        print(
            f"{lb:<14}{m['p50_ms']:>9.1f}{m['p95_ms']:>9.1f}{m['slo_violation_pct']:>12.2f}"
            f"{m['usd_per_1k']:>10.4f}{m['gco2_per_1k']:>10.3f}"
            f"   ({time.perf_counter() - start:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
