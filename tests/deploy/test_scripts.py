"""The image's helper scripts: entrypoint, certificates, health check, submission."""

from __future__ import annotations

import http.server
import importlib.util
import ssl
import stat
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scripts import entrypoint, healthcheck, make_certs, submit


# ---------------------------------------------------------------- entrypoint
def test_roles_expand_and_anything_else_runs_as_given() -> None:
    env = {"REGION": "eu-central"}
    assert entrypoint.command(["serve", "--port", "8000"], env) == [
        "python", "-m", "serving", "--port", "8000"]  # fmt: skip
    assert entrypoint.command(["supernode", "--insecure"], env) == [
        "python", "-m", "fl_clients.supernode", "--poll-interval", "0.2",
        "--node-config", "region='eu-central'", "--insecure"]  # fmt: skip
    keyed = {**env, "SUPERNODE_AUTH_KEY": "/s/k", "NODE_POLL_S": "1"}
    line = entrypoint.command(["supernode"], keyed)
    assert line[line.index("--poll-interval") + 1] == "1"
    assert line[-2:] == ["--auth-supernode-private-key", "/s/k"]
    assert entrypoint.command(["superlink"], {})[:2] == [
        "flower-superlink", "--disable-runtime-dependency-installation"]  # fmt: skip
    assert entrypoint.command(["flwr", "ls"], {}) == ["flwr", "ls"]


def test_every_role_starts_something_that_exists() -> None:
    for role, line in entrypoint.ROLES.items():
        if line[0] == "python":
            assert importlib.util.find_spec(line[2]) is not None, role
        else:
            assert (Path(sys.executable).parent / line[0]).exists(), role


def test_a_supernode_without_its_region_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^REGION: expected the SuperNode's region"):
        entrypoint.command(["supernode"], {})
    with pytest.raises(ValueError, match="no single quote"):
        entrypoint.command(["supernode"], {"REGION": "a'b"})
    with pytest.raises(ValueError, match="expected a role"):
        entrypoint.command([], {})


def test_secret_files_fill_unset_variables_and_folders_appear(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cret-value\n")
    env = {"SERVING_API_KEY_FILE": str(tmp_path / "key"), "TF_CLI_CONFIG_FILE": "/x"}
    assert entrypoint.load_secret_files(env) == ["SERVING_API_KEY"]
    assert env["SERVING_API_KEY"] == "s3cret-value"
    client = {"POLICY_API_KEY_FILE": str(tmp_path / "key")}  # the migrator's side
    assert entrypoint.load_secret_files(client) == ["POLICY_API_KEY"]
    assert client["POLICY_API_KEY"] == "s3cret-value"
    assert "TF_CLI_CONFIG" not in env  # other *_FILE variables are plain paths
    explicit = {"SERVING_API_KEY": "given", "SERVING_API_KEY_FILE": "/absent"}
    assert entrypoint.load_secret_files(explicit) == []
    assert explicit["SERVING_API_KEY"] == "given"
    with pytest.raises(ValueError, match=r"^SERVING_API_KEY_FILE: expected a readable"):
        entrypoint.load_secret_files({"SERVING_API_KEY_FILE": str(tmp_path / "no")})
    dirs = {v: str(tmp_path / "state" / v.lower()) for v in entrypoint.WRITABLE}
    entrypoint.make_writable_dirs(dirs)
    assert all(Path(p).is_dir() for p in dirs.values())


# ---------------------------------------------------------------- certificates
def test_certificates_chain_to_the_ca_for_every_name(tmp_path: Path) -> None:
    names = make_certs.Names(("superlink", "localhost"), ("127.0.0.1",))
    written = make_certs.make_all(tmp_path, names, ["us-east"], api_key=True, days=2)
    assert set(written) == {"public/ca.pem", "superlink/superlink.pem",
                            "superlink/superlink.key", "api/serving-api-key",
                            "nodes/us-east/node.key", "public/nodes/us-east.pub"}  # fmt: skip
    ca = x509.load_pem_x509_certificate((tmp_path / "public/ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "superlink/superlink.pem").read_bytes()
    )
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["superlink", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    key = serialization.load_pem_private_key(
        (tmp_path / "superlink/superlink.key").read_bytes(), None
    )
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    node = serialization.load_ssh_private_key(
        (tmp_path / "nodes/us-east/node.key").read_bytes(), None
    )
    assert isinstance(node, ec.EllipticCurvePrivateKey)
    public = serialization.load_ssh_public_key(
        (tmp_path / "public/nodes/us-east.pub").read_bytes()
    )
    assert public.public_numbers() == node.public_key().public_numbers()  # type: ignore[union-attr]
    for private in ("superlink/superlink.key", "api/serving-api-key",
                    "nodes/us-east/node.key"):  # fmt: skip
        assert stat.S_IMODE((tmp_path / private).stat().st_mode) == 0o600, private
    assert len((tmp_path / "api/serving-api-key").read_text()) == 64
    # each recipient's folder holds nothing another one must not see
    assert sorted(p.name for p in (tmp_path / "public").rglob("*") if p.is_file()) == [
        "ca.pem", "us-east.pub"]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "nodes/us-east").iterdir()) == [
        "node.key"]  # fmt: skip
    assert (tmp_path / ".gitignore").read_text() == "*\n"


def test_a_second_run_keeps_what_exists_and_adds_what_is_missing(
    tmp_path: Path,
) -> None:
    names = make_certs.Names(("superlink",), ())
    make_certs.make_all(tmp_path, names, ["a"], api_key=True)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    written = make_certs.make_all(tmp_path, names, ["a", "b"], api_key=True)
    assert written == ["nodes/b/node.key", "public/nodes/b.pub"]
    assert all(p.read_bytes() == data for p, data in before.items())
    forced = make_certs.make_all(tmp_path, names, ["a"], api_key=False, force=True)
    assert "public/ca.pem" in forced
    assert (tmp_path / "public/ca.pem").read_bytes() != before[
        tmp_path / "public/ca.pem"]  # fmt: skip


def test_a_certificate_without_a_new_name_is_made_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_certs.Names(("superlink",), ("127.0.0.1",))
    make_certs.make_all(tmp_path, first, [], api_key=False)
    old_ca = (tmp_path / "public/ca.pem").read_bytes()
    # the same names (in another order and case) or fewer: kept
    same = make_certs.Names(("SUPERLINK",), ("127.0.0.1",))
    assert make_certs.make_all(tmp_path, same, [], api_key=False) == []
    assert make_certs.make_all(tmp_path, make_certs.Names(("superlink",), ()), [],
                               api_key=False) == []  # fmt: skip
    # a name the certificate lacks: a new CA and certificate, said loudly
    more = make_certs.Names(("superlink", "superlink.example.org"), ("10.0.0.5",))
    written = make_certs.make_all(tmp_path, more, [], api_key=False)
    assert set(written) == {"public/ca.pem", "superlink/superlink.pem",
                            "superlink/superlink.key"}  # fmt: skip
    err = capsys.readouterr().err
    assert "it lacks superlink.example.org, 10.0.0.5" in err
    assert "hand" in err and "public/ca.pem to every host again" in err
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "superlink/superlink.pem").read_bytes()
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "superlink", "superlink.example.org"]  # fmt: skip
    new_ca = (tmp_path / "public/ca.pem").read_bytes()
    assert new_ca != old_ca
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new_ca))
    # the CLI reports it too, and is quiet once everything is there
    assert make_certs.main(["--out", str(tmp_path), "--dns", "superlink",
                            "--dns", "superlink.example.org", "--ip", "10.0.0.5"]) == 0  # fmt: skip
    assert "nothing missing" in capsys.readouterr().out


