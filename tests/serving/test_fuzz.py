"""Thousands of generated requests against the published OpenAPI schema: never a 5xx.

Schemathesis generates valid and invalid bodies for every operation of the live
two-tier and REACH servers; a hypothesis test also mutates valid REACH payloads at
random JSON paths (types, NaN, negatives, unknown names), which reaches deeper into
the parser than schema-level fuzzing does. Each answer must be a 2xx or a 4xx with
the JSON error body.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from envs.reach.env import ReachRescheduleEnv
from tests.serving.helpers import Server, reach_body

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCHEMA_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


DECISIONS = [
    "/get_action",
    "/v1/route",
    "/v1/route/batch",
    "/v1/schedule",
    "/v1/schedule/batch",
]


@pytest.fixture(scope="module")
def schemas(servers: dict[str, Server]) -> dict[str, Any]:
    return {
        kind: schemathesis.openapi.from_url(server.url + "/openapi.json")
        for kind, server in servers.items()
    }


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path", DECISIONS)
@pytest.mark.parametrize("kind", ["two_tier", "reach"])
def test_schema_fuzz_never_5xx(
    schemas: dict[str, Any], kind: str, path: str, mode: str
) -> None:
    operation = schemas[kind][path]["POST"]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    answered: list[int] = []

    @given(case=strategy)
    @SCHEMA_FUZZ
    def call(case: Any) -> None:
        response = case.call(timeout=30)
        answered.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert body["status"] == "error" and body["message"], body

    call()
    assert len(answered) >= 50  # the fuzzer really sent requests


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


BASE = reach_body(ReachRescheduleEnv(), 11, np.random.default_rng(11))
PATHS = _paths(BASE)[1:]


@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(PATHS), JSON_VALUES, st.booleans()),
        min_size=1,
        max_size=3,
    )
)
@FUZZ
def test_mutated_reach_payloads_never_5xx(
    servers: dict[str, Server], mutations: list[tuple[tuple, Any, bool]]
) -> None:
    body = copy.deepcopy(BASE)
    for path, value, delete in mutations:
        node = body
        try:
            for key in path[:-1]:
                node = node[key]
            if delete:
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    raw = json.dumps(body)  # NaN/Infinity go out as the literals json accepts
    response = httpx.post(
        servers["reach"].url + "/get_action",
        content=raw,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (200, 400, 422), (response.status_code, raw)
    answer = response.json()
    if response.status_code == 200:
        assert set(answer) == {"pod_name", "target_node", "is_stop"}
    else:
        assert set(answer) == {"status", "message"}
