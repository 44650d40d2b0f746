"""OpenStack placement with the real ``openstacksdk`` against a loopback double."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml
from keystoneauth1 import exceptions as ksa_exc

from hooks.actions import PlaceServer
from hooks.config import OpenStackConfig
from hooks.errors import PermanentHookError, RefusedError
from hooks.jsonl import read_jsonl
from hooks.mode import DryRunActuator, LiveActuator
from hooks.openstack import (
    Capacity,
    ServerPlacer,
    clouds_yaml_files,
    find_credentials,
    placement_actuator,
    placement_capacity,
    plan_server,
    read_placement,
)
from tests.hooks.openstack_double import OpenStackDouble

# the SDK warns about its own internals (4.22: service_type, _compute_attributes)
pytestmark = pytest.mark.filterwarnings(
    "ignore::openstack.warnings._RemovedInSDKWarning"
)

PROVIDERS = {  # name: (VCPU total, reserved, ratio), (MEMORY_MB ...), used vcpu, used MB
    "cmp-1": ((32, 2, 4.0), (65536, 512, 1.5), 40, 20000),
    "cmp-2": ((16, 0, 1.0), (32768, 0, 1.0), 15, 1000),
    "cmp-3": ((16, 0, 1.0), (32768, 2048, 1.0), 4, 8192),
}
CFG = OpenStackConfig(project="frl", image="img-1", flavor="m1.small", network="frl-net",
                      scheduler_hints={"different_host": ["a0b1"]}, wait_timeout=10.0)  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenStackDouble]:
    with OpenStackDouble() as double:
        for name, (vcpu, ram, used_vcpu, used_ram) in PROVIDERS.items():
            double.add_provider(name, vcpu, ram, used_vcpu, used_ram)
        double.add_aggregate(
            "edge-agg", "edge-az", ["cmp-2", "cmp-3"], {"frl-pool": "edge"}
        )
        double.add_aggregate("cloud-agg", "cloud-az", ["cmp-1"], {"frl-pool": "cloud"})
        double.add_flavor("m1.small", 2, 2048)
        double.add_network("frl-net")
        # the SDK's own loader reads these (no clouds.yaml: HOME is empty)
        monkeypatch.setenv("HOME", str(tmp_path))
        for key, value in {
            "OS_AUTH_URL": double.url + "/identity/v3", "OS_USERNAME": "tester",
            "OS_PASSWORD": "not-a-secret", "OS_PROJECT_NAME": "frl",
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public",
        }.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("OS_CLOUD", raising=False)
        yield double


def _connect(double: OpenStackDouble) -> Any:
    return openstack.connect(
        auth_url=double.url + "/identity/v3", username="tester", password="x",
        project_name="frl", user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", load_yaml_config=False, load_envvars=False,
    )  # fmt: skip


def test_capacity_comes_from_placement_inventories_and_usages(
    cloud: OpenStackDouble,
) -> None:
    got = placement_capacity(_connect(cloud))
    expected = {}
    for name, (vcpu, ram, used_vcpu, used_ram) in PROVIDERS.items():
        # (total - reserved) x allocation_ratio - used
        expected[name] = Capacity(
            (vcpu[0] - vcpu[1]) * vcpu[2] - used_vcpu,
            (ram[0] - ram[1]) * ram[2] - used_ram,
            0.0,
        )
    assert expected["cmp-1"] == Capacity(80.0, 77536.0, 0.0)  # worked by hand
    assert got == expected
    paths = [str(c) for c in cloud.calls]
    assert not any("os-hypervisors" in p for p in paths)  # lost its fields at 2.88
    assert all(c.method == "GET" for c in cloud.mutating()) and cloud.mutating() == []


def test_the_decision_picks_the_pools_zone_and_a_host_with_room(
    cloud: OpenStackDouble,
) -> None:
    conn = _connect(cloud)
    aggregates = list(conn.compute.aggregates())
    capacity = placement_capacity(conn)
    action = plan_server(CFG, "worker-1", "edge", aggregates, capacity, 2, 2048)
    assert action == PlaceServer(
        project="frl", name="worker-1", image="img-1", flavor="m1.small",
        network="frl-net", availability_zone="edge-az", aggregate="edge-agg",
        scheduler_hints={"different_host": ["a0b1"]},
    )  # fmt: skip
    # cmp-2 has 1 vCPU free, cmp-3 has 12: 13 do not fit either
    with pytest.raises(
        RefusedError, match="expected a host of aggregate edge-agg with 13 vCPU"
    ):
        plan_server(CFG, "worker-2", "edge", aggregates, capacity, 13, 2048)
    with pytest.raises(
        RefusedError, match="expected an aggregate with metadata frl-pool=gpu"
    ):
        plan_server(CFG, "worker-3", "gpu", aggregates, capacity, 1, 1)


def test_dry_run_is_the_default_even_with_credentials(
    cloud: OpenStackDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hooks")
    actuator = placement_actuator(CFG, dict(os.environ), tmp_path / "plan.jsonl")
    assert isinstance(actuator, DryRunActuator)
    action = PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az",
                         "edge-agg", {"group": "g1"})  # fmt: skip
    actuator.apply(action)
    assert cloud.calls == []  # not even a login
    assert "openstack hook: MODE dry-run" in caplog.text
    assert (
        "DRY-RUN would create Server frl/worker-1 (az=edge-az, aggregate=edge-agg, "
        "hints={'group': 'g1'})" in caplog.text
    )
    assert read_jsonl(tmp_path / "plan.jsonl")[0]["availability_zone"] == "edge-az"


def test_live_creates_the_port_then_boots_on_it_in_the_zone_with_hints(
    cloud: OpenStackDouble, tmp_path: Path
) -> None:
    environ = {**os.environ, "INTEGRATION_MODE": "live"}
    actuator = placement_actuator(CFG, environ, tmp_path / "plan.jsonl")
    assert isinstance(actuator, LiveActuator)
    placer = actuator.executors[PlaceServer]
    assert isinstance(placer, ServerPlacer)
    placer.interval = 0.02
    action = PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az",
                         "edge-agg", {"different_host": ["a0b1"]})  # fmt: skip
    server = actuator.apply(action)
    assert server.status == "ACTIVE"
    writes = cloud.mutating()
    assert [str(c) for c in writes] == [
        "POST /network/v2.0/ports",
        "POST /compute/v2.1/servers",
    ]
    port = next(iter(cloud.ports.values()))
    assert writes[0].body == {"port": {"network_id": cloud.networks[0]["id"],
                                       "name": "worker-1-port"}}  # fmt: skip
    boot = writes[1]
    assert boot.body["server"]["networks"] == [{"port": port["id"]}]
    assert boot.body["server"]["availability_zone"] == "edge-az"
    assert boot.body["server"]["imageRef"] == "img-1"
    assert boot.body["server"]["flavorRef"] == cloud.flavors[0]["id"]
    assert boot.body["OS-SCH-HNT:scheduler_hints"] == {"different_host": ["a0b1"]}
    version = boot.headers["OpenStack-API-Version"].split()
    assert version[0] == "compute" and tuple(map(int, version[1].split("."))) >= (2, 88)


def test_a_server_in_error_is_deleted_with_its_port(cloud: OpenStackDouble) -> None:
    cloud.knobs.fail_servers = True
    placer = ServerPlacer(_connect(cloud), wait=10.0, interval=0.02)
    action = PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az")
    with pytest.raises(PermanentHookError, match="Server frl/worker-1") as caught:
        placer(action)
    assert "were deleted" in str(caught.value)
    writes = [str(c).rsplit("/", 1)[0] if c.method == "DELETE" else str(c)
              for c in cloud.mutating()]  # fmt: skip
    assert writes == [
        "POST /network/v2.0/ports",
        "POST /compute/v2.1/servers",
        "DELETE /compute/v2.1/servers",
        "DELETE /network/v2.0/ports",
    ]
    assert cloud.servers == {} and cloud.ports == {}


def test_a_connection_lost_while_waiting_is_rolled_back_as_a_hook_error(
    cloud: OpenStackDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport errors of keystoneauth are not the SDK's: they roll back too."""
    conn = _connect(cloud)

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise ksa_exc.ConnectFailure("connection reset while polling the server")

    monkeypatch.setattr(conn.compute, "wait_for_server", lost)
    placer = ServerPlacer(conn, wait=10.0, interval=0.02)
    action = PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az")
    with pytest.raises(PermanentHookError, match="connection reset") as caught:
        placer(action)
    assert "were deleted" in str(caught.value)
    assert cloud.servers == {} and cloud.ports == {}


