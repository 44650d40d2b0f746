"""The GitHub workflow: schema-valid, zizmor-clean, and the same steps as ``.ci/run``."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from .conftest import ROOT, tool

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def makefile_recipe(target: str) -> list[str]:
    """The commands of one Makefile target, ``$(BIN)`` spelled out."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(BIN)", ".venv/bin"))
    return recipe


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_schema_and_zizmor_accept_it() -> None:
    schema = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         str(WORKFLOW)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", str(WORKFLOW)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_least_permissions_and_pinned_actions() -> None:
    flow = workflow()
    assert flow["permissions"] == {"contents": "read"}
    for name, job in flow["jobs"].items():
        assert "permissions" not in job, name  # nothing widens the top level
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_the_steps_of_ci_run_with_cpu_torch_first() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    test = makefile_recipe("test")
    fast_cmd = next(c for c in test if '-m "not slow"' in c)
    slow_cmd = next(c for c in test if '-m "slow"' in c)
    assert "lint" in (ROOT / "Makefile").read_text().split("\ntest:")[1].split("\n")[0]
    jobs = workflow()["jobs"]
    fast, slow = runs(jobs["fast"]), runs(jobs["slow"])
    assert slow_cmd in slow and fast_cmd not in slow
    assert fast_cmd in fast and slow_cmd not in fast
    assert jobs["slow"]["needs"] == "fast"
    assert "make lint" in fast and "make system-deps" in fast
    for steps in (fast, slow):
        torch = next(i for i, r in enumerate(steps) if "torch==" in r)
        assert "--index-url" in steps[torch] and "TORCH_INDEX_URL" in steps[torch]
        assert steps.index("make install") > torch
    env = workflow()["env"]
    assert env["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    for job in jobs.values():
        setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
        assert setup["with"]["cache"] == "pip"
        assert setup["with"]["python-version"] == "3.11"
