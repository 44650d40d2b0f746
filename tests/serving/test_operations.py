"""Operations on a real server: metrics move, probes, hot reload under load, start-up.

The reload test publishes checkpoints the way ``save_checkpoint`` does (metadata,
then the model, each by atomic rename) while four clients keep asking for routes:
no request may fail, every answer names the policy that took it, and a broken file
must leave the old policy serving (and say so in the log and the metrics).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.helpers import Server, start_server, stop_server, wait_ready

pytestmark = pytest.mark.e2e

ROUTE = {"request_type": "web", "origin": "us-east"}


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` keyed by (name, sorted labels)."""
    text = httpx.get(server.url + "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_move(two_tier_server: Server) -> None:
    before = samples(two_tier_server)
    with httpx.Client(base_url=two_tier_server.url) as client:
        for _ in range(5):
            assert client.post("/v1/route", json=ROUTE).status_code == 200
        assert client.post("/v1/route", json={"origin": 1}).status_code == 422
        batch = {"requests": [ROUTE] * 7}
        assert client.post("/v1/route/batch", json=batch).status_code == 200
    after = samples(two_tier_server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("serving_requests_total", endpoint="/v1/route", status="200") == 5
    assert delta("serving_requests_total", endpoint="/v1/route", status="422") == 1
    assert delta("serving_request_duration_seconds_count", endpoint="/v1/route") == 6
    assert delta("serving_request_duration_seconds_sum", endpoint="/v1/route") > 0
    decided = sum(
        after[k] - before.get(k, 0.0)
        for k in after
        if k[0] == "serving_decisions_total" and ("endpoint", "/v1/route") in k[1]
    )
    assert decided == 5
    assert delta("serving_batch_size_sum", endpoint="/v1/route/batch") == 7
    version = httpx.get(two_tier_server.url + "/readyz").json()["policy_version"]
    info = ("serving_model_info", (("env", "two_tier"), ("version", version)))
    assert after[info] == 1


def test_probes(two_tier_server: Server) -> None:
    assert httpx.get(two_tier_server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(two_tier_server.url + "/readyz").json()
    assert ready["status"] == "ready"
    assert ready["endpoints"] == ["route", "schedule"]
    assert ready["policy_version"].startswith("round-1@")
    schema = httpx.get(two_tier_server.url + "/openapi.json").json()
    assert {"/get_action", "/v1/route", "/v1/route/batch", "/v1/schedule"} <= set(
        schema["paths"]
    )
    body = schema["paths"]["/get_action"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/GetActionRequest"
    assert "GetActionRequest" in schema["components"]["schemas"]


def publish(source: Path, target: Path, model: bytes | None = None) -> None:
    """Write a checkpoint as ``save_checkpoint`` does: .json, then .zip, atomically."""
    for suffix in (".json", ".zip"):
        tmp = target.with_name(f".{target.stem}.tmp{suffix}")
        if suffix == ".zip" and model is not None:
            tmp.write_bytes(model)
        else:
            shutil.copyfile(source.with_suffix(suffix), tmp)
        os.replace(tmp, target.with_suffix(suffix))


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_reload_under_load_loses_no_request(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "global_policy.zip"
    server = start_server(
        path,
        tmp_path / "server.log",
        "--wait-for-checkpoint",
        "--reload-interval",
        "0.2",
        probe="/healthz",
    )
    try:
        # ---- no checkpoint yet: alive, not ready, decisions answer 503
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert httpx.post(server.url + "/v1/route", json=ROUTE).status_code == 503
        publish(checkpoints["both"], path)
        wait_ready(server)
        first = httpx.get(server.url + "/readyz").json()["policy_version"]

        # ---- four clients route continuously while the policy changes under them
        stop = threading.Event()
        answers: list[list[tuple[int, str | None]]] = [[] for _ in range(4)]
        failures: list[BaseException] = []

        def client(out: list[tuple[int, str | None]]) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/v1/route", json=ROUTE)
                        out.append((r.status_code, r.json().get("policy_version")))
                    except BaseException as err:  # a dropped request
                        failures.append(err)

        threads = [threading.Thread(target=client, args=(a,)) for a in answers]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(map(len, answers)) > 50, 30, "first answers")
            publish(checkpoints["both2"], path)
            wait_for(
                lambda: any(
                    v and v.startswith("round-2@") for a in answers for _, v in a
                ),
                60,
                "the new policy to answer",
            )
            second = httpx.get(server.url + "/readyz").json()["policy_version"]
            publish(checkpoints["both2"], path, model=b"PK\x03\x04 not a zip")
            wait_for(lambda: "reload refused" in server.output(), 30, "the refusal")
            served = sum(map(len, answers))
            wait_for(lambda: sum(map(len, answers)) > served + 50, 30, "more answers")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)

        assert not failures, failures[:3]
        statuses = {s for a in answers for s, _ in a}
        assert statuses == {200}
        assert first.startswith("round-1@") and second.startswith("round-2@")
        for per_client in answers:  # each client sees the old policy, then the new
            versions = [v for _, v in per_client]
            switch = versions.index(second)
            assert set(versions[:switch]) == {first}
            assert set(versions[switch:]) == {second}
        assert httpx.get(server.url + "/readyz").json()["policy_version"] == second
        assert f"reload refused, still serving {second}" in server.output()
        metrics = samples(server)
        assert metrics[("serving_model_reloads_total", (("result", "failure"),))] == 1
        assert metrics[("serving_model_reloads_total", (("result", "success"),))] == 2

        # ---- an LB-only policy routes but refuses to schedule
        publish(checkpoints["lb"], path)
        wait_for(
            lambda: httpx.get(server.url + "/readyz").json()["endpoints"] == ["route"],
            60,
            "the lb policy",
        )
        assert httpx.post(server.url + "/v1/route", json=ROUTE).status_code == 200
        refused = httpx.post(
            server.url + "/v1/schedule", json={**ROUTE, "region": "us-east"}
        )
        assert refused.status_code == 409
        assert refused.json()["message"] == (
            "policy: expected a policy trained with two_tier.learn=scheduler or both "
            "for /v1/schedule (the loaded one has learn=lb; it answers /v1/route)"
        )
    finally:
        stop_server(server)


def test_start_up_refuses_to_bind_beyond_loopback_without_a_key(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    exposed = start_server(
        checkpoints["both"], tmp_path / "exposed.log", "--host", "0.0.0.0", wait=False
    )
    try:
        assert exposed.process.wait(timeout=120) == 2
    finally:
        stop_server(exposed)
    assert (
        "--host 0.0.0.0: binding beyond loopback needs an API key; set "
        "SERVING_API_KEY" in exposed.output()
    )


@pytest.mark.slow
def test_start_up_refuses_a_broken_checkpoint(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a checkpoint")
    shutil.copyfile(
        checkpoints["both"].with_suffix(".json"), broken.with_suffix(".json")
    )
    unusable = start_server(broken, tmp_path / "broken.log", wait=False)
    try:
        assert unusable.process.wait(timeout=120) == 2
    finally:
        stop_server(unusable)
    assert f"cannot serve: {broken}: not a MaskablePPO checkpoint" in unusable.output()
