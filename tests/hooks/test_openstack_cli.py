"""``python -m hooks.openstack place`` as a process against the OpenStack double.

The real ``openstacksdk`` in the child logs in through ``OS_*`` variables or a
``clouds.yaml`` (``OS_CLIENT_CONFIG_FILE``), both pointing at the loopback double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.jsonl import read_jsonl
from tests.hooks.openstack_double import OpenStackDouble

ROOT = Path(__file__).resolve().parents[2]
_OURS = ("KUBE", "HOOKS_", "INTEGRATION_MODE", "NAMESPACE", "APP_LABEL", "POLICY_URL",
         "PROMETHEUS_ADDR", "OS_", "OPENSTACK")  # fmt: skip
CREDENTIALS = {"username": "tester", "password": "not-a-secret", "project_name": "frl",
               "user_domain_name": "Default", "project_domain_name": "Default"}  # fmt: skip


@pytest.fixture
def cloud() -> Iterator[OpenStackDouble]:
    """Two pools, each an aggregate with a zone of its own; one flavor, one network.

    edge-agg (edge-az): cmp-2 with 1 vCPU free, cmp-3 with 12; cloud-agg (cloud-az):
    cmp-1 with 80.
    """
    with OpenStackDouble() as double:
        double.add_provider("cmp-1", (32, 2, 4.0), (65536, 512, 1.5), 40, 20000)
        double.add_provider("cmp-2", (16, 0, 1.0), (32768, 0, 1.0), 15, 1000)
        double.add_provider("cmp-3", (16, 0, 1.0), (32768, 2048, 1.0), 4, 8192)
        double.add_aggregate(
            "edge-agg", "edge-az", ["cmp-2", "cmp-3"], {"frl-pool": "edge"}
        )
        double.add_aggregate("cloud-agg", "cloud-az", ["cmp-1"], {"frl-pool": "cloud"})
        double.add_flavor("m1.small", 2, 2048)
        double.add_flavor("m1.huge", 16, 2048)
        double.add_network("frl-net")
        double.knobs.polls_to_active = 0  # ACTIVE at the first look
        yield double


def overlay(tmp_path: Path, **settings: Any) -> Path:
    """A ``--config`` overlay with the ``openstack`` section the CLI needs."""
    section = {"project": "frl", "image": "img-1", "flavor": "m1.small",
               "network": "frl-net", "wait_timeout": 10.0,
               "scheduler_hints": {"group": "sg-1"},
               "plan_file": str(tmp_path / "out" / "plan.jsonl"), **settings}  # fmt: skip
    path = tmp_path / "openstack.yaml"
    path.write_text(yaml.safe_dump({"openstack": section}))
    return path


def cli_env(
    tmp_path: Path, double: OpenStackDouble | None, **extra: str
) -> dict[str, str]:
    """A clean environment (nothing of the caller's clouds leaks in), ``OS_*`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    if double is not None:
        env.update(
            OS_AUTH_URL=double.url + "/identity/v3", OS_USERNAME="tester",
            OS_PASSWORD="not-a-secret", OS_PROJECT_NAME="frl",
            OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
            OS_REGION_NAME="RegionOne", OS_INTERFACE="public",
        )  # fmt: skip
    env.update(extra)
    return env


def place(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hooks.openstack", "place", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON line on stdout."""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    record = json.loads(lines[0])
    assert isinstance(record, dict)
    return record


def test_dry_run_prints_and_records_the_plan_and_creates_nothing(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    config = overlay(tmp_path)
    done = place(cli_env(tmp_path, cloud), "--config", str(config),
                 "--name", "worker-1", "--pool", "edge")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "openstack hook: MODE dry-run (no mutating request is sent)" in done.stderr
    assert (
        "DRY-RUN would create Server frl/worker-1 (az=edge-az, aggregate=edge-agg, "
        "hints={'group': 'sg-1'})" in done.stderr
    )
    planned = {"action": "PlaceServer", "project": "frl", "name": "worker-1",
               "image": "img-1", "flavor": "m1.small", "network": "frl-net",
               "availability_zone": "edge-az", "aggregate": "edge-agg",
               "scheduler_hints": {"group": "sg-1"}}  # fmt: skip
    assert outcome(done) == {"outcome": "planned", "mode": "dry-run", "pool": "edge",
                             **planned}  # fmt: skip
    (record,) = read_jsonl(tmp_path / "out" / "plan.jsonl")
    assert isinstance(record.pop("timestamp"), float)
    assert record == {"mode": "dry-run", **planned}
    # it read (a login, aggregates, placement, the flavor) and wrote nothing
    paths = {c.path for c in cloud.calls}
    assert "/compute/v2.1/os-aggregates" in paths
    assert "/placement/resource_providers" in paths
    assert cloud.mutating() == [] and cloud.servers == {} and cloud.ports == {}


def test_live_boots_in_the_pools_zone_from_a_clouds_yaml(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"double": {
        "auth": {"auth_url": cloud.url + "/identity/v3", **CREDENTIALS},
        "region_name": "RegionOne", "interface": "public",
    }}}))  # fmt: skip
    env = cli_env(tmp_path, None, INTEGRATION_MODE="live", OS_CLOUD="double",
                  OS_CLIENT_CONFIG_FILE=str(clouds))  # fmt: skip
    done = place(env, "--config", str(overlay(tmp_path)), "--name", "worker-1",
                 "--pool", "cloud")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        f"openstack hook: MODE live (credentials: clouds.yaml entry double ({clouds}))"
        in done.stderr
    )
    (server,) = cloud.servers.values()
    (port,) = cloud.ports.values()
    # the pool "cloud" is cloud-agg, alone in cloud-az: Nova is asked for that zone
    assert server["name"] == "worker-1" and server["status"] == "ACTIVE"
    assert server["OS-EXT-AZ:availability_zone"] == "cloud-az"
    boot = server["request"]
    assert boot["server"]["networks"] == [{"port": port["id"]}]
    assert boot["server"]["flavorRef"] == cloud.flavors[0]["id"]
    assert boot["OS-SCH-HNT:scheduler_hints"] == {"group": "sg-1"}
    assert port["name"] == "worker-1-port"
    got = outcome(done)
    assert (got["outcome"], got["mode"], got["aggregate"], got["availability_zone"]) == (
        "created", "live", "cloud-agg", "cloud-az")  # fmt: skip
    assert got["server"]["id"] == server["id"]
    assert got["server"]["status"] == "ACTIVE"
    assert [(r["mode"], r["aggregate"]) for r in read_jsonl(
        tmp_path / "out" / "plan.jsonl")] == [("live", "cloud-agg")]  # fmt: skip


