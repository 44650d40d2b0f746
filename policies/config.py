"""Hyperparameters of the local learner (MaskablePPO), typed for Hydra."""

from __future__ import annotations

from dataclasses import dataclass, field

SIZE_FREE_NETWORKS = frozenset({"reach_scorer"})
"""``policy.network`` values whose weights do not depend on the env's node and pod
axes: clients of such a network need no common padding to share one policy."""


@dataclass
class PolicyConfig:
    """MaskablePPO settings of one region's local training (SB3 names and meanings)."""

    network: str = "mlp"
    """Policy network (``policies.factory.NETWORKS``): ``mlp`` is SB3's MLP over the
    flat observation; other entries are registered by their modules (e.g. a
    per-entity scorer whose size does not depend on the cluster's)."""
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden layers of the actor and of the critic (separate networks)."""
    activation: str = "tanh"
    """``tanh`` or ``relu``."""
    n_envs: int = 8
    """Environments stepped together on one batched core (no subprocesses)."""
    n_steps: int = 256
    """Steps per environment per rollout (rollout size = n_envs x n_steps)."""
    batch_size: int = 512
    """Minibatch size of the PPO update."""
    n_epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float = 3e-4
    gamma: float = 0.9
    """Discount. Two-tier decisions mostly pay off at once (the request's own latency,
    plus some congestion), and a short horizon cuts the variance of the other
    requests' rewards; the rescheduling env's sequential moves use 0.99."""
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    device: str = "cpu"
    """Torch device; these machines have CPUs only."""
    torch_threads: int = 1
    """Torch intra-op threads per process (one is fastest for small MLPs on 2 cores)."""
    identity_slots: int = 0
    """Identity input of the rescheduling env: a one-hot of this many slots naming the
    cluster (its position in the federation's list); 0 = off. The two-tier env names
    the origin region itself (``two_tier.region_id_input``)."""


@dataclass
class TrainConfig:
    """A single agent's training run (``scripts.train``) and its evaluation."""

    total_steps: int = 200_000
    """Environment steps to train for."""
    region: str | None = "eu-central"
    """Controlled region of a two-tier env; None = every region (centralised)."""
    log_every: int = 16_384
    """Environment steps between progress lines."""
    eval_seeds: list[int] = field(default_factory=lambda: [1000, 1001, 1002])
    """Held-out seeds of the final evaluation."""
    eval_decisions: int = 2000
    """Decisions per evaluation seed (two-tier)."""
    eval_episodes: int = 20
    """Episodes per evaluation seed (rescheduling)."""
    eval_deterministic: bool = True
    """Evaluate with the most probable allowed action (True) or by sampling the
    policy with a seeded generator (False). Two-tier routing policies trained with
    entropy learn to spread load by sampling; their argmax sends a burst of requests
    to one place (herding), so ``env=two_tier`` evaluates sampled."""
    baselines: list[str] | None = None
    """Baselines evaluated on the same seeds; None = every baseline of the env kind."""
