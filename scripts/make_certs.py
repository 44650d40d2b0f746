"""TLS and authentication material of a deployment, made with ``cryptography``.

``python -m scripts.make_certs --dns superlink --ip 10.0.0.5 --node us-east`` writes
into ``--out`` (default ``certs``, which ``.gitignore`` and ``.dockerignore`` keep out
of commits and images), one folder per recipient, so each host or container is
given exactly its own folder:

* ``public/ca.pem``: a private CA (EC P-256); SuperNodes and ``flwr`` verify the
  SuperLink with it (``--root-certificates``). Its key is not kept: nothing else is
  signed. ``public/nodes/<name>.pub``: the SuperNodes' public keys (what ``flwr
  supernode register`` sends). Public: every host may have this folder.
* ``superlink/superlink.pem``, ``superlink/superlink.key``: the SuperLink's
  certificate for every ``--dns``/``--ip`` name it is reached by
  (``--ssl-certfile``/``--ssl-keyfile``). The SuperLink host only.
* ``nodes/<name>/node.key``: one EC private key per ``--node``, OpenSSH format
  (``flower-supernode --auth-supernode-private-key``). That region's host only.
* ``api/serving-api-key``: a random key for the policy servers and their clients
  (``SERVING_API_KEY_FILE``, ``POLICY_API_KEY_FILE``).

A ``.gitignore`` of ``*`` in ``--out`` keeps git away from any output folder. Existing
files are kept (a second run adds what is missing: new nodes, the key), so the
command can run on every start; a certificate that lacks a requested ``--dns``/
``--ip`` name (or has expired) is made anew with a new CA, and the run says so;
``--force`` makes everything anew. Private files are ``0600``: run it as the user the
services run as (the compose file does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fl_server.launch.certificates import make_node_key

DEFAULT_OUT = Path("certs")
CA = "public/ca.pem"
CERT = "superlink/superlink.pem"
KEY = "superlink/superlink.key"
API_KEY = "api/serving-api-key"
NODES = "nodes"
PUBLIC_NODES = "public/nodes"
NODE_KEY = "node.key"
IGNORE_ALL = "*\n"
"""The output folder's own ``.gitignore``: nothing in it is ever committed."""
CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
"""A CA that signs certificates and nothing else."""


@dataclass(frozen=True)
class Names:
    """What the SuperLink's certificate must be valid for."""

    dns: tuple[str, ...]
    ips: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.dns and not self.ips:
            raise ValueError("--dns/--ip: expected at least one name for the SuperLink")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"--ip: expected an IP address, got {ip!r}") from None

    def general_names(self) -> list[x509.GeneralName]:
        """The subjectAltName entries."""
        out: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
        out += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips]
        return out

    def missing_from(self, cert: x509.Certificate) -> list[str]:
        """The requested names ``cert``'s subjectAltName does not cover."""
        try:
            san = cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            return [*self.dns, *self.ips]
        dns = {d.lower() for d in san.get_values_for_type(x509.DNSName)}
        ips = set(san.get_values_for_type(x509.IPAddress))
        return [d for d in self.dns if d.lower() not in dns] + [
            i for i in self.ips if ipaddress.ip_address(i) not in ips
        ]


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def make_tls(out: Path, names: Names, days: int) -> None:
    """A CA and the SuperLink's certificate signed by it."""
    now = dt.datetime.now(dt.UTC)
    valid = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=days))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("federated-rl-multicloud CA"))
        .issuer_name(_name("federated-rl-multicloud CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name((names.dns or names.ips)[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(names.general_names()), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(out / KEY, key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ), 0o600)  # fmt: skip
    _write(out / CERT, cert.public_bytes(pem), 0o644)
    _write(out / CA, ca.public_bytes(pem), 0o644)  # last: its presence means "done"


def stale_certificate(out: Path, names: Names) -> str | None:
    """Why the SuperLink certificate in ``out`` must be made anew (None: it is fine).

    Missing files, names it lacks, or an end of validity in the past.
    """
    if not (out / CA).exists() or not (out / CERT).exists() or not (out / KEY).exists():
        return "missing"
    cert = x509.load_pem_x509_certificate((out / CERT).read_bytes())
    missing = names.missing_from(cert)
    if missing:
        return f"it lacks {', '.join(missing)}"
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        return f"it expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def make_node(out: Path, node: str) -> list[str]:
    """``nodes/<node>/node.key`` (private) and ``public/nodes/<node>.pub``."""
    private, public = make_node_key(out / NODES / node, "node")
    key = private.with_name(NODE_KEY)
    os.replace(private, key)
    shared = out / PUBLIC_NODES / f"{node}.pub"
    shared.parent.mkdir(parents=True, exist_ok=True)
    os.replace(public, shared)
    return [str(key.relative_to(out)), str(shared.relative_to(out))]


def make_all(
    out: Path,
    names: Names,
    nodes: list[str],
    api_key: bool,
    days: int = 365,
    force: bool = False,
) -> list[str]:
    """Everything missing or stale (everything, with ``force``); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if not (out / ".gitignore").exists():
        _write(out / ".gitignore", IGNORE_ALL.encode(), 0o644)
    why = "forced" if force else stale_certificate(out, names)
    if why is not None:
        if why != "missing" and why != "forced":
            print(
                f"make_certs: {out / CERT}: {why}; making a new CA and certificate "
                f"(hand {out / CA} to every host again)",
                file=sys.stderr,
            )
        make_tls(out, names, days)
        written += [CA, CERT, KEY]
    for node in nodes:
        if "/" in node or node.startswith(".") or not node:
            raise ValueError(f"--node: expected a plain name, got {node!r}")
        if force or not (out / NODES / node / NODE_KEY).exists():
            written += make_node(out, node)
    if api_key and (force or not (out / API_KEY).exists()):
        _write(out / API_KEY, secrets.token_hex(32).encode(), 0o600)
        written.append(API_KEY)
    return written


def main(argv: list[str] | None = None) -> int:
    """Parse, make what is missing, list it."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.make_certs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT,
        help="output folder (default certs, ignored by git and docker builds)",
    )  # fmt: skip
    parser.add_argument("--dns", action="append", default=[], help="SuperLink name")
    parser.add_argument("--ip", action="append", default=[], help="SuperLink IP")
    parser.add_argument(
        "--node", action="append", default=[], help="SuperNode key pair to make"
    )
    parser.add_argument(
        "--api-key", action="store_true", help="also a policy-server API key"
    )
    parser.add_argument("--days", type=int, default=365, help="certificate validity")
    parser.add_argument("--force", action="store_true", help="make everything anew")
    args = parser.parse_args(argv)
    try:
        names = Names(tuple(args.dns), tuple(args.ip))
        if args.days < 1:
            raise ValueError(f"--days: expected at least 1, got {args.days}")
        written = make_all(
            args.out, names, args.node, args.api_key, args.days, args.force
        )
    except (ValueError, OSError) as err:
        print(f"make_certs: {err}", file=sys.stderr)
        return 2
    for name in written:
        print(f"wrote {args.out / name}")
    if not written:
        print(f"{args.out}: nothing missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