def test_an_ambiguous_create_is_not_resent_and_is_cleaned_up_by_name(
    cloud: OpenStackDouble,
) -> None:
    cloud.fault("POST", r"/servers$", 500, applied=True)  # made, but the answer lost
    placer = ServerPlacer(_connect(cloud), wait=10.0, interval=0.02)
    with pytest.raises(PermanentHookError, match="HTTP 500"):
        placer(
            PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az")
        )
    assert sum(str(c) == "POST /compute/v2.1/servers" for c in cloud.calls) == 1
    assert cloud.servers == {} and cloud.ports == {}


def test_a_throttled_port_create_is_retried(cloud: OpenStackDouble) -> None:
    cloud.fault("POST", r"/ports$", 429)
    placer = ServerPlacer(_connect(cloud), wait=10.0, interval=0.02)
    placer.retry = placer.retry.__class__(attempts=3, base_delay=0.01)
    placer(PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az"))
    assert sum(str(c) == "POST /network/v2.0/ports" for c in cloud.calls) == 2
    assert len(cloud.ports) == 1 and len(cloud.servers) == 1


# ---------------------------------------------------------------- the aggregate


def test_the_aggregate_is_kept_through_the_flavor_or_a_zone_of_its_own(
    cloud: OpenStackDouble,
) -> None:
    """Nova must pick a host of the pool's aggregate, or nothing is planned.

    ``gpu-agg`` has no zone; ``shared-agg`` shares ``edge-az`` with edge-agg's hosts:
    booting in that zone could land on cmp-2 or cmp-3. Only a flavor whose extra
    spec pins the aggregate makes either of them a valid target.
    """
    conn = _connect(cloud)
    before = read_placement(conn, CFG)
    # edge-agg's zone holds only its own hosts: the zone is the aggregate
    edge = plan_server(CFG, "w", "edge", before.aggregates, before.capacity, 2, 2048,
                       before.flavor_extra_specs)  # fmt: skip
    assert edge.availability_zone == "edge-az"
    # room is judged on the aggregate's own hosts: cmp-1 (80 vCPU free) is no help
    with pytest.raises(RefusedError, match="host of aggregate edge-agg with 13 vCPU"):
        plan_server(CFG, "w", "edge", before.aggregates, before.capacity, 13, 1)

    cloud.add_aggregate("gpu-agg", None, ["cmp-1"], {"frl-pool": "gpu"})
    cloud.add_aggregate("shared-agg", "edge-az", ["cmp-1"], {"frl-pool": "shared"})
    cloud.add_flavor("g1.pinned", 2, 2048,
                     {"aggregate_instance_extra_specs:frl-pool": "gpu"})  # fmt: skip
    plain = read_placement(conn, CFG)
    assert plain.flavor_extra_specs == {}
    for pool, why in [("gpu", "it has no availability zone"),
                      ("shared", "its zone edge-az also holds cmp-2, cmp-3"),
                      ("edge", "its zone edge-az also holds cmp-1")]:  # fmt: skip
        with pytest.raises(RefusedError, match=re.escape(why)) as caught:
            plan_server(CFG, "w", pool, plain.aggregates, plain.capacity, 1, 1,
                        plain.flavor_extra_specs)  # fmt: skip
        assert "aggregate_instance_extra_specs:frl-pool=" + pool in str(caught.value)
    # the flavor's extra spec keeps a server on gpu-agg (AggregateInstanceExtraSpecs)
    pinned_cfg = OpenStackConfig(**{**CFG.__dict__, "flavor": "g1.pinned"})
    pinned = read_placement(conn, pinned_cfg)
    assert pinned.flavor_extra_specs == {
        "aggregate_instance_extra_specs:frl-pool": "gpu"
    }
    action = plan_server(pinned_cfg, "w", "gpu", pinned.aggregates, pinned.capacity,
                         2, 2048, pinned.flavor_extra_specs)  # fmt: skip
    assert (action.aggregate, action.availability_zone, action.flavor) == (
        "gpu-agg", None, "g1.pinned")  # fmt: skip
    assert cloud.mutating() == []


def test_hosts_in_no_aggregate_share_the_default_zone() -> None:
    class Agg:
        def __init__(self, name: str, zone: str | None, hosts: list[str],
                     pool: str) -> None:  # fmt: skip
            self.name, self.availability_zone, self.hosts = name, zone, hosts
            self.metadata = {"frl-pool": pool}

    capacity = {h: Capacity(8, 8192, 0) for h in ("cmp-1", "cmp-2")}
    aggregates = [Agg("a", "nova", ["cmp-1"], "p")]
    with pytest.raises(RefusedError, match="its zone nova also holds cmp-2"):
        plan_server(CFG, "w", "p", aggregates, capacity, 1, 1)
    capacity.pop("cmp-2")
    assert plan_server(CFG, "w", "p", aggregates, capacity, 1, 1).availability_zone == (
        "nova"
    )


def test_a_failing_server_delete_still_deletes_the_port_and_keeps_the_error(
    cloud: OpenStackDouble,
) -> None:
    cloud.knobs.fail_servers = True
    cloud.fault("DELETE", r"/servers/[^/]+$", 500)
    placer = ServerPlacer(_connect(cloud), wait=10.0, interval=0.02)
    action = PlaceServer("frl", "worker-1", "img-1", "m1.small", "frl-net", "edge-az")
    with pytest.raises(PermanentHookError) as caught:
        placer(action)
    message = str(caught.value)
    # the boot's failure is what is reported, with what the rollback left behind
    assert message.startswith("Server frl/worker-1: ")
    assert "ERROR" in message or "No valid host" in message, message
    (server_id,) = cloud.servers
    assert f"clean-up failed, left behind: server {server_id}" in message
    assert cloud.ports == {}  # the port went anyway
    deletes = [
        str(c).rsplit("/", 1)[0] for c in cloud.mutating() if c.method == "DELETE"
    ]
    assert deletes == ["DELETE /compute/v2.1/servers", "DELETE /network/v2.0/ports"]


def test_os_cloud_alone_is_no_credential(tmp_path: Path) -> None:
    named = OpenStackConfig(cloud="mycloud")
    home = tmp_path / "home"
    clouds = home / ".config" / "openstack" / "clouds.yaml"
    environ = {"HOME": str(home), "OS_CLOUD": "mycloud"}
    search = [clouds]
    assert find_credentials(OpenStackConfig(), environ, search) is None
    assert find_credentials(named, {"HOME": str(home)}, search) is None
    clouds.parent.mkdir(parents=True)
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {}}}}))
    assert find_credentials(OpenStackConfig(), environ, search) is None
    clouds.write_text(yaml.safe_dump({"clouds": {"mycloud": {"auth": {}}}}))
    found = find_credentials(OpenStackConfig(), environ, search)
    assert found == f"clouds.yaml entry mycloud ({clouds})"
    # the SDK's search path: $HOME/.config/openstack/clouds.yaml is on it
    assert clouds in clouds_yaml_files(environ)
    assert find_credentials(OpenStackConfig(), {"OS_AUTH_URL": "http://k"}, []) == (
        "OS_* variables"
    )
    # live asked for with OS_CLOUD alone stays dry-run
    bare = {"INTEGRATION_MODE": "live", "OS_CLOUD": "gone", "HOME": str(tmp_path)}
    actuator = placement_actuator(OpenStackConfig(), bare, None,
                                  connection=lambda cfg: pytest.fail("connected"))  # fmt: skip
    assert isinstance(actuator, DryRunActuator)
