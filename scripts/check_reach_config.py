"""Validate and summarise a REACH config set: ``python -m scripts.check_reach_config``.

Usage: ``python -m scripts.check_reach_config <cluster folder> <call-pattern file>``.
Prints nodes per layer and CPU type, pods per service, endpoints and the modelled
mean end-to-end latency of default-scheduler placements; on a bad config prints the
problem (file, JSON path, expectation) to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore
from envs.reach.errors import ReachConfigError, ReachPlacementError
from envs.reach.formats import load_reach_config
from envs.reach.model import LAYERS, Call, ReachConfig


def _count_calls(groups: Sequence[Sequence[Call]]) -> tuple[int, int]:
    """(calls, depth) of a call tree."""
    calls, depth = 0, 0
    for group in groups:
        for call in group:
            sub_calls, sub_depth = _count_calls(call.groups)
            calls += 1 + sub_calls
            depth = max(depth, 1 + sub_depth)
    return calls, depth


def summary(config: ReachConfig, samples: int, seed: int) -> list[str]:
    """The report lines for a validated config set."""
    lines = [f"cluster {config.folder}", f"call patterns {config.app.file}", ""]
    lines.append(f"nodes: {config.n_nodes}")
    for layer in LAYERS:
        nodes = config.nodes.layer_nodes(layer)
        if not nodes:
            continue
        types = Counter(n.cpu_type for n in nodes)
        kinds = ", ".join(dict.fromkeys(n.node_type for n in nodes))
        per_type = ", ".join(f"cpu_type {t}: {c}" for t, c in sorted(types.items()))
        lines.append(f"  {layer:<7}{len(nodes):>4}   {per_type}   ({kinds})")
    lines.append("")
    lines.append(f"pods: {config.n_pods} slots in {len(config.services)} services")
    width = max(len(s.name) for s in config.services)
    for s in config.services:
        kind = "persistent" if s.persistent else "service"
        lines.append(
            f"  {s.name:<{width}}  max-replica {s.max_replica:>3}  cpu {s.cpu:g}  "
            f"memory {s.memory:.3g} GiB  {kind}  layer {s.layer}"
        )
    lines.append("")
    app = config.app
    lines.append(
        f"endpoints: {len(app.endpoints)} (pattern {app.pattern}), "
        f"QoS threshold {app.qos:g} ms"
    )
    for e in app.endpoints:
        calls, depth = _count_calls(e.groups)
        lines.append(
            f"  {e.name}: client {e.client}, rps {e.rps:g}, qos {e.qos:g} ms, "
            f"{calls} calls, depth {depth}"
        )
    core = ReachCore(config, RescheduleConfig(placement="kubernetes"), samples)
    core.reset(seed=seed)
    means = np.array([core.latency(i) for i in range(samples)])
    per_endpoint = np.mean([core.endpoint_latencies(i) for i in range(samples)], axis=0)
    lines.append("")
    lines.append(
        f"modelled mean end-to-end latency, default-scheduler placement "
        f"({samples} sampled clusters, seed {seed}): {means.mean():.2f} ms "
        f"(min {means.min():.2f}, max {means.max():.2f})"
    )
    for e, value in zip(app.endpoints, per_endpoint, strict=True):
        lines.append(f"  {e.name}: {value:.2f} ms")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.check_reach_config", description=__doc__
    )
    parser.add_argument("cluster", type=Path, help="cluster folder <nodes>-<pods>")
    parser.add_argument("call_patterns", type=Path, help="<pattern>_call_patterns.json")
    parser.add_argument("--samples", type=int, default=20, help="clusters to sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    args = parser.parse_args(argv)
    try:
        config = load_reach_config(args.cluster, args.call_patterns)
        lines = summary(config, args.samples, args.seed)
    except (ReachConfigError, ReachPlacementError) as err:
        print(f"invalid config: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
