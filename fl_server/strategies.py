"""The server's strategy, chosen by ``strategy.name``: Flower's own classes, observed.

FedAvg, FedProx, FedMedian and FedTrimmedAvg are ``flwr.serverapp.strategy`` classes;
:class:`Observed` adds the run's bookkeeping by overriding the train/evaluate hooks,
each of which calls ``super()`` and only watches (absolute round numbers for resumed
runs, per-region metrics, regions that dropped). FedAvg and FedProx weight by
``num-examples`` (env steps); the median and trimmed mean are coordinate-wise and
unweighted by design. Two research comparisons reuse the same machinery:
:class:`LocalOnly` (no aggregation) and :class:`Centralized` (one agent, every region).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedMedian, FedProx, FedTrimmedAvg, Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from conf.schema import RunConfig, StrategyName
from fl_server.limit_dual import PRICES_KEY
from fl_server.session import FederationSession
from fl_server.wire import LAYOUT_KEY

PER_NODE_KEYS = ("region-index",)
"""Reply metrics that identify a node: recorded by the session, never averaged."""


def aggregate_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's weighted mean of the replies' metrics, without per-node keys."""
    aggregated = aggregate_metricrecords(records, weighted_by_key)
    for key in PER_NODE_KEYS:
        if key in aggregated:
            del aggregated[key]
    return aggregated


class Observed:
    """Mixin: lets the session watch every round of a Flower strategy.

    Placed before the Flower class in the bases, so each hook runs the strategy's own
    logic through ``super()`` and only adds bookkeeping around it.
    """

    session: FederationSession
    mode = "federated"

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Absolute round numbers, the round's mode, the handshake of new nodes.

        With ``reward.limit_price_lr > 0``, the round's tail-limit prices too.
        """
        self.session.directory.refresh(
            grid, self.session.cfg.federation.round_timeout_s
        )
        config["mode"] = self.mode
        config[LAYOUT_KEY] = self.session.layout_digest
        prices = self.session.limit_prices()
        if prices is not None:
            config[PRICES_KEY] = prices
        absolute = self.session.absolute(server_round)
        messages = list(super().configure_train(absolute, arrays, config, grid))  # type: ignore[misc]
        messages = self.tailor(messages, config)
        self.session.round_started(absolute, messages)
        return messages

    def tailor(self, messages: list[Message], config: ConfigRecord) -> list[Message]:
        """Adjust the sampled train messages (the comparisons override this)."""
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record the replies (before robust aggregators consume their arrays)."""
        replies = list(replies)
        replies = self.session.train_replies(
            self.session.absolute(server_round), replies
        )
        return super().aggregate_train(server_round, replies)  # type: ignore[misc, no-any-return]

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Absolute round numbers and the mode in evaluate messages too.

        With moving limit prices, the prices the evaluated policy was trained at.
        """
        config["mode"] = self.mode
        config[LAYOUT_KEY] = self.session.layout_digest
        if self.session.trained_prices is not None:
            config[PRICES_KEY] = self.session.trained_prices
        absolute = self.session.absolute(server_round)
        return super().configure_evaluate(absolute, arrays, config, grid)  # type: ignore[misc, no-any-return]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Record each region's client-side evaluation."""
        replies = list(replies)
        self.session.evaluate_replies(self.session.absolute(server_round), replies)
        return super().aggregate_evaluate(server_round, replies)  # type: ignore[misc, no-any-return]


class ObservedFedAvg(Observed, FedAvg):
    """FedAvg, weighted by env steps."""


class ObservedFedProx(Observed, FedProx):
    """FedProx: FedAvg plus ``proximal-mu`` in every train config."""


class ObservedFedMedian(Observed, FedMedian):
    """Coordinate-wise median of the regions' policies."""


class ObservedFedTrimmedAvg(Observed, FedTrimmedAvg):
    """Coordinate-wise trimmed mean (``strategy.trimmed_beta`` cut at each end)."""


