"""The collector's TLS: its server context, the checks of its certificate files, and who a client certificate names.

    server_context(tls)       the SSLContext the API is served with (TLS 1.2+, client CA when mutual TLS)
    check_tls_files(tls, now) problems (refusals) and warnings about the files, as ``weibao collector --check``
                              and the start of the collector report them
    client_names(der)         the names a client certificate stands for: its common name and DNS names

An agent's client certificate must name the agent (its common name, or one of its subjectAltName DNS
names, equal to the agent's name): ``weibao tls agent NAME`` makes such certificates.
"""

from __future__ import annotations

import contextlib
import ssl
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from weibao.collector.config import TlsConfig

EXPIRY_WARNING = timedelta(days=30)


@dataclass
class TlsCheck:
    """What ``check_tls_files`` found: ``problems`` stop the collector, ``warnings`` do not."""

    problems: list[tuple[str, str]] = field(default_factory=list)  # (config key, message)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The server context for ``tls``; ssl.SSLError / OSError when a file cannot be used."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.client_ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_names(der: bytes | None) -> tuple[str, ...]:
    """The common name and the DNS names of a (verified) client certificate, in DER."""
    if not der:
        return ()
    cert = x509.load_der_x509_certificate(der)
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    with contextlib.suppress(x509.ExtensionNotFound):  # a certificate without subjectAltName: its CN alone
        names += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    return tuple(dict.fromkeys(names))


def _read(path: Path, key: str, out: TlsCheck) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        out.problems.append((key, f"cannot read {path}: {exc.strerror}"))
        return None


def _validity(cert: x509.Certificate, what: str, key: str, now: datetime, out: TlsCheck) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        out.problems.append((key, f"{what} is not valid before {start.isoformat()}"))
    elif now >= end:
        out.problems.append((key, f"{what} expired on {end.isoformat()}"))
    elif end - now <= EXPIRY_WARNING:
        out.warnings.append((key, f"{what} expires on {end.isoformat()}, in {(end - now).days} days: renew it"))


def check_tls_files(tls: TlsConfig, now: datetime | None = None) -> TlsCheck:
    """Every problem with the files of ``tls``: readable, PEM, the key matches the certificate, the key not
    readable by others, in their validity period (a warning when a certificate expires within 30 days)."""
    now = now or datetime.now(UTC)
    out = TlsCheck()
    cert_pem = _read(tls.cert_file, "tls.cert_file", out)
    key_pem = _read(tls.key_file, "tls.key_file", out)
    cert: x509.Certificate | None = None
    if cert_pem is not None:
        try:
            chain = x509.load_pem_x509_certificates(cert_pem)
            cert = chain[0]
        except ValueError:
            out.problems.append(("tls.cert_file", f"{tls.cert_file} holds no PEM certificate"))
        else:
            for i, c in enumerate(chain):
                _validity(c, "the certificate" if i == 0 else f"chain certificate {i}", "tls.cert_file", now, out)
    if key_pem is not None:
        mode = stat.S_IMODE(tls.key_file.stat().st_mode)
        if mode & 0o007:
            out.problems.append(("tls.key_file", f"{tls.key_file} is readable by anyone (mode {mode:04o}); run "
                                                 f"chmod 600 {tls.key_file}"))
        elif mode & 0o070:
            out.warnings.append(("tls.key_file", f"{tls.key_file} is readable by its group (mode {mode:04o})"))
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            hint = "encrypted keys are not supported" if isinstance(exc, TypeError) else "not a PEM private key"
            out.problems.append(("tls.key_file", f"{tls.key_file}: {hint}"))
        else:
            if cert is not None and key.public_key() != cert.public_key():
                out.problems.append(("tls.key_file", f"{tls.key_file} is not the key of the certificate in "
                                                     f"{tls.cert_file}"))
    if tls.client_ca_file is not None:
        ca_pem = _read(tls.client_ca_file, "tls.client_ca_file", out)
        if ca_pem is not None:
            try:
                for c in x509.load_pem_x509_certificates(ca_pem):
                    _validity(c, f"CA {c.subject.rfc4514_string()}", "tls.client_ca_file", now, out)
            except ValueError:
                out.problems.append(("tls.client_ca_file", f"{tls.client_ca_file} holds no PEM certificate"))
    if not out.problems:
        try:  # what the server will do with them, in the end
            server_context(tls)
        except (ssl.SSLError, OSError) as exc:
            out.problems.append(("tls", f"the TLS files cannot be used together: {exc}"))
    return out
