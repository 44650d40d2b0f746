"""Packing of a config set into a few flat arrays that the numba kernels read.

Numba's call overhead grows with the number of array arguments (about 0.3 us for one,
3.5 us for forty), so the static description of a cluster and application lives in
two arrays (``sf`` static float64, ``si`` static int64) and the dynamic state of B
environments in two more (``fd`` float64 ``[B, DF]``, ``idn`` int32 ``[B, DI]``).
The first ``HEADER`` entries of ``si`` hold the sizes, the switches and, for every named
field, its ``(offset, length)``; the kernels index through the offsets directly
(``sf[si[O_X] + i]`` is element i of static float field X; no named views are built,
which keeps compilation short). The indices below name those fields.

Flat observation: ``[ global (GLOBAL_FEATURES) | nodes (N_max x NODE_FEATURES) |
pods (P_max x (POD_FEATURES [+ N_max node one-hot])) [| move gains (N_max x P_max)]
]``. Times are divided by the QoS threshold (mean of the endpoints' ``qos``),
resources by the largest node capacity of the config; every value is clipped to
``[0, OBS_HIGH]``, move gains (latency drops, which can be negative) to
``[-OBS_HIGH, OBS_HIGH]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from envs.reach.config import RescheduleConfig
from envs.reach.model import LAYERS, Call, ReachConfig

# ---------------------------------------------------------------- header slots
HI_N, HI_P, HI_S, HI_T, HI_K, HI_G, HI_E, HI_M = 0, 1, 2, 3, 4, 5, 6, 7
HI_NM, HI_PM, HI_D = 8, 9, 10
HI_PLACEMENT, HI_REPLICAS, HI_GROWING, HI_QUEUEING, HI_RESPONSE = 11, 12, 13, 14, 15
HI_STOP_AT_QOS, HI_ONEHOT, HI_MAX_MOVES, HI_EVENTS = 16, 17, 18, 19
HI_GAINS, HI_HORIZON = 20, 21
HORIZON_OFF, HORIZON_END, HORIZON_AVERAGE = 0, 1, 2
"""Values of ``HI_HORIZON``: REACH episodes, or fixed-horizon ones by reward."""
HI_FIELDS = 24
"""First (offset, length) pair; fields follow in the order static int, static float,
dynamic float, dynamic int."""

# static int fields
(IF_NODE_LAYER, IF_NODE_CPU_TYPE, IF_CPU_PTR, IF_MEM_PTR, IF_UTIL_PTR,
 IF_SVC_MAX, IF_SVC_FIRST, IF_SVC_PERSISTENT, IF_SVC_ALLOWED, IF_SVC_CLIENT,
 IF_SLOT_SVC, IF_SLOT_RANK, IF_CALL_SVC, IF_CALL_PARENT, IF_CALL_GROUP,
 IF_CALL_GSTART, IF_CALL_GCOUNT, IF_CALL_ENDPOINT, IF_ADJ_PTR, IF_ADJ_SVC,
 IF_SLOT_MOVABLE, IF_NODE_TARGET) = range(22)  # fmt: skip
N_IF = 22
# static float fields
(FF_NODE_BW, FF_CPU_CHOICES, FF_MEM_CHOICES, FF_UTIL_CHOICES, FF_LAT_LO, FF_LAT_HI,
 FF_SVC_CPU, FF_SVC_MEM, FF_SVC_RATE, FF_SVC_WORK, FF_SVC_EXEC, FF_CALL_EXEC,
 FF_CALL_DS, FF_EP_RPS, FF_EP_QOS, FF_ADJ_W, FF_NODE_REL_EXEC, FF_LAT_MID,
 FF_UTIL_MID, FF_PARAMS, FF_SLOT_CPU, FF_SLOT_MEM) = range(22)  # fmt: skip
N_FF = 22
# dynamic float fields (per environment)
(DF_CPU_CAP, DF_MEM_CAP, DF_CPU_FREE, DF_MEM_FREE, DF_BG, DF_SLOW, DF_USAGE,
 DF_WAIT, DF_LAM, DF_BUSY, DF_LAT, DF_TB, DF_PBW, DF_EP_LAT, DF_HOPVEC, DF_GSUM,
 DF_SCAL, DF_INFO, DF_INV_REP, DF_OWN, DF_HOP) = range(21)  # fmt: skip
N_DF = 21
# dynamic int fields (per environment)
DI_POD_NODE, DI_REP, DI_CNT, DI_LCNT, DI_OK, DI_ISCAL = range(6)
N_DI = 6
HEADER = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + N_DI)

# Header slot holding each field's offset: ``array[si[O_X] + i]`` is element i of X.
# Static int fields index ``si``, static float fields ``sf``, dynamic fields an
# environment's ``fd[b]`` / ``idn[b]`` row.
O_NODE_LAYER = HI_FIELDS + 2 * IF_NODE_LAYER
O_NODE_CPU_TYPE = HI_FIELDS + 2 * IF_NODE_CPU_TYPE
O_CPU_PTR = HI_FIELDS + 2 * IF_CPU_PTR
O_MEM_PTR = HI_FIELDS + 2 * IF_MEM_PTR
O_UTIL_PTR = HI_FIELDS + 2 * IF_UTIL_PTR
O_SVC_MAX = HI_FIELDS + 2 * IF_SVC_MAX
O_SVC_FIRST = HI_FIELDS + 2 * IF_SVC_FIRST
O_SVC_PERSISTENT = HI_FIELDS + 2 * IF_SVC_PERSISTENT
O_SVC_ALLOWED = HI_FIELDS + 2 * IF_SVC_ALLOWED
O_SVC_CLIENT = HI_FIELDS + 2 * IF_SVC_CLIENT
O_SLOT_SVC = HI_FIELDS + 2 * IF_SLOT_SVC
O_SLOT_RANK = HI_FIELDS + 2 * IF_SLOT_RANK
O_CALL_SVC = HI_FIELDS + 2 * IF_CALL_SVC
O_CALL_PARENT = HI_FIELDS + 2 * IF_CALL_PARENT
O_CALL_GROUP = HI_FIELDS + 2 * IF_CALL_GROUP
O_CALL_GSTART = HI_FIELDS + 2 * IF_CALL_GSTART
O_CALL_GCOUNT = HI_FIELDS + 2 * IF_CALL_GCOUNT
O_CALL_ENDPOINT = HI_FIELDS + 2 * IF_CALL_ENDPOINT
O_ADJ_PTR = HI_FIELDS + 2 * IF_ADJ_PTR
O_ADJ_SVC = HI_FIELDS + 2 * IF_ADJ_SVC
O_SLOT_MOVABLE = HI_FIELDS + 2 * IF_SLOT_MOVABLE
O_NODE_TARGET = HI_FIELDS + 2 * IF_NODE_TARGET
O_NODE_BW = HI_FIELDS + 2 * (N_IF + FF_NODE_BW)
O_CPU_CHOICES = HI_FIELDS + 2 * (N_IF + FF_CPU_CHOICES)
O_MEM_CHOICES = HI_FIELDS + 2 * (N_IF + FF_MEM_CHOICES)
O_UTIL_CHOICES = HI_FIELDS + 2 * (N_IF + FF_UTIL_CHOICES)
O_LAT_LO = HI_FIELDS + 2 * (N_IF + FF_LAT_LO)
O_LAT_HI = HI_FIELDS + 2 * (N_IF + FF_LAT_HI)
O_SVC_CPU = HI_FIELDS + 2 * (N_IF + FF_SVC_CPU)
O_SVC_MEM = HI_FIELDS + 2 * (N_IF + FF_SVC_MEM)
O_SVC_RATE = HI_FIELDS + 2 * (N_IF + FF_SVC_RATE)
O_SVC_WORK = HI_FIELDS + 2 * (N_IF + FF_SVC_WORK)
O_SVC_EXEC = HI_FIELDS + 2 * (N_IF + FF_SVC_EXEC)
O_CALL_EXEC = HI_FIELDS + 2 * (N_IF + FF_CALL_EXEC)
O_CALL_DS = HI_FIELDS + 2 * (N_IF + FF_CALL_DS)
O_EP_RPS = HI_FIELDS + 2 * (N_IF + FF_EP_RPS)
O_EP_QOS = HI_FIELDS + 2 * (N_IF + FF_EP_QOS)
O_ADJ_W = HI_FIELDS + 2 * (N_IF + FF_ADJ_W)
O_NODE_REL_EXEC = HI_FIELDS + 2 * (N_IF + FF_NODE_REL_EXEC)
O_LAT_MID = HI_FIELDS + 2 * (N_IF + FF_LAT_MID)
O_UTIL_MID = HI_FIELDS + 2 * (N_IF + FF_UTIL_MID)
O_PARAMS = HI_FIELDS + 2 * (N_IF + FF_PARAMS)
O_SLOT_CPU = HI_FIELDS + 2 * (N_IF + FF_SLOT_CPU)
O_SLOT_MEM = HI_FIELDS + 2 * (N_IF + FF_SLOT_MEM)
O_CPU_CAP = HI_FIELDS + 2 * (N_IF + N_FF + DF_CPU_CAP)
O_MEM_CAP = HI_FIELDS + 2 * (N_IF + N_FF + DF_MEM_CAP)
O_CPU_FREE = HI_FIELDS + 2 * (N_IF + N_FF + DF_CPU_FREE)
O_MEM_FREE = HI_FIELDS + 2 * (N_IF + N_FF + DF_MEM_FREE)
O_BG = HI_FIELDS + 2 * (N_IF + N_FF + DF_BG)
O_SLOW = HI_FIELDS + 2 * (N_IF + N_FF + DF_SLOW)
O_USAGE = HI_FIELDS + 2 * (N_IF + N_FF + DF_USAGE)
O_WAIT = HI_FIELDS + 2 * (N_IF + N_FF + DF_WAIT)
O_LAM = HI_FIELDS + 2 * (N_IF + N_FF + DF_LAM)
O_BUSY = HI_FIELDS + 2 * (N_IF + N_FF + DF_BUSY)
O_LAT = HI_FIELDS + 2 * (N_IF + N_FF + DF_LAT)
O_TB = HI_FIELDS + 2 * (N_IF + N_FF + DF_TB)
O_PBW = HI_FIELDS + 2 * (N_IF + N_FF + DF_PBW)
O_EP_LAT = HI_FIELDS + 2 * (N_IF + N_FF + DF_EP_LAT)
O_HOPVEC = HI_FIELDS + 2 * (N_IF + N_FF + DF_HOPVEC)
O_GSUM = HI_FIELDS + 2 * (N_IF + N_FF + DF_GSUM)
O_SCAL = HI_FIELDS + 2 * (N_IF + N_FF + DF_SCAL)
O_INFO = HI_FIELDS + 2 * (N_IF + N_FF + DF_INFO)
O_INV_REP = HI_FIELDS + 2 * (N_IF + N_FF + DF_INV_REP)
O_OWN = HI_FIELDS + 2 * (N_IF + N_FF + DF_OWN)
O_HOP = HI_FIELDS + 2 * (N_IF + N_FF + DF_HOP)
O_POD_NODE = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_POD_NODE)
O_REP = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_REP)
O_CNT = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_CNT)
O_LCNT = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_LCNT)
O_OK = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_OK)
O_ISCAL = HI_FIELDS + 2 * (N_IF + N_FF + N_DF + DI_ISCAL)

# params (static float scalars)
(PR_MIGRATION_COST, PR_SLO_PENALTY, PR_QUEUE_CAP, PR_RESPONSE_RATIO, PR_FAILURE_PROB,
 PR_FAILURE_SLOW, PR_DEGRADE_PROB, PR_DEGRADE_MAX, PR_RECOVERY_PROB, PR_SURGE_PROB,
 PR_SURGE_MAX, PR_QOS_MEAN, PR_CPU_SCALE, PR_MEM_SCALE,
 PR_REWARD_SCALE) = range(15)  # fmt: skip
N_PARAMS = 15
# dynamic float scalars
(SC_LATENCY, SC_RPS_SCALE, SC_VIOLATION, SC_EP_RETURN, SC_EP_START, SC_EP_BEST,
 SC_LAST_RETURN, SC_LAST_START, SC_LAST_END, SC_LAST_BEST) = range(10)  # fmt: skip
N_SCAL = 10
# dynamic int scalars (``ISC_``; the float ones are ``SC_``)
(ISC_MOVES, ISC_PAYLOAD, ISC_STEPS, ISC_INVALID, ISC_EVENTS, ISC_LAST_STEPS,
 ISC_LAST_MOVES, ISC_LAST_INVALID, ISC_LAST_EVENTS,
 ISC_LAST_TERMINATED) = range(10)  # fmt: skip
N_ISCAL = 10

# per-step info (raw, unweighted components of the last step)
INFO_NAMES = (
    "reward", "latency_before", "latency_after", "latency_drop", "migration_cost",
    "slo_penalty", "slo_violation", "moved", "invalid_action", "is_stop", "pod_slot",
    "source_node", "target_node", "failed_node", "degraded_node", "rps_scale",
    "latency_after_events",
)  # fmt: skip
(INFO_REWARD, INFO_LAT_BEFORE, INFO_LAT_AFTER, INFO_DROP, INFO_MIGRATION_COST,
 INFO_SLO_PENALTY, INFO_VIOLATION, INFO_MOVED, INFO_INVALID, INFO_STOP, INFO_POD,
 INFO_SOURCE, INFO_TARGET, INFO_FAILED, INFO_DEGRADED, INFO_RPS_SCALE,
 INFO_LAT_EVENTS) = range(17)  # fmt: skip
N_INFO = len(INFO_NAMES)

# flat observation
GLOBAL_FEATURE_NAMES = (
    "latency", "slo_violation", "time", "rps_scale", "latency_client_cloud",
    "latency_client_edge", "latency_edge_cloud", "running_pods",
)  # fmt: skip
(GF_LATENCY, GF_VIOLATION, GF_TIME, GF_RPS, GF_LAT_CLIENT_CLOUD, GF_LAT_CLIENT_EDGE,
 GF_LAT_EDGE_CLOUD, GF_RUNNING) = range(8)  # fmt: skip
GLOBAL_FEATURES = 8
NODE_FEATURE_NAMES = (
    "present", "is_cloud", "is_edge", "is_client", "cpu_free", "memory_free",
    "cpu_capacity", "memory_capacity", "exec_factor", "healthy", "bandwidth_use",
    "load", "queue_wait",
)  # fmt: skip
(NF_PRESENT, NF_CLOUD, NF_EDGE, NF_CLIENT, NF_CPU_FREE, NF_MEM_FREE, NF_CPU_CAP,
 NF_MEM_CAP, NF_EXEC, NF_HEALTHY, NF_BANDWIDTH, NF_LOAD,
 NF_WAIT) = range(13)  # fmt: skip
NODE_FEATURES = 13
POD_FEATURE_NAMES = (
    "occupied", "movable", "cpu_request", "memory_request", "on_cloud", "on_edge",
    "on_client", "exec_time",
)  # fmt: skip
(PF_OCCUPIED, PF_MOVABLE, PF_CPU, PF_MEM, PF_CLOUD, PF_EDGE, PF_CLIENT,
 PF_EXEC) = range(8)  # fmt: skip
POD_FEATURES = 8
OBS_HIGH = 10.0

PLACEMENT_KUBERNETES, PLACEMENT_RANDOM = 0, 1
PLACEMENT_ATTEMPTS = 100
EPS = 1e-9
"""Tolerance of resource-fit comparisons (free + EPS >= request)."""


@dataclass(frozen=True)
class _FlatCall:
    service: int
    parent: int
    group: int
    endpoint: int
    data_size: float
    exec_ms: tuple[float, ...]
    n_groups: int
    group_start: int


def _flatten(config: ReachConfig, n_types: int) -> tuple[list[_FlatCall], int]:
    """Calls in pre-order (children after parents); group ids contiguous per call."""
    index = {s.name: i for i, s in enumerate(config.services)}
    calls: list[_FlatCall] = []
    n_groups = 0

    def visit(
        service: str,
        times: tuple[float, ...],
        data_size: float,
        groups: Sequence[Sequence[Call]],
        parent: int,
        group: int,
        endpoint: int,
    ) -> None:
        nonlocal n_groups
        start = n_groups
        n_groups += len(groups)
        k = len(calls)
        calls.append(
            _FlatCall(
                index[service], parent, group, endpoint, data_size, times,
                len(groups), start,
            )
        )  # fmt: skip
        for g, members in enumerate(groups):
            for call in members:
                exec_ms = tuple(call.execution_time.get(t, 0.0) for t in range(n_types))
                visit(
                    call.service,
                    exec_ms,
                    call.data_size,
                    call.groups,
                    k,
                    start + g,
                    endpoint,
                )

    for e, endpoint in enumerate(config.app.endpoints):
        visit(endpoint.client, (0.0,) * n_types, 0.0, endpoint.groups, -1, -1, e)
    return calls, n_groups


class _Packer:
    """Concatenates named fields into one array, recording (offset, length)."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.spans: list[tuple[int, int]] = []
        self.size = 0

    def add(self, values: object) -> None:
        arr: np.ndarray = np.ascontiguousarray(
            np.asarray(values, dtype=self.dtype).ravel()
        )
        self.parts.append(arr)
        self.spans.append((self.size, arr.size))
        self.size += arr.size

    def reserve(self, length: int) -> None:
        self.add(np.zeros(length, dtype=self.dtype))