class LocalOnly(Observed, FedAvg):
    """Comparison: no aggregation; every region keeps training its own policy.

    Clients start each round from their own policy (kept in ``context.state``); the
    server keeps a copy of each region's policy to evaluate and checkpoint it, and
    hands it back to a node that lost its state (a restarted SuperNode or server).
    """

    mode = "local"

    def tailor(self, messages: list[Message], config: ConfigRecord) -> list[Message]:
        """Each message carries its node's own policy, once the server has it."""
        for message in messages:
            personal = self.session.personal_arrays(message.metadata.dst_node_id)
            if personal is not None:
                message.content = RecordDict(
                    {self.arrayrecord_key: personal, self.configrecord_key: config}
                )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep the metrics, drop the average: there is no global policy."""
        _, metrics = super().aggregate_train(server_round, replies)
        return None, metrics


class Centralized(Observed, FedAvg):
    """Comparison: one agent controls every region's traffic, same total env steps.

    One sampled node trains on the all-regions env for ``local_steps x regions`` env
    steps per round; its policy becomes the global one, evaluated like the others.
    """

    mode = "centralized"

    def tailor(self, messages: list[Message], config: ConfigRecord) -> list[Message]:
        """Keep the first sampled node and give it the whole round's budget."""
        if not messages:
            return messages
        first = messages[0]
        whole = ConfigRecord(dict(config))
        steps = int(config["local-steps"])  # type: ignore[arg-type]
        whole["local-steps"] = steps * len(self.session.regions)
        first.content = RecordDict(
            {
                self.arrayrecord_key: first.content.array_records[self.arrayrecord_key],
                self.configrecord_key: whole,
            }
        )
        return [first]


_CLASSES: dict[StrategyName, type[Strategy]] = {
    StrategyName.fedavg: ObservedFedAvg,
    StrategyName.fedprox: ObservedFedProx,
    StrategyName.fedmedian: ObservedFedMedian,
    StrategyName.fedtrimmedavg: ObservedFedTrimmedAvg,
    StrategyName.local: LocalOnly,
    StrategyName.centralized: Centralized,
}


def make_strategy(cfg: RunConfig, session: FederationSession) -> Strategy:
    """The configured strategy, watched by ``session``; errors name the bad field."""
    sc, fed = cfg.strategy, cfg.federation
    if fed.min_nodes < 1:
        raise ValueError(f"federation.min_nodes: expected >= 1, got {fed.min_nodes}")
    min_nodes = 1 if sc.name == StrategyName.centralized else fed.min_nodes
    kwargs: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0 if fed.client_eval else 0.0,
        "min_train_nodes": min_nodes,
        "min_evaluate_nodes": min_nodes,
        "min_available_nodes": min_nodes,
        "weighted_by_key": "num-examples",
        "train_metrics_aggr_fn": aggregate_metrics,
        "evaluate_metrics_aggr_fn": aggregate_metrics,
    }
    if sc.name == StrategyName.fedprox:
        if sc.proximal_mu <= 0:
            raise ValueError(
                f"strategy.proximal_mu: expected > 0 for fedprox, got {sc.proximal_mu}"
            )
        kwargs["proximal_mu"] = sc.proximal_mu
    elif sc.proximal_mu != 0:
        raise ValueError(
            f"strategy.proximal_mu: only fedprox sends it; got {sc.proximal_mu} with "
            f"strategy {sc.name.name}"
        )
    if sc.name == StrategyName.fedtrimmedavg:
        if not 0.0 <= sc.trimmed_beta < 0.5:
            raise ValueError(
                f"strategy.trimmed_beta: expected a value in [0, 0.5), got "
                f"{sc.trimmed_beta}"
            )
        kwargs["beta"] = sc.trimmed_beta
    if sc.name == StrategyName.centralized and cfg.env != "two_tier":
        raise ValueError(
            "strategy.name: centralized needs env=two_tier (one agent controlling "
            f"every region), got env={cfg.env}"
        )
    strategy = _CLASSES[sc.name](**kwargs)
    strategy.session = session  # type: ignore[attr-defined]
    return strategy
