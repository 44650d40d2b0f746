"""Typed schema of the composed Hydra config, registered with Hydra's ConfigStore.

Each package owns its dataclasses (``envs.config``, ...); this module only assembles
them into :class:`RunConfig` so that composing ``conf/config.yaml`` validates every
value (unknown key or wrong type -> an error naming the full key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from envs.config import ScenarioConfig
from envs.reach.config import RescheduleConfig
from envs.two_tier.config import RewardConfig, TwoTierEnvConfig
from policies.config import PolicyConfig, TrainConfig


class StrategyName(Enum):
    """How the server combines the regions' policies (``conf/strategy``)."""

    fedavg = "fedavg"
    fedprox = "fedprox"
    fedmedian = "fedmedian"
    fedtrimmedavg = "fedtrimmedavg"
    local = "local"
    centralized = "centralized"


@dataclass
class StrategyConfig:
    """The server's strategy: Flower's own classes, or a research comparison."""

    name: StrategyName = StrategyName.fedavg
    """``fedavg``/``fedprox`` (weighted by env steps), ``fedmedian``/``fedtrimmedavg``
    (robust, coordinate-wise), ``local`` (no aggregation: each region keeps its own
    policy) or ``centralized`` (one agent on every region's env, same total steps)."""
    proximal_mu: float = 0.0
    """FedProx's mu, sent to clients as ``proximal-mu``; they add mu/2·||w - w_g||²."""
    trimmed_beta: float = 0.2
    """FedTrimmedAvg's fraction cut at each end per coordinate, in [0, 0.5)."""


@dataclass
class FederationConfig:
    """Who takes part, for how long, and where the results go (``conf/federation``)."""

    regions: list[str] = field(default_factory=list)
    """One client per entry (two-tier: scenario region ids; reschedule: cluster
    folders). Empty = every region of the scenario (two-tier only)."""
    rounds: int = 5
    """Federated rounds (absolute: a resumed run stops at the same round)."""
    local_steps: int = 16_384
    """Env steps each client trains per round (rounded up to whole rollouts)."""
    min_nodes: int = 2
    """Fewest connected clients a round needs (Flower's min_available/train/evaluate
    nodes); a round goes on without the clients that drop."""
    client_eval: bool = True
    """Also evaluate the global policy on each client's own held-out seeds."""
    client_eval_seeds: list[int] = field(default_factory=lambda: [2000, 2001])
    """Held-out seeds of the client-side evaluation (disjoint from train.eval_seeds)."""
    eval_every: int = 1
    """Server-side evaluation (every region, and the baselines once) every k rounds
    and after the last; 0 = never."""
    round_timeout_s: float = 900.0
    """Longest wait for a round's replies; must exceed the heartbeat expiry (~70 s)."""
    output_dir: str = ""
    """Run folder (metrics, checkpoints, Flower state); "" = the Hydra run folder."""
    resume: bool = True
    """Continue after the last complete round found in ``output_dir``."""


class EngineName(Enum):
    """Where the apps run (``conf/engine``)."""

    simulation = "simulation"
    deployment = "deployment"


class Isolation(Enum):
    """How a SuperNode runs the ClientApp (Deployment Engine)."""

    warm = "warm"
    subprocess = "subprocess"


@dataclass
class EngineConfig:
    """Flower engine settings: Simulation (Ray) or Deployment (SuperLink/SuperNodes)."""

    name: EngineName = EngineName.simulation
    """``simulation``: one virtual SuperNode per region in this process (Ray);
    ``deployment``: a real SuperLink and one SuperNode per region on loopback."""
    client_cpus: float = 1.0
    """Ray CPUs reserved per virtual SuperNode (simulation)."""
    ray_cpus: int = 0
    """CPUs Ray may use (simulation); 0 = every core of the machine."""
    host: str = "127.0.0.1"
    """Interface of the SuperLink and SuperNodes (deployment)."""
    isolation: Isolation = Isolation.warm
    """``warm``: SuperNode ``--isolation process`` with a long-lived ClientApp
    executor (torch imported once, learner kept); ``subprocess``: Flower's default, a
    fresh ``flwr-clientapp`` process per message (deployment)."""
    node_poll_s: float = 0.05
    """Longest sleep of each SuperNode's loop and of its warm worker (deployment):
    Flower 1.42 waits a fixed 3 s after finding no message and 0.5 s between checks
    for a reply, which delays every round; ``fl_clients.supernode`` caps both.
    0 = the stock ``flower-supernode`` (the worker then polls every 0.2 s)."""
    server_poll_s: float = 0.05
    """How often the ServerApp asks the SuperLink for replies (Flower: 3 s)."""
    tls: bool = False
    """Serve the SuperLink over TLS with certificates generated in the run folder."""
    node_auth: bool = False
    """Authenticate SuperNodes with registered EC keys (needs ``tls``)."""
    startup_timeout_s: float = 120.0
    """Longest wait for the SuperLink and every SuperNode to come up (deployment)."""
    app_dir: str = ""
    """Flower app folder submitted with ``flwr run``; "" = this project."""


@dataclass
class RunConfig:
    """Everything a run needs; the YAML groups fill it in."""

    task: str = "demo"
    """Name of the task; output folders are ``outputs/<task>/<timestamp>``."""
    seed: int = 0
    """Base seed of the run (environments, policies, federation)."""
    env: str = "two_tier"
    """Which decision problem: ``two_tier`` (routing + placement) or ``reschedule``."""
    scenario: ScenarioConfig = MISSING
    """The multi-cloud world of the two-tier env (``conf/scenario``)."""
    two_tier: TwoTierEnvConfig = field(default_factory=TwoTierEnvConfig)
    """The two-tier env (``conf/env/two_tier.yaml``)."""
    reschedule: RescheduleConfig = field(default_factory=RescheduleConfig)
    """The REACH-compatible rescheduling env (``conf/env/reschedule.yaml``)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights (``conf/reward``)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The local learner (``conf/policy``)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """A single agent's run (``conf/train``)."""
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    """How the server combines the regions' policies (``conf/strategy``)."""
    federation: FederationConfig = field(default_factory=FederationConfig)
    """Clients, rounds, budgets and run folder of a federation (``conf/federation``)."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    """Flower Simulation or Deployment Engine (``conf/engine``)."""
    paths: Any = None
    """Folders (``conf/paths``)."""


def register() -> None:
    """Register :class:`RunConfig` as ``run_schema`` (idempotent).

    Also the ``floordiv`` resolver, so an experiment can hold a product fixed while
    sweeping one factor (``rounds: ${floordiv:98304,${federation.local_steps}}``).
    """
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    OmegaConf.register_new_resolver(
        "floordiv", lambda a, b: max(int(a) // int(b), 1), replace=True
    )


register()
