"""Front dominance over carbon_bound reports: which points a candidate dominates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analysis.carbon_front import dominance, front_points
from scripts.carbon_front import main

PROTOCOL = {
    "scenario": "default",
    "regions": ["us-east", "india"],
    "seeds": [1000],
    "decisions": 2000,
    "latency_greedy": {
        "slo_miss_pct": 3.0,
        "p95_all_ms": 200.0,
        "p95_ms": {"web": 100.0, "analytics": 800.0},
    },
}


def _policy(name: str, reduction: float, p95_all: float, slo: float,
            web: float = 50.0, analytics: float = 900.0) -> dict[str, Any]:  # fmt: skip
    return {"policy": name, "reduction_pct": reduction, "p95_all_ms": p95_all,
            "slo_miss_pct": slo, "p95_ms": {"web": web, "analytics": analytics}}  # fmt: skip


def _report(weight: float, *policies: dict[str, Any]) -> dict[str, Any]:
    return PROTOCOL | {"carbon_weight": weight, "policies": list(policies)}


def _reports() -> list[dict[str, Any]]:
    return [
        _report(0.5, _policy("rule", 20.0, 300.0, 1.0), _policy("learned", 25.0, 280.0, 2.0)),
        _report(1.0, _policy("rule", 40.0, 400.0, 0.5), _policy("learned", 45.0, 390.0, 0.4)),
    ]  # fmt: skip


def _by(result: dict[str, Any]) -> dict[str, list[str]]:
    return {row["point"]: row["dominated_by"] for row in result["points"]}


def test_each_point_lists_the_candidate_points_that_dominate_it() -> None:
    points = front_points(_reports())
    on_p95 = dominance(points, "learned", ["p95_all"])
    # latency-greedy (0 %, 200 ms) is faster than every learned point
    assert _by(on_p95) == {
        "latency_greedy": [],
        "rule (0.5)": ["learned (0.5)"],  # learned (1) saves more but is slower
        "rule (1)": ["learned (1)"],
    }
    assert (on_p95["dominated"], on_p95["others"]) == (2, 3)
    assert not on_p95["dominates_all"]
    assert on_p95["objectives"] == ["carbon", "p95_all"]


def test_the_answer_depends_on_the_latency_objectives() -> None:
    points = front_points(_reports())
    # learned (0.5) misses more SLOs (2.0) than rule (0.5) (1.0): on SLO it does
    # not dominate it, learned (1) still does
    on_slo = _by(dominance(points, "learned", ["slo"]))
    assert on_slo["rule (0.5)"] == ["learned (1)"]
    assert on_slo["latency_greedy"] == ["learned (0.5)", "learned (1)"]
    # per type: the learned analytics p95 (900) is over latency-greedy's (800)
    per_type = _by(dominance(points, "learned", ["p95_types", "slo"]))
    assert per_type["latency_greedy"] == []
    assert per_type["rule (0.5)"] == ["learned (1)"]


def test_an_equal_point_is_not_dominated_and_the_front_keeps_both() -> None:
    twin = _policy("rule", 25.0, 280.0, 2.0)
    points = front_points([_report(0.5, twin, _policy("learned", 25.0, 280.0, 2.0))])
    result = dominance(points, "learned", ["p95_all", "slo"])
    assert _by(result)["rule (0.5)"] == []
    assert {"rule (0.5)", "learned (0.5)", "latency_greedy"} == set(result["front"])


def test_dominating_every_point_is_reported() -> None:
    reports = [_report(1.0, _policy("rule", 10.0, 250.0, 2.0),
                       _policy("learned", 12.0, 190.0, 1.0))]  # fmt: skip
    result = dominance(front_points(reports), "learned", ["p95_all", "slo"])
    assert result["dominates_all"] and result["front"] == ["learned (1)"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"decisions": 5000},
            r"reports\[1\]\.decisions: expected the first report's 2000",
        ),
        ({"carbon_weight": None}, r"reports\[1\]\.carbon_weight: expected the weight"),
    ],
)
def test_reports_from_another_protocol_are_refused(
    change: dict[str, Any], message: str
) -> None:
    reports = _reports()
    reports[1] = reports[1] | change
    with pytest.raises(ValueError, match=message):
        front_points(reports)


def test_unknown_objectives_and_candidates_are_named() -> None:
    points = front_points(_reports())
    with pytest.raises(ValueError, match=r"objectives: expected some of .* got 'p99'"):
        dominance(points, "learned", ["p99"])
    known = r"\['latency_greedy', 'learned', 'rule'\]"
    with pytest.raises(
        ValueError, match=rf"candidate: expected some of {known}, got \['ppo'\]"
    ):
        dominance(points, "ppo", ["slo"])
    with pytest.raises(ValueError, match="at least one carbon_bound report"):
        front_points([])


def test_the_cli_prints_one_object_per_objective_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "front.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in _reports()))
    assert (
        main(
            [
                "--points",
                str(lines),
                "--objectives",
                "p95_all",
                "--objectives",
                "p95_all,slo",
            ]
        )
        == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["objectives"] for p in printed] == [
        ["carbon", "p95_all"],
        ["carbon", "p95_all", "slo"],
    ]
    assert _by(printed[1]) == {
        "latency_greedy": [],
        "rule (0.5)": [],
        "rule (1)": ["learned (1)"],
    }


def test_the_cli_refuses_what_is_not_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scenario": "default", "carbon_weight": 1.0}))
    assert main(["--points", str(bad)]) == 2
    assert "lacks 'latency_greedy'" in capsys.readouterr().err


def test_several_policies_are_judged_as_one_front() -> None:
    reports = [_report(1.0, _policy("rule@2", 30.0, 300.0, 1.0),
                       _policy("rule@8", 10.0, 210.0, 1.0),
                       _policy("other", 25.0, 310.0, 1.5),
                       _policy("fast", 8.0, 205.0, 0.9))]  # fmt: skip
    result = dominance(front_points(reports), ["rule@2", "rule@8"], ["p95_all", "slo"])
    assert result["candidate"] == ["rule@2", "rule@8"]
    assert _by(result) == {
        "latency_greedy": [],
        "other (1)": ["rule@2 (1)"],
        "fast (1)": [],
    }


def test_a_policy_measured_twice_at_one_weight_keeps_both_points_apart() -> None:
    again = _report(0.5, _policy("rule", 22.0, 250.0, 1.0))
    points = front_points([*_reports(), again])
    labels = [p["label"] for p in points]
    assert labels.count("rule (0.5)") == 1 and "rule (0.5) [reports[2]]" in labels
    assert (
        _by(dominance(points, "learned", ["p95_all"]))["rule (0.5) [reports[2]]"] == []
    )
