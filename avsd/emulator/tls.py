"""Self-signed TLS for the emulator: one certificate that is also its own CA, and an ALPN ``h2`` + ``http/1.1`` context.

The certificate has ``CA:true`` so a client can pass the certificate file itself as its CA bundle
(``httpx.AsyncClient(verify=ssl.create_default_context(cafile=cert))``, ``curl --cacert cert``).

``cryptography`` is imported only to make a certificate (or to read one made without a sidecar): it costs a process
8.5 MiB of RSS, and the offline assistant runs this server inside the always-on daemon. A sidecar
``emulator-cert.json`` (the hosts, the expiry, and the certificate file's SHA-256) says whether the pair on disk can
be reused.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

_log = logging.getLogger(__name__)

CERT_NAME = "emulator-cert.pem"
KEY_NAME = "emulator-key.pem"
SIDECAR_NAME = "emulator-cert.json"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _san_entry(host: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_self_signed(
    cert_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, valid_days: int = 825
) -> tuple[Path, Path]:
    """Write ``emulator-cert.pem`` and ``emulator-key.pem`` (0600) into ``cert_dir``; return (cert, key).

    An existing pair is reused when it is still valid for at least a day and covers ``hosts``.
    """
    if not 1 <= valid_days <= 3650:
        raise ValueError("valid_days must be within 1..3650")
    cert_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    if _reusable(cert_path, key_path, hosts):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    # A unique subject per certificate: OpenSSL looks trust anchors up by subject, so two emulators with the
    # same subject name could not both be trusted by one client.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"avsd emulator {secrets.token_hex(4)}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-date a little so a client whose clock is slightly behind still accepts it.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName([_san_entry(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_sidecar(cert_path, [str(v) for v in hosts], cert.not_valid_after_utc)
    _log.info("wrote self-signed emulator certificate %s for %s", cert_path, ", ".join(hosts))
    return cert_path, key_path


def _reusable(cert_path: Path, key_path: Path, hosts: Sequence[str]) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    found = _read_sidecar(cert_path) or _read_certificate(cert_path)
    if found is None:
        return False
    covered, not_after = found
    wanted = {_normal_host(h) for h in hosts}
    remaining = not_after - datetime.datetime.now(datetime.UTC)
    return wanted <= covered and remaining > datetime.timedelta(days=1)


def _normal_host(host: str) -> str:
    return str(ipaddress.ip_address(host)) if _is_ip(host) else host


def _sidecar_path(cert_path: Path) -> Path:
    return cert_path.with_name(SIDECAR_NAME)


def _write_sidecar(cert_path: Path, hosts: Sequence[str], not_after: datetime.datetime) -> None:
    record = {"sha256": hashlib.sha256(cert_path.read_bytes()).hexdigest(), "hosts": sorted(map(_normal_host, hosts)),
              "not_after": not_after.isoformat()}
    _sidecar_path(cert_path).write_text(json.dumps(record) + "\n")


def _read_sidecar(cert_path: Path) -> tuple[set[str], datetime.datetime] | None:
    """(hosts, expiry) from the sidecar, if it describes this very certificate file."""
    try:
        record = json.loads(_sidecar_path(cert_path).read_text())
        if record["sha256"] != hashlib.sha256(cert_path.read_bytes()).hexdigest():
            return None
        not_after = datetime.datetime.fromisoformat(record["not_after"])
        return (set(record["hosts"]), not_after) if not_after.tzinfo is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_certificate(cert_path: Path) -> tuple[set[str], datetime.datetime] | None:
    """(hosts, expiry) parsed from the certificate itself (one made before sidecars); writes the sidecar."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    covered = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    covered |= set(san.get_values_for_type(x509.DNSName))
    try:
        _write_sidecar(cert_path, sorted(covered), cert.not_valid_after_utc)
    except OSError as exc:  # a read-only certificate directory: parse again next time
        _log.debug("no certificate sidecar written: %s", exc)
    return covered, cert.not_valid_after_utc


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS >= 1.2 server context offering ALPN ``h2`` and ``http/1.1`` (preferring h2).

    A client that picks ``http/1.1`` (or offers no ALPN) is served the plain routes (LWA, media) over HTTP/1.1,
    as Amazon's LWA and CDN hosts are; AVS routes then answer 505 (see plain.py and http1.py).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting only the emulator certificate, offering ALPN ``h2`` (for tests and tools)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["h2"])
    return ctx
