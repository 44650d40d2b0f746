"""The shipped rescheduling learner beats one-step greedy on 7-21 within its budget.

``conf/env/reschedule.yaml`` as composed by Hydra (greedy_mlp, move gains, reward in
QoS units), REACH's 7-21 example (aggregator_sequential), evaluation seeds 11-13 x 20
episodes (neither the tuning seeds 5000-5003 nor the reported 1000-1004). Greedy is
measured here by the harness on the same episodes. The untrained policy is greedy
(the prior), so the test also checks that training, not the prior, earns the margin.
Measured when written: random -4.7 %, greedy 45.7 %, untrained 45.7 %, after 98,304
steps 52.1 % (164 s of training on the shared 2-core VM).
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.reach.core import ReachCore
from envs.vec_env import BatchedVecEnv
from fl_server.config import compose
from policies.evaluation import RescheduleEvalSpec, evaluate_reschedule
from policies.local import LocalTrainer

BUDGET = 98_304
"""Env steps (164 s of training on the 2-core VM under load from other work)."""
MARGIN = 3.0
"""Points of latency reduction over greedy the trained policy must add."""


def _reduction(policy: object, spec: RescheduleEvalSpec) -> float:
    results = evaluate_reschedule(policy, spec)  # type: ignore[arg-type]
    return float(np.mean([r["latency_reduction_pct"] for r in results]))


@pytest.mark.slow
def test_shipped_learner_beats_greedy_on_7_21() -> None:
    run = compose(["env=reschedule"])
    settings, policy = run.reschedule, run.policy
    spec = RescheduleEvalSpec(settings, seeds=(11, 12, 13), episodes=20)
    greedy = _reduction("greedy", spec)
    assert greedy > max(_reduction("random", spec), 0.0)  # a real bar
    env = BatchedVecEnv(ReachCore.from_settings(settings, policy.n_envs), seed=0)
    trainer = LocalTrainer(env, policy, seed=0)
    untrained = _reduction(trainer.model, spec)
    assert untrained < greedy + 1.0  # the margin below is not the prior's
    trainer.model.learn(total_timesteps=BUDGET)
    learned = _reduction(trainer.model, spec)
    assert learned >= greedy + MARGIN, (learned, greedy, untrained)
