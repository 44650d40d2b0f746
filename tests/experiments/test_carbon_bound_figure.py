"""The carbon bound's figure: where each policy is drawn, and refusing mixed runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from analysis.carbon_bound import carbon_bound_plot, points
from scripts.plot_carbon_bound import main as plot_main

LATENCY_GREEDY = {
    "slo_miss_pct": 1.0,
    "p95_all_ms": 200.0,
    "p95_ms": {"web": 50.0, "analytics": 800.0},
}


def _bound(reading: str = "per type") -> dict[str, Any]:
    return {
        "scenario": "small",
        "regions": ["eu-central"],
        "seeds": [1000],
        "decisions": 2000,
        "latency_greedy": LATENCY_GREEDY,
        "goal": {
            "p95": reading,
            "p95_factor": 1.1,
            "slo_points": 1.0,
            "target_reduction_pct": 30.0,
        },
        "frontier": [
            {"p95_factor": 1.0, "carbon_g_per_1k": 0.02, "reduction_pct": 10.0},
            {"p95_factor": 1.1, "carbon_g_per_1k": 0.018, "reduction_pct": 17.0},
            {"p95_factor": None, "carbon_g_per_1k": 0.013, "reduction_pct": 37.0},
        ],
        "policies": [],
    }


def _report(carbon_weight: float | None = 1.0) -> dict[str, Any]:
    report = _bound() | {"carbon_weight": carbon_weight}
    report["policies"] = [
        {  # analytics 1.5x, web 0.5x: per type 1.5; pooled 300/200
            "policy": "learned",
            "slo_miss_pct": 0.5,
            "p95_all_ms": 300.0,
            "p95_ms": {"web": 25.0, "analytics": 1200.0},
            "reduction_pct": 20.0,
        },
        {
            "policy": "weighted_greedy",
            "slo_miss_pct": 2.5,  # beyond 1.0 + 1 point
            "p95_all_ms": 220.0,
            "p95_ms": {"web": 60.0, "analytics": 800.0},
            "reduction_pct": 25.0,
        },
    ]
    return report


def test_a_policy_sits_at_the_allowance_it_uses() -> None:
    learned, greedy = points(_bound(), [_report()])
    assert learned["factor"] == pytest.approx(1.5) and learned["within_slo"]
    assert learned["label"] == "learned (1)"
    assert greedy["factor"] == pytest.approx(1.2) and not greedy["within_slo"]
    pooled = points(_bound("pooled"), [_report()])
    assert [p["factor"] for p in pooled] == pytest.approx([1.5, 1.1])


def test_a_type_no_request_had_uses_no_allowance() -> None:
    """The bound command prints null for such a type's p95 (JSON has no inf)."""
    bound = _bound()
    bound["latency_greedy"] = copy.deepcopy(LATENCY_GREEDY)
    bound["latency_greedy"]["p95_ms"]["batch"] = None
    report = _report()
    report["latency_greedy"] = bound["latency_greedy"]
    for policy in report["policies"]:
        policy["p95_ms"]["batch"] = None
    learned, greedy = points(bound, [report])
    assert learned["factor"] == pytest.approx(1.5)
    assert greedy["factor"] == pytest.approx(1.2)


def test_reports_of_another_protocol_are_refused_by_key() -> None:
    other = _report()
    other["seeds"] = [1000, 1001]
    with pytest.raises(ValueError, match=r"reports\[0\]\.seeds"):
        points(_bound(), [other])
    moved = copy.deepcopy(_report())
    moved["latency_greedy"]["p95_all_ms"] = 250.0
    with pytest.raises(ValueError, match=r"reports\[0\]\.latency_greedy"):
        points(_bound(), [moved])


def test_the_figure_is_written_as_png_and_pdf(tmp_path: Path) -> None:
    paths = carbon_bound_plot(_bound(), [_report(), _report(None)], tmp_path, "f")
    assert [p.name for p in paths] == ["f.png", "f.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_the_command_reads_json_and_json_lines(tmp_path: Path) -> None:
    bound = tmp_path / "bound.json"
    bound.write_text(json.dumps(_bound()))
    lines = tmp_path / "front.jsonl"
    lines.write_text("\n".join(json.dumps(_report(w)) for w in (0.5, 1.0)) + "\n")
    assert plot_main(["--bound", str(bound), "--points", str(lines),
                      "--out", str(tmp_path / "figs")]) == 0  # fmt: skip
    assert (tmp_path / "figs" / "carbon_bound.png").exists()
    with pytest.raises(SystemExit, match="plot_carbon_bound: "):
        plot_main(["--bound", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
