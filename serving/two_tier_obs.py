"""Two-tier observations of many live decisions at once, by the simulator's own writer.

:meth:`envs.two_tier.core.TwoTierCore.observe` builds the training observation of one
live state in about 80 us, mostly per-call numpy bookkeeping. For a batch endpoint
that is the whole budget, so :class:`LiveObservationBatch` sets the same state
fields and calls the simulator's kernel (:func:`envs.two_tier.kernels.write_obs`)
for every row inside one compiled function.
The result equals ``observe`` row for row (``tests/serving`` pins this), including
the scheduler phase, whose region block is written in the LB phase first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from envs import TwoTierCore
from envs.datasets import HOURS_PER_YEAR, YEAR_START
from serving.errors import ServingError

_INF = float("inf")


LiveRequest = Mapping[str, Any]
"""One pending decision as the API receives it: ``request_type``, ``origin``,
optional ``time`` (a datetime; None or absent = now), optional ``nodes``
(node name -> ``{"queue_wait_s", "busy_cores"}``, both optional, 0 by default) and
``region_rates`` (region id -> requests/s, regions left out have none; required when
the policy observes region loads)."""


def _at(prefix: str, i: int, field: str) -> str:
    """The JSON path of item ``i``'s ``field`` (``requests[3].origin``)."""
    if field == "type":
        field = "request_type"
    return f"{prefix}[{i}].{field}" if prefix else field


class LiveObservationBatch:
    """Observations and masks of up to ``capacity`` live decisions per call.

    Args:
        core: a fresh (never stepped) core of the checkpoint's scenario and env
            config, with ``num_envs`` rows of scratch space; it is owned by this
            object from now on.
    """

    def __init__(self, core: TwoTierCore) -> None:
        self.core = core
        world = core.world
        self.capacity = core.num_envs
        self.region_ids = world.region_ids
        self.node_names = world.node_names
        self._type_index = {name: i for i, name in enumerate(world.type_names)}
        self._region_index = {name: i for i, name in enumerate(world.region_ids)}
        self._node_index = {name: i for i, name in enumerate(world.node_names)}
        self._node_cores = [int(c) for c in world.node_cores]
        self.reads_region_rates = core.layout.load_input
        starts = world.region_i[:, 0].astype(np.int64)
        self.region_start = starts
        self.region_size = world.region_i[:, 1].astype(np.int64) - starts

    def _lookup(self, table: dict[str, int], value: str, field: str) -> int:
        index = table.get(value)
        if index is None:
            raise ServingError(422, field, f"one of {', '.join(table)}", value)
        return index

    def _node_loads(
        self,
        nodes: Mapping[str, Mapping[str, Any]],
        i: int,
        prefix: str,
        out: tuple[list[int], list[int], list[float], list[int]],
    ) -> None:
        """Append request ``i``'s node loads as (row, node, wait, busy) entries."""
        rows, cols, wait_values, busy_values = out
        node_index = self._node_index
        for name, load in nodes.items():
            j = node_index.get(name)
            if j is None:
                raise ServingError(
                    422,
                    _at(prefix, i, f"nodes.{name}"),
                    "a node of the scenario (<region>/<pool>-<i>)",
                    name,
                )
            wait = load.get("queue_wait_s", 0.0)
            cores = load.get("busy_cores", 0)
            if not (0.0 <= wait < _INF) or cores < 0:
                raise ServingError(
                    422,
                    _at(prefix, i, f"nodes.{name}"),
                    "a finite queue_wait_s >= 0 and busy_cores >= 0",
                    {"queue_wait_s": wait, "busy_cores": cores},
                )
            if cores > self._node_cores[j]:
                raise ServingError(
                    422,
                    _at(prefix, i, f"nodes.{name}.busy_cores"),
                    f"at most {self._node_cores[j]} cores",
                    cores,
                )
            rows.append(i)
            cols.append(j)
            wait_values.append(wait)
            busy_values.append(cores)

    def _region_rates(
        self, rates: Mapping[str, float] | None, i: int, prefix: str
    ) -> list[float]:
        """Request ``i``'s arrival rate of every region, in region order.

        Regions left out have none, as nodes left out are idle.
        """
        field = _at(prefix, i, "region_rates")
        if rates is None:
            raise ServingError(
                422,
                field,
                "the regions' arrival rates in requests/s (this policy observes "
                "region loads: two_tier.load_input)",
            )
        row = [0.0] * len(self.region_ids)
        for name, rate in rates.items():
            q = self._region_index.get(name)
            if q is None:
                raise ServingError(
                    422, f"{field}.{name}", f"one of {', '.join(self.region_ids)}", name
                )
            row[q] = rate
        return row

    def build(
        self,
        requests: Sequence[LiveRequest],
        selected: Sequence[str] | None = None,
        prefix: str = "",
        region_field: str = "region",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write the observations of ``requests``.

        The LB phase, or the scheduler phase when ``selected`` gives each request's
        chosen region.

        Returns:
            ``(obs[n, D], mask[n, A], selected_index[n])``, views into the core's
            buffers valid until the next call (-1 selected in the LB phase).

        Raises:
            ServingError: 422 naming ``<prefix><field>`` for an unknown type,
                region or node, or a load the node cannot have.
        """
        n = len(requests)
        if n == 0:
            return self.core.obs[:0], self.core.mask[:0], np.zeros(0, dtype=np.int64)
        if n > self.capacity:
            raise ServingError(413, "requests", f"at most {self.capacity} items", n)
        core = self.core
        types: list[int] = []
        origins: list[int] = []
        sel: list[int] = []
        hours: list[int] = []
        rows: list[int] = []
        cols: list[int] = []
        wait_values: list[float] = []
        busy_values: list[int] = []
        rate_rows: list[list[float]] = []
        reads_rates = self.reads_region_rates
        type_index, region_index = self._type_index, self._region_index
        now: datetime | None = None
        for i, req in enumerate(requests):
            t = type_index.get(req["request_type"])
            if t is None:
                self._lookup(type_index, req["request_type"], _at(prefix, i, "type"))
            o = region_index.get(req["origin"])
            if o is None:
                self._lookup(region_index, req["origin"], _at(prefix, i, "origin"))
            if selected is not None:
                q = region_index.get(selected[i])
                if q is None:
                    self._lookup(
                        region_index, selected[i], _at(prefix, i, region_field)
                    )
                sel.append(q)  # type: ignore[arg-type]
            types.append(t)  # type: ignore[arg-type]
            origins.append(o)  # type: ignore[arg-type]
            when = req.get("time")
            if when is None:
                now = now or datetime.now(UTC)
                when = now
            elif when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            hours.append(
                int((when - YEAR_START).total_seconds() // 3600) % HOURS_PER_YEAR
            )
            nodes = req.get("nodes")
            if nodes:
                self._node_loads(
                    nodes, i, prefix, (rows, cols, wait_values, busy_values)
                )
            if reads_rates:
                rate_rows.append(self._region_rates(req.get("region_rates"), i, prefix))
        chosen = np.array(sel if selected is not None else [-1] * n, dtype=np.int64)
        items = (
            np.array(types, dtype=np.int64),
            np.array(origins, dtype=np.int64),
            chosen,
            np.array(hours, dtype=np.int64),
        )
        loads = (
            np.array(rows, dtype=np.int64),
            np.array(cols, dtype=np.int64),
            np.array(wait_values, dtype=np.float64),
            np.array(busy_values, dtype=np.float64),
        )
        rates = np.array(rate_rows, dtype=np.float64) if reads_rates else None
        obs, mask = core.observe_arrays(0, *items, *loads, rates)
        return obs, mask, chosen
