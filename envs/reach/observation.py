"""REACH's ``Dict`` observation (spec §5.2), built from the core's arrays.

Keys and units are REACH's (raw cores, GiB-like memory, ms, steps); the ``6aa794e``
key set adds ``Node_layer``, ``Layer_latency`` and ``time_step`` to the three keys of
REACH's testbed server. Bounds are REACH's nominal ones with
``reach_exact_bounds`` (values may exceed them, as in REACH), otherwise widened to
cover the config and values are clipped into them.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.reach.config import RescheduleConfig
from envs.reach.core import ReachCore

REACH_CPU_HIGH = 16.0
REACH_MEMORY_HIGH = 16.0
REACH_LATENCY_HIGH = 500.0
REACH_STEP_HIGH = 100


def reach_observation_space(core: ReachCore, settings: RescheduleConfig) -> spaces.Dict:
    """The ``Dict`` space for ``core``'s config, padded to its node and pod axes."""
    lay = core.layout
    nodes = core.config.nodes.nodes
    cpu_high, mem_high = REACH_CPU_HIGH, REACH_MEMORY_HIGH
    lat_high, step_high = REACH_LATENCY_HIGH, REACH_STEP_HIGH
    if not settings.reach_exact_bounds:
        cpu_high = max(cpu_high, *(max(n.cpu_choices) for n in nodes))
        mem_high = max(mem_high, *(max(n.memory_choices) for n in nodes))
        lat_high = max(lat_high, *(hi for _, hi in core.config.nodes.latency.values()))
        step_high = max(step_high, settings.max_moves)
    nm, pm = lay.max_nodes, lay.max_pods
    keys: dict[str, spaces.Space] = {
        "Node_cpu_availability": spaces.Box(0.0, cpu_high, (nm,), dtype=np.float32),
        "Node_memory_availability": spaces.Box(0.0, mem_high, (nm,), dtype=np.float32),
        "Pod_node_id": spaces.MultiDiscrete(np.full(pm, nm + 1, dtype=np.int64)),
    }
    if settings.reach_keys == "6aa794e":
        keys["Node_layer"] = spaces.Box(0, 3, (nm,), dtype=np.int32)
        keys["Layer_latency"] = spaces.Box(0.0, lat_high, (1,), dtype=np.float32)
        keys["time_step"] = spaces.Box(0, step_high, (1,), dtype=np.int32)
    return spaces.Dict(keys)


def reach_observation(
    core: ReachCore, index: int, space: spaces.Dict, clip: bool
) -> dict[str, np.ndarray]:
    """Environment ``index``'s current state in REACH's keys (new arrays every call)."""
    lay = core.layout
    nm, pm, n = lay.max_nodes, lay.max_pods, lay.n_nodes
    resources = core.node_resources(index)
    cpu = np.zeros(nm, dtype=np.float32)
    mem = np.zeros(nm, dtype=np.float32)
    cpu[:n] = resources["cpu_free"]
    mem[:n] = resources["memory_free"]
    pods = np.zeros(pm, dtype=np.int64)
    pods[: lay.n_pods] = core.pod_nodes(index) + 1
    obs: dict[str, np.ndarray] = {
        "Node_cpu_availability": cpu,
        "Node_memory_availability": mem,
        "Pod_node_id": pods,
    }
    if "Node_layer" in space.spaces:
        layers = np.zeros(nm, dtype=np.int32)
        layers[:n] = [node.layer_code for node in core.config.nodes.nodes]
        obs["Node_layer"] = layers
        client_to_cloud = core.layer_latency(index)[2, 0]
        obs["Layer_latency"] = np.array([client_to_cloud], dtype=np.float32)
        obs["time_step"] = np.array([core.moves(index)], dtype=np.int32)
    if clip:
        for key, value in obs.items():
            box = space.spaces[key]
            if isinstance(box, spaces.Box):
                np.clip(value, box.low, box.high, out=value)
    return obs
