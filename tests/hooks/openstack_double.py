"""A loopback double of Keystone, Nova, Neutron and Placement for ``openstacksdk``.

Stdlib ``ThreadingHTTPServer`` on 127.0.0.1, port 0. It serves the version
documents the SDK discovers, a token with a service catalog pointing back at itself,
and the calls the placement hook makes: placement providers, inventories and usages;
Nova flavors, aggregates and servers (BUILD -> ACTIVE, or ERROR on request) at a
chosen maximum microversion; Neutron networks and ports. Every request is recorded
as (method, path, query, headers, body).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Knobs:
    nova_max_microversion: str = "2.96"
    polls_to_active: int = 2
    """GETs of a new server that still answer BUILD."""
    fail_servers: bool = False
    """New servers go to ERROR instead of ACTIVE."""


@dataclass
class Provider:
    name: str
    inventories: dict[str, dict[str, Any]]
    usages: dict[str, int]
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


class OpenStackDouble:
    """Keystone + Nova + Neutron + Placement on one loopback port."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.knobs = Knobs()
        self.providers: list[Provider] = []
        self.aggregates: list[dict[str, Any]] = []
        self.flavors: list[dict[str, Any]] = []
        self.extra_specs: dict[str, dict[str, str]] = {}
        self.networks: list[dict[str, Any]] = []
        self.ports: dict[str, dict[str, Any]] = {}
        self.servers: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self.faults: list[tuple[str, re.Pattern[str], int, bool]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OpenStackDouble:
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ setup
    def add_provider(
        self, name: str, vcpu: tuple[int, int, float], ram: tuple[int, int, float],
        used_vcpu: int, used_ram: int,
    ) -> Provider:  # fmt: skip
        """``vcpu``/``ram`` = (total, reserved, allocation_ratio)."""

        def inv(total: int, reserved: int, ratio: float) -> dict[str, Any]:
            return {"total": total, "reserved": reserved, "allocation_ratio": ratio,
                    "min_unit": 1, "max_unit": total, "step_size": 1}  # fmt: skip

        provider = Provider(
            name,
            {"VCPU": inv(*vcpu), "MEMORY_MB": inv(*ram)},
            {"VCPU": used_vcpu, "MEMORY_MB": used_ram},
        )
        self.providers.append(provider)
        return provider

    def add_aggregate(
        self, name: str, zone: str | None, hosts: list[str], metadata: dict[str, str]
    ) -> None:
        """An aggregate; ``zone`` None: no availability zone (Nova omits the key)."""
        zoned = {"availability_zone": zone} if zone else {}
        self.aggregates.append({
            "id": len(self.aggregates) + 1, "uuid": str(uuid.uuid4()), "name": name,
            "availability_zone": zone, "hosts": hosts,
            "metadata": {**metadata, **zoned},
            "created_at": "2026-01-01T00:00:00.000000", "updated_at": None,
            "deleted_at": None, "deleted": False,
        })  # fmt: skip

    def add_flavor(
        self, name: str, vcpus: int, ram: int, extra_specs: dict[str, str] | None = None
    ) -> str:
        """A flavor; extra specs in its body (>= 2.61) and under os-extra_specs."""
        flavor_id = str(uuid.uuid4())
        self.flavors.append({
            "id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram, "disk": 10,
            "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0, "rxtx_factor": 1.0,
            "os-flavor-access:is_public": True, "description": None,
            "extra_specs": dict(extra_specs or {}), "links": [],
        })  # fmt: skip
        self.extra_specs[flavor_id] = dict(extra_specs or {})
        return flavor_id

    def add_network(self, name: str) -> str:
        net_id = str(uuid.uuid4())
        self.networks.append({"id": net_id, "name": name, "status": "ACTIVE",
                              "subnets": [], "admin_state_up": True})  # fmt: skip
        return net_id

    def fault(self, method: str, path: str, status: int, applied: bool = False) -> None:
        """The next ``method`` on a path matching ``path`` answers ``status``.

        ``applied``: the request takes effect first (an answer lost on the way).
        """
        self.faults.append((method, re.compile(path), status, applied))

    def mutating(self) -> list[Call]:
        """Requests other than reads (the token request is a login, not a change)."""
        return [
            c for c in self.calls
            if c.method != "GET" and not c.path.endswith("/auth/tokens")
        ]  # fmt: skip

    # ------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                call = Call(self.command, url.path, query, dict(self.headers), body)
                with double.lock:
                    double.calls.append(call)
                    code, payload, headers = double._dispatch(call)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        return Handler

    def _catalog(self) -> list[dict[str, Any]]:
        def service(kind: str, name: str, path: str) -> dict[str, Any]:
            return {
                "type": kind, "name": name, "id": name,
                "endpoints": [{"interface": "public", "region": "RegionOne",
                               "region_id": "RegionOne", "id": name + "-public",
                               "url": self.url + path}],
            }  # fmt: skip

        return [
            service("identity", "keystone", "/identity/v3"),
            service("compute", "nova", "/compute/v2.1"),
            service("network", "neutron", "/network"),
            service("placement", "placement", "/placement"),
        ]

    def _dispatch(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        for fault in self.faults:
            method, pattern, status, applied = fault
            if method == call.method and pattern.search(call.path):
                self.faults.remove(fault)
                if applied:
                    self._route(call)
                message = {429: "rate limited", 500: "boom"}.get(status, "fault")
                return (
                    status,
                    {"computeFault": {"code": status, "message": message}},
                    {},
                )
        return self._route(call)

    def _route(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        path, method = call.path.rstrip("/"), call.method
        # ---- keystone
        if path in ("/identity", "/identity/v3") and method == "GET":
            return 200, {"version": {
                "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.url + "/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}],
            }}, {}  # fmt: skip
        if path == "/identity/v3/auth/tokens" and method == "POST":
            token = {
                "methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2026-01-01T00:00:00.000000Z",
                "user": {"id": "u1", "name": "tester",
                         "domain": {"id": "default", "name": "Default"}},
                "project": {"id": "p1", "name": "frl",
                            "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r1", "name": "member"}],
                "catalog": self._catalog(),
            }  # fmt: skip
            return 201, {"token": token}, {"X-Subject-Token": "token-1"}
        # ---- placement
        if path.startswith("/placement"):
            return self._placement(path[len("/placement") :], method)
        # ---- nova
        if path.startswith("/compute"):
            code, payload, headers = self._nova(path[len("/compute") :], call)
            return (
                code,
                payload,
                {
                    **headers,
                    "OpenStack-API-Version": call.headers.get(
                        "OpenStack-API-Version", "compute 2.1"
                    ),
                },
            )
        # ---- neutron
        if path.startswith("/network"):
            return self._neutron(path[len("/network") :], call)
        return 404, {"error": f"no route {method} {call.path}"}, {}

    def _placement(self, path: str, method: str) -> tuple[int, Any, dict[str, str]]:
        if path == "" and method == "GET":
            return 200, {"versions": [{"id": "v1.0", "max_version": "1.39",
                                       "min_version": "1.0", "status": "CURRENT",
                                       "links": [{"rel": "self",
                                                  "href": self.url + "/placement/"}]}]}, {}  # fmt: skip
        if path == "/resource_providers" and method == "GET":
            return 200, {"resource_providers": [
                {"uuid": p.uuid, "name": p.name, "generation": 1,
                 "parent_provider_uuid": None, "root_provider_uuid": p.uuid,
                 "links": []} for p in self.providers
            ]}, {}  # fmt: skip
        m = re.fullmatch(r"/resource_providers/([^/]+)/(inventories|usages)", path)
        if m and method == "GET":
            provider = next((p for p in self.providers if p.uuid == m[1]), None)
            if provider is None:
                return 404, {"errors": [{"status": 404, "title": "Not Found"}]}, {}
            if m[2] == "inventories":
                return 200, {"inventories": provider.inventories,
                             "resource_provider_generation": 1}, {}  # fmt: skip
            return 200, {"usages": provider.usages,
                         "resource_provider_generation": 1}, {}  # fmt: skip
        return 404, {"errors": [{"status": 404, "title": "Not Found"}]}, {}

    def _nova(self, path: str, call: Call) -> tuple[int, Any, dict[str, str]]:
        method = call.method
        not_found = {"itemNotFound": {"code": 404, "message": "not found"}}
        if path in ("", "/v2.1") and method == "GET":
            return 200, {"version": {
                "id": "v2.1", "status": "CURRENT", "version": self.knobs.nova_max_microversion,
                "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": self.url + "/compute/v2.1/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}],
            }}, {}  # fmt: skip
        path = path[len("/v2.1") :] if path.startswith("/v2.1") else path
        if path == "/os-aggregates" and method == "GET":
            return 200, {"aggregates": copy.deepcopy(self.aggregates)}, {}
        if path == "/flavors/detail" and method == "GET":
            return 200, {"flavors": copy.deepcopy(self.flavors)}, {}
        m = re.fullmatch(r"/flavors/([^/]+)/os-extra_specs", path)
        if m and method == "GET":
            if m[1] not in self.extra_specs:
                return 404, not_found, {}
            return 200, {"extra_specs": dict(self.extra_specs[m[1]])}, {}
        m = re.fullmatch(r"/flavors/([^/]+)", path)
        if m and method == "GET":
            flavor = next((f for f in self.flavors if f["id"] == m[1]), None)
            return (200, {"flavor": flavor}, {}) if flavor else (404, not_found, {})
        if path == "/servers" and method == "POST":
            spec = call.body["server"]
            server_id = str(uuid.uuid4())
            self.servers[server_id] = {
                "id": server_id, "name": spec["name"], "status": "BUILD",
                "request": copy.deepcopy(call.body), "links": [],
                "OS-EXT-AZ:availability_zone": spec.get("availability_zone", ""),
            }  # fmt: skip
            self._polls[server_id] = 0
            return 202, {"server": {"id": server_id, "links": [],
                                    "adminPass": "not-a-secret"}}, {}  # fmt: skip
        if path == "/servers/detail" and method == "GET":
            name = call.query.get("name", "")
            found = [s for s in self.servers.values()
                     if not name or re.search(name, s["name"])]  # fmt: skip
            return 200, {"servers": [self._server_view(s) for s in found]}, {}
        m = re.fullmatch(r"/servers/([^/]+)", path)
        if m:
            server = self.servers.get(m[1])
            if server is None:
                return 404, not_found, {}
            if method == "DELETE":
                del self.servers[m[1]]
                return 204, None, {}
            if method == "GET":
                self._advance(server)
                return 200, {"server": self._server_view(server)}, {}
        return 404, not_found, {}

    def _advance(self, server: dict[str, Any]) -> None:
        self._polls[server["id"]] += 1
        if (
            server["status"] == "BUILD"
            and self._polls[server["id"]] > self.knobs.polls_to_active
        ):
            server["status"] = "ERROR" if self.knobs.fail_servers else "ACTIVE"
            if self.knobs.fail_servers:
                server["fault"] = {"code": 500, "message": "No valid host was found."}

    @staticmethod
    def _server_view(server: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in server.items() if k != "request"}
        return copy.deepcopy(view)

    def _neutron(self, path: str, call: Call) -> tuple[int, Any, dict[str, str]]:
        method = call.method
        not_found = {"NeutronError": {"type": "NotFound", "message": "not found",
                                      "detail": ""}}  # fmt: skip
        if path == "" and method == "GET":
            return 200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                       "links": [{"rel": "self",
                                                  "href": self.url + "/network/v2.0/"}]}]}, {}  # fmt: skip
        path = path[len("/v2.0") :] if path.startswith("/v2.0") else path
        if path == "/networks" and method == "GET":
            name = call.query.get("name")
            found = [n for n in self.networks if name is None or n["name"] == name]
            return 200, {"networks": copy.deepcopy(found)}, {}
        m = re.fullmatch(r"/networks/([^/]+)", path)
        if m and method == "GET":
            net = next((n for n in self.networks if n["id"] == m[1]), None)
            return (200, {"network": net}, {}) if net else (404, not_found, {})
        if path == "/ports" and method == "POST":
            spec = call.body["port"]
            port_id = str(uuid.uuid4())
            self.ports[port_id] = {"id": port_id, "status": "DOWN", **spec}
            return 201, {"port": copy.deepcopy(self.ports[port_id])}, {}
        if path == "/ports" and method == "GET":
            found = [p for p in self.ports.values()
                     if all(p.get(k) == v for k, v in call.query.items())]  # fmt: skip
            return 200, {"ports": copy.deepcopy(found)}, {}
        m = re.fullmatch(r"/ports/([^/]+)", path)
        if m and method == "DELETE":
            if self.ports.pop(m[1], None) is None:
                return 404, not_found, {}
            return 204, None, {}
        return 404, not_found, {}
