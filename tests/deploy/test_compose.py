"""The compose demo, validated by Compose itself (v5, offline) and read for its rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from envs.reach.formats import load_reach_config
from scripts import entrypoint, make_certs

from .conftest import ROOT, tool

BASE = ROOT / "docker-compose.yaml"
AUTH = ROOT / "docker-compose.auth.yaml"
OUR_IMAGE = "federated-rl-multicloud:dev"
REGIONS = ("us-east", "eu-central", "asia-east")
VARIABLES = ("FRL_IMAGE", "TORCH_INDEX_URL", "DEMO_ROUNDS", "MIGRATOR_KUBECONFIG",
             "MIGRATOR_NAMESPACE", "MIGRATOR_APP_LABEL", "MIGRATOR_LATENCY_QUERY")  # fmt: skip


def compose(*files: Path, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    args = [tool("docker-compose")]
    for file in files:
        args += ["-f", str(file)]
    return subprocess.run(
        [*args, "config", *extra], capture_output=True, text=True, check=False,
        cwd=ROOT, env=env,
    )  # fmt: skip


@cache
def resolved(*files: Path) -> dict[str, Any]:
    """The merged, interpolated model Compose would run."""
    done = compose(*files, extra=("--format", "json"))
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


@pytest.mark.parametrize("files", [(BASE,), (BASE, AUTH)], ids=["base", "auth"])
def test_compose_accepts_the_files(files: tuple[Path, ...]) -> None:
    done = compose(*files, extra=("--quiet",))
    assert done.returncode == 0, done.stderr


def test_compose_rejects_what_the_spec_does_not_allow(tmp_path: Path) -> None:
    raw = yaml.safe_load(BASE.read_text())
    raw["services"]["superlink"]["healthcheck_typo"] = {}
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(raw))
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    done = compose(bad, extra=("--quiet",))
    assert done.returncode != 0 and "healthcheck_typo" in done.stderr


def test_raw_files_fit_the_vendored_compose_schema() -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
         str(BASE), str(AUTH)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def ours(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in model["services"].items() if s["image"] == OUR_IMAGE}


@pytest.mark.parametrize("files", [(BASE,), (BASE, AUTH)], ids=["base", "auth"])
def test_every_container_of_ours_is_locked_down(files: tuple[Path, ...]) -> None:
    model = resolved(*files)
    services = ours(model)
    assert len(services) >= 11
    for name, service in services.items():
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert any(t.startswith("/var/lib/frl:") for t in service["tmpfs"]), name
        assert "privileged" not in service, name
        for mount in service.get("volumes", []):
            assert mount["type"] in {"volume", "bind"}, (name, mount)
            if mount["type"] == "bind":  # configuration only, never writable
                assert mount["read_only"], (name, mount)
    prometheus = model["services"]["prometheus"]
    assert prometheus["read_only"] is True and prometheus["user"] == "10001:10001"


def test_health_checks_run_python_and_gate_the_start_order() -> None:
    model = resolved(BASE)
    for name, service in ours(model).items():
        check = service.get("healthcheck")
        if check:
            assert check["test"][:4] == ["CMD", "python", "-m", "scripts.healthcheck"]
        for target, rule in service.get("depends_on", {}).items():
            assert target in model["services"], (name, target)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in model["services"][target], (name, target)
    for name in ("superlink", "policy-server", "migrator"):
        assert "healthcheck" in model["services"][name], name
    assert (
        "https://localhost:9093/health"
        in model["services"]["superlink"]["healthcheck"]["test"]
    )


def test_the_federation_has_a_supernode_and_a_worker_per_region() -> None:
    services = resolved(BASE)["services"]
    submit = services["submit"]["command"]
    listed = next(a for a in submit if a.startswith("federation.regions="))
    regions = listed.split("=", 1)[1].strip("[]").split(",")
    seen = []
    for region in REGIONS:
        node = services[f"supernode-{region}"]
        folder = node["environment"]["REGION"]
        seen.append(folder)
        assert node["command"][0] == "supernode"
        assert "--root-certificates" in node["command"]  # TLS to the SuperLink
        host = node["command"][node["command"].index("--host") + 1]
        assert host == "127.0.0.1"  # the Runtime API stays in the pod
        worker = services[f"worker-{region}"]
        assert worker["network_mode"] == f"service:supernode-{region}"
        assert worker["command"][:3] == ["worker", "--runtime-api-address",
                                         "127.0.0.1:9094"]  # fmt: skip
        # every region is a real cluster folder of the image (/app = the checkout)
        config = load_reach_config(ROOT / folder.removeprefix("/app/"),
                                   "aggregator_sequential")  # fmt: skip
        assert len(config.nodes.nodes) == 7
    assert regions == seen
    assert "federation.rounds=3" in submit  # DEMO_ROUNDS' default


def test_dry_run_by_default_and_the_migrator_asks_the_keyed_policy_server() -> None:
    services = resolved(BASE)["services"]
    migrator = services["migrator"]
    assert migrator["environment"]["INTEGRATION_MODE"] == "dry-run"
    # no keyless loopback sidecar: the migrator sends the key (POLICY_API_KEY)
    assert "migrator-policy" not in services
    assert (
        migrator["environment"]["POLICY_URL"] == "http://policy-server:8000/get_action"
    )
    public = services["policy-server"]
    assert public["command"][public["command"].index("--host") + 1] == "0.0.0.0"
    key = public["environment"]["SERVING_API_KEY_FILE"]
    assert key == "/secrets/api/serving-api-key"
    assert migrator["environment"]["POLICY_API_KEY_FILE"] == key
    assert "POLICY_API_KEY" in entrypoint.SECRETS  # the entry point reads the file
    assert migrator["depends_on"]["policy-server"]["condition"] == "service_healthy"
    kubeconfig = Path(resolved(BASE)["secrets"]["kubeconfig"]["file"])
    assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"][
        "server"
    ].endswith(".invalid:6443")


def visible_secrets(service: dict[str, Any], files: list[str]) -> set[str]:
    """The files of the ``secrets`` volume a service's mounts show it."""
    seen = set()
    for mount in service.get("volumes", []):
        if mount["type"] != "volume" or mount["source"] != "secrets":
            continue
        subpath = (mount.get("volume") or {}).get("subpath", "")
        seen |= {f for f in files if not subpath or f.startswith(subpath + "/")}
    return seen