@pytest.mark.parametrize(
    ("pool", "flavor", "reason"),
    [
        ("gpu", "m1.small", "expected an aggregate with metadata frl-pool=gpu, "
                            "found none"),
        # 16 vCPU: cmp-2 has 1 free, cmp-3 12 (cmp-1's 80 are in another pool)
        ("edge", "m1.huge", "expected a host of aggregate edge-agg with 16 vCPU and "
                            "2048 MB free (placement), found none"),
    ],
)  # fmt: skip
def test_a_refusal_exits_1_with_its_message_and_plans_nothing(
    cloud: OpenStackDouble, tmp_path: Path, pool: str, flavor: str, reason: str
) -> None:
    env = cli_env(tmp_path, cloud, INTEGRATION_MODE="live")
    done = place(env, "--config", str(overlay(tmp_path)), "--name", "worker-1",
                 "--pool", pool, "--flavor", flavor)  # fmt: skip
    assert done.returncode == 1, done.stderr
    message = f"Server frl/worker-1: refused: {reason}"
    assert f"refused: {message}" in done.stderr
    assert outcome(done) == {"outcome": "refused", "mode": "live",
                             "name": "worker-1", "pool": pool, "error": message}  # fmt: skip
    assert cloud.mutating() == [] and cloud.servers == {}
    assert not (tmp_path / "out" / "plan.jsonl").exists()


