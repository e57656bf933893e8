"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives.

``SmtpPeer(tls_dir=..., auth={"user": "pass"})`` adds STARTTLS (required) with a self-signed certificate for
127.0.0.1 made here with ``cryptography`` (its CA file is ``peer.ca_file``), and AUTH (required).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh key and self-signed certificate valid for ``host`` (IP SAN) and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weibao test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                         x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        data = session.auth_data if session.authenticated else None
        login = data.decode() if isinstance(data, bytes) else None
        with self.peer.lock:
            self.peer.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                               msg, login))
        return "250 OK"


class SmtpPeer:
    def __init__(self, *, tls_dir: Path | None = None, auth: dict[str, str] | None = None) -> None:
        self.port = spare_port()
        self.received: list[Received] = []
        self.auth_attempts: list[tuple[str, bool]] = []
        self.lock = threading.Lock()
        self.ca_file: Path | None = None
        kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            cert, key = self_signed(tls_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            kwargs.update(tls_context=ctx, require_starttls=True)
            self.ca_file = cert
        if auth is not None:
            users = dict(auth)

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                              data: Any) -> AuthResult:
                ok = (isinstance(data, LoginPassword)
                      and users.get(data.login.decode()) == data.password.decode())
                with self.lock:
                    self.auth_attempts.append((data.login.decode() if isinstance(data, LoginPassword)
                                               else "?", ok))
                return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=tls_dir is not None)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)