def test_bad_names_are_refused_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^--dns/--ip: expected at least one name"):
        make_certs.Names((), ())
    with pytest.raises(ValueError, match=r"^--ip: expected an IP address"):
        make_certs.Names((), ("superlink",))
    with pytest.raises(ValueError, match=r"^--node: expected a plain name"):
        make_certs.make_all(tmp_path, make_certs.Names(("a",), ()), ["../x"], False)
    assert make_certs.main(["--out", str(tmp_path / "o"), "--days", "0",
                            "--dns", "a"]) == 2  # fmt: skip


# ---------------------------------------------------------------- health check
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def server(context: ssl.SSLContext | None = None) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_healthcheck_verdicts_over_http_and_verified_https(tmp_path: Path) -> None:
    with server() as port:
        assert healthcheck.main([f"http://127.0.0.1:{port}/ok"]) == 0
        assert healthcheck.main([f"http://127.0.0.1:{port}/bad"]) == 1
    assert healthcheck.main(["http://127.0.0.1:1/ok", "--timeout", "1"]) == 1
    make_certs.make_all(tmp_path / "a", make_certs.Names(("localhost",), ()), [], False)
    make_certs.make_all(tmp_path / "b", make_certs.Names(("localhost",), ()), [], False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "a/superlink/superlink.pem",
                            tmp_path / "a/superlink/superlink.key")  # fmt: skip
    with server(context) as port:
        url = f"https://localhost:{port}/ok"
        assert (
            healthcheck.main([url, "--cafile", str(tmp_path / "a/public/ca.pem")]) == 0
        )
        assert (
            healthcheck.main([url, "--cafile", str(tmp_path / "b/public/ca.pem")]) == 1
        )


# ---------------------------------------------------------------- submit
def test_connection_file_is_flowers_toml(tmp_path: Path) -> None:
    tls = tomllib.loads(submit.connection_toml("superlink:9093", tmp_path / "ca.pem"))
    assert tls["superlink"]["default"] == submit.CONNECTION
    assert tls["superlink"][submit.CONNECTION] == {
        "address": "superlink:9093", "root-certificates": str(tmp_path / "ca.pem")}  # fmt: skip
    plain = tomllib.loads(submit.connection_toml("127.0.0.1:9093", None))
    assert plain["superlink"][submit.CONNECTION]["insecure"] is True


def test_submit_takes_hydra_overrides_and_refuses_unknown_options() -> None:
    args = submit.parse_args(["--superlink", "h:1", "--insecure", "--out", "/o",
                              "env=reschedule", "federation.rounds=1"])  # fmt: skip
    assert args.overrides == ["env=reschedule", "federation.rounds=1"]
    with pytest.raises(SystemExit):
        submit.parse_args(["--superlink", "h:1", "--insecure", "--out", "/o", "--x"])
