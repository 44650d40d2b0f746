"""The simulator's queues against queueing theory (M/M/1 and Erlang C).

Requests go through the full two-tier core (arrival process, dispatch, accounting), on
a one-node world with Poisson arrivals, exponential service and no network delay, so
the measured mean queueing wait must equal the closed form.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import TwoTierCore, TwoTierEnvConfig, load_scenario
from envs.queues import erlang_c, mmc_mean_wait
from envs.two_tier import kernels as K


def one_node_world(cores: int, utilization: float) -> dict:
    return {
        "name": f"mmc-{cores}",
        "regions": [
            {
                "id": "us-east",
                "target_utilization": utilization,
                "trace": "poisson",
                "pools": [
                    {"name": "n", "layer": "cloud", "size": "large", "vcpus": cores}
                ],
            }
        ],
        "request_types": [
            {
                "name": "job",
                "execution_time": {"0": "10ms"},
                "request_size": "0B",
                "response_size": "0B",
                "slo": "1s",
            }
        ],
        "layers": {"cloud": {"access_rtt": "0ms"}},
        "workload": {"diurnal_profile": [1.0] * 24, "service_time_cv": 1.0},
    }


def measured_mean_wait(cores: int, utilization: float, envs: int, steps: int) -> float:
    config = TwoTierEnvConfig(
        learn="scheduler", episode_length=10**9, warmup="0s", saturation_wait="0s"
    )
    core = TwoTierCore(
        load_scenario(one_node_world(cores, utilization)), envs, config=config
    )
    core.reset(seed=123)
    actions = np.zeros(envs, dtype=np.int64)
    waits = np.empty((steps, envs))
    for i in range(steps):
        core.step(actions)
        waits[i] = core.comps[:, K.C_WAIT]
    assert (core.comps[:, K.C_PLACED] == 1).all()
    return float(waits[steps // 20 :].mean())  # drop the first 5 %: empty-queue start


def test_erlang_c_formula_matches_known_values() -> None:
    # Two servers, offered load 1 Erlang: P(wait) = 1/3 (textbook value).
    assert erlang_c(1.0, 1.0, 2) == pytest.approx(1 / 3)
    # M/M/1: P(wait) = rho.
    assert erlang_c(0.7, 1.0, 1) == pytest.approx(0.7)
    assert mmc_mean_wait(0.5, 1.0, 1) == pytest.approx(0.5 / (1.0 - 0.5))


def test_mm1_mean_wait_within_5_percent() -> None:
    mu = 100.0  # 10 ms mean service
    lam = 0.5 * mu
    expected = lam / (mu * (mu - lam))  # rho / (mu - lambda) = 10 ms
    measured = measured_mean_wait(cores=1, utilization=0.5, envs=32, steps=12_000)
    assert measured == pytest.approx(expected, rel=0.05)


# M/M/4 at offered load a = lambda / mu = 3.2 Erlang (rho = 0.8), worked by hand:
#   sum_{k<4} a^k / k! = 1 + 3.2 + 5.12 + 5.46133 = 14.78133
#   a^4 / 4! * c / (c - a) = 4.36907 * 5 = 21.84533
#   P(wait) = 21.84533 / (14.78133 + 21.84533) = 0.59643   (Erlang C tables: 0.5964)
#   W_q = P(wait) / (c mu - lambda) = 0.59643 / (400 - 320) s = 7.4554 ms
ERLANG_C_4_AT_3_2 = 0.59643
MMC_WAIT_4_AT_0_8_S = 0.0074554


def test_erlang_c_formula_matches_the_hand_worked_m_m_4() -> None:
    assert erlang_c(320.0, 100.0, 4) == pytest.approx(ERLANG_C_4_AT_3_2, abs=1e-5)
    assert mmc_mean_wait(320.0, 100.0, 4) == pytest.approx(
        MMC_WAIT_4_AT_0_8_S, rel=1e-4
    )


def test_erlang_c_mean_wait_within_5_percent() -> None:
    measured = measured_mean_wait(cores=4, utilization=0.8, envs=32, steps=12_000)
    assert measured == pytest.approx(MMC_WAIT_4_AT_0_8_S, rel=0.05)
