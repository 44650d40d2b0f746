"""Node queues: FCFS multi-core servers simulated exactly, with the theory beside.

A node with ``c`` cores is a single FCFS queue in front of ``c`` identical servers (one
per core). The simulator keeps, per core, the time at which it becomes free; a job that
reaches the node at time ``t`` takes the earliest-free core and starts at
``max(t, free)``. With Poisson arrivals and exponential service this *is* the M/M/c
queue, so the mean waiting time must match Erlang C (``c = 1``: M/M/1); the tests check
both within 5 %. No delay constant is added anywhere: waiting follows from the backlog.

The closed forms below are also the queueing extension of the rescheduling env, which
knows request rates rather than individual requests.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def dispatch(
    core_free: np.ndarray, n_cores: int, arrival: float, service: float
) -> float:
    """Admit a job at ``arrival`` needing ``service`` seconds; return its queue wait.

    ``core_free`` holds each core's free-at time (only the first ``n_cores`` are used)
    and is updated in place.
    """
    best = 0
    best_free = core_free[0]
    for k in range(1, n_cores):
        if core_free[k] < best_free:
            best_free = core_free[k]
            best = k
    start = arrival if arrival > best_free else best_free
    core_free[best] = start + service
    return start - arrival


@nb.njit(cache=True, inline="always")
def dispatch_at(
    core_free: np.ndarray,
    b: int,
    first: int,
    n_cores: int,
    arrival: float,
    service: float,
) -> float:
    """:func:`dispatch` on cores ``first .. first + n_cores - 1`` of row ``b``.

    The same rule without slicing a view (views cost reference counting in numba).
    """
    cores = core_free[b]
    best = nb.uint64(first)
    best_free = cores[best]
    for k in range(first + 1, first + n_cores):
        free = cores[nb.uint64(k)]  # unsigned: no negative-index fix-up
        if free < best_free:
            best_free = free
            best = nb.uint64(k)
    start = arrival if arrival > best_free else best_free
    cores[best] = start + service
    return start - arrival


@nb.njit(cache=True)
def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Probability that an arriving job waits in an M/M/c queue (Erlang C).

    Returns 1.0 when the queue is unstable (utilisation >= 1).
    """
    a = arrival_rate / service_rate
    rho = a / servers
    if rho >= 1.0:
        return 1.0
    # Numerically stable recursion for the Erlang B blocking probability, then C.
    b = 1.0
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    return b / (1.0 - rho * (1.0 - b))


@nb.njit(cache=True)
def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait in queue of M/M/c (M/M/1 for ``servers == 1``); inf if unstable."""
    if arrival_rate <= 0.0:
        return 0.0
    if arrival_rate >= servers * service_rate:
        return math.inf
    pw = erlang_c(arrival_rate, service_rate, servers)
    return pw / (servers * service_rate - arrival_rate)