@dataclass(frozen=True)
class Layout:
    """Packed static arrays plus the sizes the Python side needs."""

    sf: np.ndarray
    """Static float64 array."""
    si: np.ndarray
    """Static int64 array (header first)."""
    n_nodes: int
    """N."""
    n_pods: int
    """P."""
    n_services: int
    """S."""
    max_nodes: int
    """N_max (node axis of spaces)."""
    max_pods: int
    """P_max (pod axis of spaces)."""
    obs_dim: int
    """Flat observation length."""
    df_size: int
    """Dynamic float row length."""
    di_size: int
    """Dynamic int row length."""
    df_spans: tuple[tuple[int, int], ...]
    """(offset, length) of each dynamic float field."""
    di_spans: tuple[tuple[int, int], ...]
    """(offset, length) of each dynamic int field."""

    @property
    def n_actions(self) -> int:
        """``N_max * P_max + 1`` (stop last)."""
        return self.max_nodes * self.max_pods + 1

    def df(self, row: np.ndarray, field: int) -> np.ndarray:
        """View of dynamic float ``field`` in one environment's row."""
        start, length = self.df_spans[field]
        return row[start : start + length]

    def di(self, row: np.ndarray, field: int) -> np.ndarray:
        """View of dynamic int ``field`` in one environment's row."""
        start, length = self.di_spans[field]
        return row[start : start + length]