def test_a_failed_read_exits_1_naming_what_was_missing(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    done = place(cli_env(tmp_path, cloud), "--config", str(overlay(tmp_path)),
                 "--name", "worker-1", "--pool", "edge", "--flavor", "m9.none")  # fmt: skip
    assert done.returncode == 1, done.stderr
    got = outcome(done)
    assert got["outcome"] == "failed"
    assert got["error"].startswith(
        "reading aggregates, placement and flavor m9.none: HTTP 404: "
    )
    assert "m9.none" in got["error"].split("HTTP 404: ", 1)[1]
    assert cloud.mutating() == []


@pytest.mark.parametrize(
    ("args", "settings", "env", "message"),
    [
        (["--name", "worker 1"], {}, {}, "--name: expected 1-63 letters, digits or '-'"),
        (["--pool", " "], {}, {}, "--pool: expected the pool the policy chose"),
        ([], {"image": ""}, {}, "openstack.image (--image): expected an image id, got ''"),
        ([], {"wait_timeout": 0}, {}, "openstack.wait_timeout: expected > 0 s, got 0.0"),
        ([], {}, {"INTEGRATION_MODE": "yes"},
         "INTEGRATION_MODE: expected 'dry-run' or 'live', got 'yes'"),
        ([], {"wait_timeout": "soon"}, {},  # the YAML's type, checked by omegaconf
         "Value 'soon' of type 'str' could not be converted to Float\n"
         "    full_key: openstack.wait_timeout"),
    ],
)  # fmt: skip
def test_bad_settings_or_arguments_exit_2_naming_the_field(
    cloud: OpenStackDouble, tmp_path: Path, args: list[str], settings: dict[str, Any],
    env: dict[str, str], message: str,
) -> None:  # fmt: skip
    given = {"--name": "worker-1", "--pool": "edge"}
    given.update(zip(args[::2], args[1::2], strict=True))
    done = place(cli_env(tmp_path, cloud, **env), "--config",
                 str(overlay(tmp_path, **settings)),
                 *[x for pair in given.items() for x in pair])  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot start: " + message in done.stderr
    assert done.stdout == ""
    assert cloud.calls == []  # refused before even logging in


def test_a_missing_argument_and_missing_credentials_exit_2(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    config = str(overlay(tmp_path))
    done = place(cli_env(tmp_path, cloud), "--config", config, "--name", "worker-1")
    assert done.returncode == 2
    assert "the following arguments are required: --pool" in done.stderr
    bare = cli_env(tmp_path, None, INTEGRATION_MODE="live", OS_CLOUD="gone")
    done = place(bare, "--config", config, "--name", "worker-1", "--pool", "edge")
    assert done.returncode == 2
    assert "MODE dry-run (INTEGRATION_MODE=live but no credentials found" in done.stderr
    assert "cannot start: no credentials: expected a clouds.yaml entry" in done.stderr
    assert cloud.calls == []


@pytest.mark.parametrize(
    ("plan_file", "message"),
    [
        ("", "openstack.plan_file (--plan-file): expected a path, got ''"),
        ("{tmp}/config-as-dir/plan.jsonl",  # a folder that is a file
         "openstack.plan_file (--plan-file, HOOKS_OPENSTACK_PLAN_FILE): expected a "
         "file this user can append to"),
        ("{tmp}", "expected a file this user can append to"),  # a folder
    ],
)  # fmt: skip
def test_a_plan_file_that_cannot_be_written_exits_2_before_any_read(
    cloud: OpenStackDouble, tmp_path: Path, plan_file: str, message: str
) -> None:
    (tmp_path / "config-as-dir").write_text("not a folder")
    done = place(cli_env(tmp_path, cloud, INTEGRATION_MODE="live"), "--config",
                 str(overlay(tmp_path)), "--name", "worker-1", "--pool", "edge",
                 "--plan-file", plan_file.format(tmp=tmp_path))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot start: " in done.stderr and message in done.stderr
    assert cloud.calls == [] and done.stdout == ""


def test_the_plan_file_can_come_from_the_environment(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    chosen = tmp_path / "elsewhere" / "plan.jsonl"
    env = cli_env(tmp_path, cloud, HOOKS_OPENSTACK_PLAN_FILE=str(chosen))
    done = place(env, "--config", str(overlay(tmp_path)), "--name", "worker-1",
                 "--pool", "edge")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r["aggregate"] for r in read_jsonl(chosen)] == ["edge-agg"]
    assert not (tmp_path / "out" / "plan.jsonl").exists()


@pytest.mark.parametrize(
    ("drop_password", "message"),
    [
        (True, "credentials: the login failed"),  # incomplete options
        (False, "(HTTP 401)"),  # Keystone refuses the login
    ],
)  # fmt: skip
def test_a_failed_login_exits_2_with_its_reason_and_reads_nothing(
    cloud: OpenStackDouble, tmp_path: Path, drop_password: bool, message: str
) -> None:
    env = cli_env(tmp_path, cloud)
    if drop_password:
        env.pop("OS_PASSWORD")
    else:
        cloud.fault("POST", r"/auth/tokens$", 401)
    done = place(env, "--config", str(overlay(tmp_path)), "--name", "worker-1",
                 "--pool", "edge")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot start: credentials: the login failed: " in done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "/compute/v2.1/os-aggregates" not in {c.path for c in cloud.calls}


def test_a_bad_log_level_or_settings_file_exits_2_without_a_traceback(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, cloud)
    done = place(env, "--config", str(overlay(tmp_path)), "--name", "worker-1",
                 "--pool", "edge", "--log-level", "loud")  # fmt: skip
    assert done.returncode == 2
    assert "--log-level: expected debug, info, warning or error, got 'loud'" in (
        done.stderr)  # fmt: skip
    typo = tmp_path / "typo.yaml"
    typo.write_text("openstack: {flavour: m1.small}\n")
    done = place(env, "--config", str(typo), "--name", "worker-1", "--pool", "edge")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot start: {typo}: no such setting (Key 'flavour'" in done.stderr
    assert cloud.calls == []
