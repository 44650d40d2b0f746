"""Moving the reward's tail-limit prices under a learner, and counting exceedances.

With ``reward.limit_price_lr > 0`` the federation runs dual ascent on the prices of
the per-type latency limits (PPO-Lagrangian): each round the server sends prices,
every region trains on a reward charging them and reports how many of its requests
of each type exceeded their limit. Both halves of the learner move together: the
env's reward (:meth:`envs.two_tier.core.TwoTierCore.set_limit_prices`) and the
policy's prior, the rule pricing the same limits
(:meth:`policies.networks.two_tier.TwoTierScorerPolicy.set_limit_prices`), which a
saved checkpoint then carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import VecEnv

from envs.two_tier.core import TwoTierCore
from policies.networks.two_tier import TwoTierScorerPolicy


def limited_core(env: VecEnv) -> TwoTierCore | None:
    """The two-tier core behind ``env`` (through wrappers), or None for another env."""
    venv: Any = env
    while venv is not None:
        core = getattr(venv, "core", None)
        if isinstance(core, TwoTierCore):
            return core
        venv = getattr(venv, "venv", None)
    return None


def price_prior(policy: BasePolicy, prices: Sequence[float]) -> None:
    """``policy``'s prior prices its limits at ``prices``."""
    if not isinstance(policy, TwoTierScorerPolicy):
        raise ValueError(
            "limit prices: moving prices needs a two-tier scorer policy "
            f"(policy.network two_tier_scorer*), got {type(policy).__name__}"
        )
    policy.set_limit_prices(prices)


def set_policy_limit_prices(model: MaskablePPO, prices: Sequence[float]) -> None:
    """The prior of ``model``'s policy prices its limits at ``prices``.

    ``model.policy_kwargs`` follows, so a checkpoint ``MaskablePPO.load`` rebuilds
    holds the same prices before its state dict is even read.
    """
    price_prior(model.policy, prices)
    model.policy_kwargs["limit_weights"] = [float(v) for v in prices]


def set_limit_prices(model: MaskablePPO, env: VecEnv, prices: Sequence[float]) -> None:
    """Charge ``prices`` in ``env``'s reward and in ``model``'s prior."""
    core = limited_core(env)
    if core is None:
        raise ValueError(
            f"limit prices: expected a two-tier env, got {type(env).__name__}"
        )
    core.set_limit_prices(np.asarray(prices, dtype=float))
    set_policy_limit_prices(model, prices)


def start_counting(env: VecEnv) -> TwoTierCore:
    """Count ``env``'s requests and exceedances per type from now on."""
    core = limited_core(env)
    if core is None:
        raise ValueError(
            f"limit tally: expected a two-tier env, got {type(env).__name__}"
        )
    core.reset_limit_tally()
    return core
