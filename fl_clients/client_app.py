"""A region's Flower ClientApp: Messages in, ``fl_clients.trainer`` calls, Messages out.

Reply contract (Flower's ``validate_message_reply_consistency``): a train reply holds
exactly one ArrayRecord ``"arrays"`` (policy parameters) and one MetricRecord
``"metrics"`` with ``num-examples`` = env steps; an evaluate reply one MetricRecord.
"""

from __future__ import annotations

from flwr.app import (
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
    UserConfig,
)
from flwr.clientapp import ClientApp

from conf.schema import RunConfig
from fl_clients import trainer
from fl_server import wire
from fl_server.config import regions_of


def make_app(run_config: UserConfig | None = None) -> ClientApp:
    """The ClientApp; ``run_config`` replaces ``context.run_config`` when given.

    In-process ``run_simulation`` hands every app an empty run config, so the
    Simulation Engine binds the flattened config here; ``flwr run`` leaves it None.
    """
    app = ClientApp()

    def identify(context: Context) -> tuple[RunConfig, str]:
        cfg = trainer.settings(context.run_config if run_config is None else run_config)
        return cfg, trainer.resolve_region(context.node_config, regions_of(cfg))

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Tell the server which region this node is; build its learner meanwhile."""
        cfg, region = identify(context)
        trainer.prepare(cfg, context.run_id, region)
        index = trainer.region_index(cfg, region)
        identity = ConfigRecord({"region": region, "region-index": index})
        return Message(RecordDict({"identity": identity}), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        """One local round from the received global policy."""
        cfg, region = identify(context)
        config = msg.content.config_records["config"]
        plan = trainer.RoundPlan.from_config(config, cfg.federation.local_steps)
        arrays = msg.content.array_records["arrays"]
        out = trainer.train_round(
            cfg, context.run_id, region, plan, arrays, context.state
        )
        metrics = MetricRecord(
            {
                "num-examples": out.env_steps,
                "region-index": trainer.region_index(cfg, region),
                **out.metrics,
            }
        )
        content = RecordDict({"arrays": wire.pack(out.weights), "metrics": metrics})
        return Message(content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        """The policy this region would deploy, on its own held-out seeds."""
        cfg, region = identify(context)
        config = msg.content.config_records["config"]
        plan = trainer.RoundPlan.from_config(config, cfg.federation.local_steps)
        arrays = msg.content.array_records["arrays"]
        metrics, decisions = trainer.evaluate_round(
            cfg, context.run_id, region, plan, arrays, context.state
        )
        record = MetricRecord(
            {
                "num-examples": decisions,
                "region-index": trainer.region_index(cfg, region),
                **metrics,
            }
        )
        return Message(RecordDict({"metrics": record}), reply_to=msg)

    return app


app = make_app()