@pytest.mark.parametrize("files", [(BASE,), (BASE, AUTH)], ids=["base", "auth"])
def test_every_service_sees_only_its_own_secrets(
    files: tuple[Path, ...], tmp_path: Path
) -> None:
    """The files ``certs`` writes, and who may read which (volume subpaths)."""
    services = resolved(*files)["services"]
    command = services["certs"]["command"]
    regions = [command[i + 1] for i, a in enumerate(command) if a == "--node"]
    dns = [command[i + 1] for i, a in enumerate(command) if a == "--dns"]
    make_certs.make_all(tmp_path, make_certs.Names(tuple(dns), ()), regions,
                        api_key="--api-key" in command)  # fmt: skip
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if p.is_file() and p.name != ".gitignore")  # fmt: skip
    public = {f for f in written if f.startswith("public/")}
    assert public == {"public/ca.pem", *(f"public/nodes/{r}.pub" for r in regions)}
    link = {"superlink/superlink.pem", "superlink/superlink.key"}
    api = {"api/serving-api-key"}
    auth = AUTH in files
    expected: dict[str, set[str]] = {
        "certs": set(written),  # it writes them
        "superlink": public | link,
        "submit": public,
        "policy-server": api,
        "migrator": api,
        "prometheus": api,
        **{f"worker-{r}": set() for r in regions},
        **{f"supernode-{r}": public | ({f"nodes/{r}/node.key"} if auth else set())
           for r in regions},
    }  # fmt: skip
    if auth:
        expected["register"] = public
    assert set(services) == set(expected)
    seen = {name: visible_secrets(s, written) for name, s in services.items()}
    assert seen == expected
    # private keys: each is seen by its owners (and the writer) only
    owners = {
        "superlink/superlink.key": {"superlink"},
        "api/serving-api-key": {"policy-server", "migrator", "prometheus"},
        **{f"nodes/{r}/node.key": {f"supernode-{r}"} if auth else set()
           for r in regions},
    }  # fmt: skip
    for private, who in owners.items():
        readers = {n for n, visible in seen.items() if private in visible}
        assert readers == who | {"certs"}, (private, readers)
    for name, service in services.items():
        for mount in service.get("volumes", []):
            if mount.get("source") == "secrets" and name != "certs":
                assert mount.get("read_only") is True, (name, mount)
    # the paths each command names are inside what it mounts
    for name, service in services.items():
        text = json.dumps([service.get("command"), service.get("environment"),
                           service.get("healthcheck")])  # fmt: skip
        for path in re.findall(r"(?<![\w/])/secrets/[\w./-]+", text):
            rel = path.removeprefix("/secrets/")
            mounted = [m for m in service.get("volumes", [])
                       if m.get("source") == "secrets"
                       and path.startswith(m["target"] + "/")]  # fmt: skip
            assert mounted, (name, path)
            sub = (mounted[0].get("volume") or {}).get("subpath", "")
            inside = path.removeprefix(mounted[0]["target"] + "/")
            assert f"{sub}/{inside}".lstrip("/") in written, (name, path, rel)


def test_auth_overlay_registers_every_key_before_the_supernodes_start() -> None:
    services = resolved(BASE, AUTH)["services"]
    assert "--enable-supernode-auth" in services["superlink"]["command"]
    register = services["register"]["command"]
    assert register[0] == "register"
    for region in REGIONS:
        node = services[f"supernode-{region}"]
        assert node["environment"]["SUPERNODE_AUTH_KEY"] == "/secrets/node/node.key"
        assert f"/secrets/public/nodes/{region}.pub" in register
        assert node["depends_on"]["register"]["condition"] == (
            "service_completed_successfully"
        )
    certs = services["certs"]["command"]
    assert [certs[i + 1] for i, a in enumerate(certs) if a == "--node"] == list(REGIONS)


def test_prometheus_scrapes_the_policy_server_and_the_migrator(tmp_path: Path) -> None:
    model = resolved(BASE)
    config = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"policy-server", "migrator"}
    for job in jobs.values():
        (target,) = job["static_configs"][0]["targets"]
        service, port = target.split(":")
        assert port in model["services"][service]["expose"], target
    # the keyed server is scraped with its key, read from the shared secrets volume
    key_file = jobs["policy-server"]["authorization"]["credentials_file"]
    assert (
        key_file
        == model["services"]["policy-server"]["environment"]["SERVING_API_KEY_FILE"]
    )
    # promtool (Prometheus 2.x) checks the file, its key file must exist
    promtool = tool("promtool")
    (tmp_path / "key").write_text("k" * 64)
    text = (ROOT / "deploy/compose/prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        re.sub(re.escape(key_file), str(tmp_path / "key"), text)
    )
    done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
