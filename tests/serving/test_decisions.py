"""A real server's answers equal the policy's own ``predict`` on the same state.

The expected answer is computed the slow, obvious way: the env builds the
observation from the same body (``ReachRescheduleEnv.reset(options=body)``,
``TwoTierCore.observe``) and SB3's ``MaskablePPO.predict(..., action_masks=...,
deterministic=True)`` chooses. The server must agree on every state and never
return an action its mask forbids.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from envs import TwoTierCore
from envs.reach.env import ReachRescheduleEnv
from policies.checkpoint import load_checkpoint
from serving.run_config import run_config_from_metadata
from tests.serving.helpers import (
    Server,
    observable,
    reach_body,
    start_server,
    stop_server,
    two_tier_request,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reach_model(checkpoints: dict[str, Path]) -> tuple[MaskablePPO, ReachRescheduleEnv]:
    from policies.checkpoint import load_metadata

    path = checkpoints["reschedule"]
    cfg = run_config_from_metadata(load_metadata(path))
    return load_checkpoint(path), ReachRescheduleEnv(config=cfg.reschedule)


@pytest.fixture(scope="module")
def two_tier_model(checkpoints: dict[str, Path]) -> tuple[MaskablePPO, TwoTierCore]:
    from policies.checkpoint import load_metadata

    path = checkpoints["both"]
    cfg = run_config_from_metadata(load_metadata(path))
    core = TwoTierCore(cfg.scenario, 1, None, cfg.two_tier, cfg.reward)
    return load_checkpoint(path), core


def test_get_action_equals_predict(
    reach_server: Server, reach_model: tuple[MaskablePPO, ReachRescheduleEnv]
) -> None:
    model, env = reach_model
    rng = np.random.default_rng(0)
    moves = empty_lists = 0
    with httpx.Client(base_url=reach_server.url) as client:
        for seed in range(40):
            body = reach_body(env, seed, rng)
            if seed % 4 == 0:
                del body["pod_deployable"]  # the training resource-fit rules apply
            lists = body.get("pod_deployable", {}).values()
            empty_lists += sum(not nodes for nodes in lists)
            response = client.post("/get_action", json=body)
            assert response.status_code == 200, response.text
            obs, info = env.reset(options=body)
            action, _ = model.predict(
                obs, action_masks=info["action_mask"], deterministic=True
            )
            expected = env.decision(int(action)).to_json()
            assert response.json() == expected, (seed, body)
            answer = response.json()
            assert set(answer) == {"pod_name", "target_node", "is_stop"}
            if not answer["is_stop"]:
                moves += 1
                assert info["action_mask"][int(action)]
                allowed = body.get("pod_deployable", {}).get(answer["pod_name"])
                if allowed is not None:
                    assert answer["target_node"] in allowed
    assert moves > 0, "every answer was a stop: the comparison checked too little"
    assert empty_lists > 0, "no pod had an empty pod_deployable list"


def test_nothing_movable_answers_stop(
    reach_server: Server, reach_model: tuple[MaskablePPO, ReachRescheduleEnv]
) -> None:
    """REACH's contract: a pod with an empty list cannot move; none movable = stop.

    REACH's pod-migrator treats any non-200 as an error and retries, so a full
    cluster (every fit check empty) must get a 200 stop, not a 422.
    """
    _, env = reach_model
    body = reach_body(env, 3, np.random.default_rng(1))
    pods = [p for s in body["cluster_state"]["services"].values() for p in s["pods"]]
    assert pods
    answers = {}
    with httpx.Client(base_url=reach_server.url) as client:
        body["pod_deployable"] = {}
        answers["no lists"] = client.post("/get_action", json=body)
        body["pod_deployable"] = {p["pod_name"]: [] for p in pods}
        answers["every list empty"] = client.post("/get_action", json=body)
        # every pod may only stay where it is: the mask allows nothing but stop
        body["pod_deployable"] = {p["pod_name"]: [p["node_name"]] for p in pods}
        answers["own node only"] = client.post("/get_action", json=body)
    stop = {"pod_name": "", "target_node": "", "is_stop": True}
    for case, answer in answers.items():
        assert (answer.status_code, answer.json()) == (200, stop), case


def _expected_route(model: MaskablePPO, core: TwoTierCore, request: dict) -> str:
    obs, mask = core.observe(0, observable(request))
    action, _ = model.predict(obs, action_masks=mask, deterministic=True)
    return core.world.region_ids[int(action)]


def _expected_node(
    model: MaskablePPO, core: TwoTierCore, request: dict, region: str
) -> str:
    obs, mask = core.observe(0, observable(request, region))
    action, _ = model.predict(obs, action_masks=mask, deterministic=True)
    world = core.world
    first = int(world.region_i[world.region_index(region), 0])
    return world.node_names[first + int(action)]


def _allowed_regions(core: TwoTierCore, request: dict) -> set[str]:
    _, mask = core.observe(0, observable(request))
    return {r for q, r in enumerate(core.world.region_ids) if mask[q]}


def test_route_and_schedule_equal_predict(
    two_tier_server: Server, two_tier_model: tuple[MaskablePPO, TwoTierCore]
) -> None:
    model, core = two_tier_model
    world = core.world
    rng = np.random.default_rng(2)
    with httpx.Client(base_url=two_tier_server.url) as client:
        version = client.get("/readyz").json()["policy_version"]
        for _ in range(40):
            request = two_tier_request(world, rng)
            routed = client.post("/v1/route", json=request)
            assert routed.status_code == 200, routed.text
            answer = routed.json()
            assert answer["region"] == _expected_route(model, core, request)
            assert set(answer["probabilities"]) == _allowed_regions(core, request)
            assert sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-5)
            assert answer["policy_version"] == version

            region = str(rng.choice(world.region_ids))
            scheduled = client.post("/v1/schedule", json={**request, "region": region})
            if scheduled.status_code == 422:  # this type runs nowhere in that region
                assert "region" in scheduled.json()["message"]
                continue
            assert scheduled.status_code == 200, scheduled.text
            answer = scheduled.json()
            assert answer["node"] == _expected_node(model, core, request, region)
            assert answer["region"] == region
            assert answer["node"] in answer["probabilities"]
            assert all(n.startswith(region + "/") for n in answer["probabilities"])


def test_batches_equal_single_decisions(
    two_tier_server: Server, two_tier_model: tuple[MaskablePPO, TwoTierCore]
) -> None:
    model, core = two_tier_model
    world = core.world
    rng = np.random.default_rng(3)
    requests = [two_tier_request(world, rng) for _ in range(50)]
    with httpx.Client(base_url=two_tier_server.url) as client:
        routed = client.post("/v1/route/batch", json={"requests": requests})
        regions = [_expected_route(model, core, r) for r in requests]
        home = [{**r, "region": r["origin"]} for r in requests]
        scheduled = client.post("/v1/schedule/batch", json={"requests": home})
    assert routed.status_code == 200, routed.text
    assert [d["region"] for d in routed.json()["decisions"]] == regions
    assert scheduled.status_code == 200, scheduled.text
    nodes = [_expected_node(model, core, r, r["origin"]) for r in requests]
    assert [d["node"] for d in scheduled.json()["decisions"]] == nodes


def test_a_load_reading_policy_serves_with_region_rates(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """``two_tier.load_input`` policies decide on the rates the caller reports."""
    from policies.checkpoint import load_metadata

    path = checkpoints["loads"]
    cfg = run_config_from_metadata(load_metadata(path))
    assert cfg.two_tier.load_input
    model = load_checkpoint(path)
    core = TwoTierCore(cfg.scenario, 1, None, cfg.two_tier, cfg.reward)
    rng = np.random.default_rng(4)
    requests = [two_tier_request(core.world, rng, rates=True) for _ in range(30)]
    server = start_server(path, tmp_path / "loads.log")
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/readyz").json()["reads_region_rates"] is True
            routed = [client.post("/v1/route", json=r) for r in requests]
            batch = client.post("/v1/route/batch", json={"requests": requests})
            home = {**requests[0], "region": requests[0]["origin"]}
            scheduled = client.post("/v1/schedule", json=home)
            bare = {k: v for k, v in requests[0].items() if k != "region_rates"}
            refused = client.post("/v1/route/batch", json={"requests": [bare]})
            negative = dict(requests[0]["region_rates"])
            negative[core.world.region_ids[0]] = -1.0
            invalid = client.post(
                "/v1/route", json={**requests[0], "region_rates": negative}
            )
    finally:
        stop_server(server)
    expected = [_expected_route(model, core, r) for r in requests]
    assert [r.status_code for r in routed] == [200] * len(requests)
    assert [r.json()["region"] for r in routed] == expected
    assert [d["region"] for d in batch.json()["decisions"]] == expected
    assert len(set(expected)) > 1, "one region for every load: too weak a check"
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["node"] == _expected_node(
        model, core, requests[0], requests[0]["origin"]
    )
    assert refused.status_code == 422
    assert "requests[0].region_rates" in refused.json()["message"]
    assert invalid.status_code == 422
    assert "region_rates" in invalid.text