def _choices(values: Iterator[tuple[float, ...]]) -> tuple[list[float], list[int]]:
    flat: list[float] = []
    ptr = [0]
    for choice in values:
        flat.extend(choice)
        ptr.append(len(flat))
    return flat, ptr


def _midpoint(choice: tuple[float, ...]) -> float:
    return (
        (choice[0] + choice[1]) / 2 if len(choice) == 2 else sum(choice) / len(choice)
    )


def horizon_code(settings: RescheduleConfig) -> int:
    """``HI_HORIZON``'s value: REACH episodes, or a fixed horizon and its reward."""
    if not settings.horizon:
        return HORIZON_OFF
    return HORIZON_AVERAGE if settings.horizon_reward == "average" else HORIZON_END


def build_layout(config: ReachConfig, settings: RescheduleConfig) -> Layout:
    """Pack ``config`` under ``settings`` (padding, switches, reward parameters)."""
    nodes = config.nodes.nodes
    services = config.services
    n, p, s = len(nodes), config.n_pods, len(services)
    nm = settings.max_nodes or n
    pm = settings.max_pods or p
    if nm < n or pm < p:
        raise ValueError(
            f"RescheduleConfig.max_nodes/max_pods: expected at least the config's "
            f"{n} nodes and {p} pod slots ({config.folder}), got {nm} and {pm}"
        )
    n_types = max(node.cpu_type for node in nodes) + 1
    calls, n_groups = _flatten(config, n_types)
    k = len(calls)
    e = len(config.app.endpoints)
    # --- services and slots
    first = np.cumsum([0] + [svc.max_replica for svc in services])[:-1]
    slot_svc = np.repeat(np.arange(s), [svc.max_replica for svc in services])
    slot_rank = np.concatenate([np.arange(svc.max_replica) for svc in services])
    allowed = [
        sum(1 << LAYERS.index(layer) for layer in svc.allowed_layers())
        for svc in services
    ]

    # --- per-service load and adjacency
    rate = np.zeros(s)
    work = np.zeros((s, n_types))
    weights = np.zeros((s, s))
    exec_table = np.zeros((k, n_types))
    for i, call in enumerate(calls):
        exec_table[i] = call.exec_ms
        if call.parent < 0:
            continue
        rps = config.app.endpoints[call.endpoint].rps
        rate[call.service] += rps
        work[call.service] += rps * exec_table[i]
        caller = calls[call.parent].service
        weights[caller, call.service] += rps * call.data_size
        weights[call.service, caller] += rps * call.data_size
    mean_exec = np.zeros((s, n_types))
    for svc in range(s):
        if rate[svc] > 0:
            mean_exec[svc] = work[svc] / rate[svc]
    adj_ptr = [0]
    adj_svc: list[int] = []
    adj_w: list[float] = []
    for x in range(s):
        for y in range(s):
            if weights[x, y] > 0:
                adj_svc.append(y)
                adj_w.append(float(weights[x, y]))
        adj_ptr.append(len(adj_svc))

    # --- node features that never change
    node_types = sorted({node.cpu_type for node in nodes if node.layer != "client"})
    rel_exec = np.ones(n)
    called = [c for c in calls if c.parent >= 0]
    for j, node in enumerate(nodes):
        ratios = [
            c.exec_ms[node.cpu_type] / max(c.exec_ms[t] for t in node_types)
            for c in called
            if node_types and max(c.exec_ms[t] for t in node_types) > 0
        ]
        rel_exec[j] = float(np.mean(ratios)) if ratios else 1.0

    lat_lo = np.zeros(9)
    lat_hi = np.zeros(9)
    lat_mid = np.zeros(9)
    for (src, dst), (low, high) in config.nodes.latency.items():
        cell = LAYERS.index(src) * 3 + LAYERS.index(dst)
        lat_lo[cell], lat_hi[cell], lat_mid[cell] = low, high, (low + high) / 2
    for layer in range(3):
        lat_lo[layer * 4] = lat_hi[layer * 4] = lat_mid[layer * 4] = 1.0

    cpu_flat, cpu_ptr = _choices(node.cpu_choices for node in nodes)
    mem_flat, mem_ptr = _choices(node.memory_choices for node in nodes)
    util_flat, util_ptr = _choices(node.utilization_choices for node in nodes)

    params = np.zeros(N_PARAMS)
    params[PR_MIGRATION_COST] = settings.migration_cost
    params[PR_SLO_PENALTY] = settings.slo_penalty
    params[PR_QUEUE_CAP] = settings.queue_wait_cap_ms
    params[PR_RESPONSE_RATIO] = settings.response_size_ratio
    params[PR_FAILURE_PROB] = settings.failure_prob
    params[PR_FAILURE_SLOW] = settings.failure_slowdown
    params[PR_DEGRADE_PROB] = settings.degradation_prob
    params[PR_DEGRADE_MAX] = settings.degradation_max
    params[PR_RECOVERY_PROB] = settings.recovery_prob
    params[PR_SURGE_PROB] = settings.surge_prob
    params[PR_SURGE_MAX] = settings.surge_max
    params[PR_QOS_MEAN] = config.app.qos if config.app.qos > 0 else 1.0
    params[PR_CPU_SCALE] = max(max(node.cpu_choices) for node in nodes) or 1.0
    params[PR_MEM_SCALE] = max(max(node.memory_choices) for node in nodes) or 1.0
    qos_unit = settings.reward_unit == "qos"
    params[PR_REWARD_SCALE] = 1.0 / params[PR_QOS_MEAN] if qos_unit else 1.0

    # --- pack static arrays
    ints = _Packer(np.int64)
    ints.add([node.layer_code for node in nodes])
    ints.add([node.cpu_type for node in nodes])
    ints.add(cpu_ptr)
    ints.add(mem_ptr)
    ints.add(util_ptr)
    ints.add([svc.max_replica for svc in services])
    ints.add(first)
    ints.add([int(svc.persistent) for svc in services])
    ints.add(allowed)
    ints.add([int(svc.is_client) for svc in services])
    ints.add(slot_svc)
    ints.add(slot_rank)
    ints.add([c.service for c in calls])
    ints.add([c.parent for c in calls])
    ints.add([c.group for c in calls])
    ints.add([c.group_start for c in calls])
    ints.add([c.n_groups for c in calls])
    ints.add([c.endpoint for c in calls])
    ints.add(adj_ptr)
    ints.add(adj_svc)
    movable = [int(not (svc.persistent or svc.is_client)) for svc in services]
    ints.add(np.asarray(movable, dtype=np.int64)[slot_svc])
    ints.add([int(node.layer != "client") for node in nodes])
    assert len(ints.spans) == N_IF

    floats = _Packer(np.float64)
    floats.add([node.bandwidth for node in nodes])
    floats.add(cpu_flat)
    floats.add(mem_flat)
    floats.add(util_flat)
    floats.add(lat_lo)
    floats.add(lat_hi)
    floats.add([svc.cpu for svc in services])
    floats.add([svc.memory for svc in services])
    floats.add(rate)
    floats.add(work)
    floats.add(mean_exec)
    floats.add(exec_table)
    floats.add([c.data_size for c in calls])
    floats.add([ep.rps for ep in config.app.endpoints])
    floats.add([ep.qos for ep in config.app.endpoints])
    floats.add(adj_w)
    floats.add(rel_exec)
    floats.add(lat_mid)
    floats.add([_midpoint(node.utilization_choices) for node in nodes])
    floats.add(params)
    floats.add(np.array([svc.cpu for svc in services])[slot_svc])
    floats.add(np.array([svc.memory for svc in services])[slot_svc])
    assert len(floats.spans) == N_FF

    dyn_f = _Packer(np.float64)
    for length in (n, n, n, n, n, n, n, n, n, n, 9, p, p, e, 3 * s, max(n_groups, 1),
                   N_SCAL, N_INFO, s, k, k):  # fmt: skip
        dyn_f.reserve(length)
    dyn_i = _Packer(np.int64)
    for length in (p, s, s * n, s * 3, n, N_ISCAL):
        dyn_i.reserve(length)

    pod_width = POD_FEATURES + (nm if settings.pod_node_onehot else 0)
    gains_width = nm * pm * int(settings.move_gains)
    obs_dim = GLOBAL_FEATURES + nm * NODE_FEATURES + pm * pod_width + gains_width

    header = np.zeros(HEADER, dtype=np.int64)
    header[HI_N], header[HI_P], header[HI_S], header[HI_T] = n, p, s, n_types
    header[HI_K], header[HI_G], header[HI_E], header[HI_M] = (
        k,
        n_groups,
        e,
        len(adj_svc),
    )
    header[HI_NM], header[HI_PM], header[HI_D] = nm, pm, obs_dim
    header[HI_PLACEMENT] = (
        PLACEMENT_KUBERNETES if settings.placement == "kubernetes" else PLACEMENT_RANDOM
    )
    header[HI_REPLICAS] = int(settings.replicas == "max")
    header[HI_GROWING] = int(settings.migration_cost_growth == "growing")
    header[HI_QUEUEING] = int(settings.queueing)
    header[HI_RESPONSE] = int(settings.response_transfer)
    header[HI_STOP_AT_QOS] = int(settings.stop_at_qos)
    header[HI_ONEHOT] = int(settings.pod_node_onehot)
    header[HI_MAX_MOVES] = settings.max_moves
    header[HI_EVENTS] = int(settings.events)
    header[HI_GAINS] = int(settings.move_gains)
    header[HI_HORIZON] = horizon_code(settings)
    spans = [
        *[(HEADER + off, length) for off, length in ints.spans],
        *floats.spans,
        *dyn_f.spans,
        *dyn_i.spans,
    ]
    for i, (offset, length) in enumerate(spans):
        header[HI_FIELDS + 2 * i] = offset
        header[HI_FIELDS + 2 * i + 1] = length
    si = np.concatenate([header, *ints.parts]).astype(np.int64)
    sf = np.concatenate(floats.parts).astype(np.float64)
    assert math.isfinite(float(sf.sum()))
    return Layout(
        sf=sf,
        si=si,
        n_nodes=n,
        n_pods=p,
        n_services=s,
        max_nodes=nm,
        max_pods=pm,
        obs_dim=obs_dim,
        df_size=dyn_f.size,
        di_size=dyn_i.size,
        df_spans=tuple(dyn_f.spans),
        di_spans=tuple(dyn_i.spans),
    )
