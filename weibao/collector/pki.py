"""A small private CA for one site: the collector's server certificate and one client certificate per agent.

For sites without a PKI of their own (``weibao tls init``): EC P-256 keys, a CA valid ten years, leaf
certificates ``days`` long (825 by default) with the names they serve: the collector's DNS names and
IP addresses as subjectAltName; an agent's name as common name and DNS name (what the collector's
mutual TLS checks against the token). Keys are written 0600, never overwritten.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common: str, site: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(site: str, *, days: int = CA_DAYS, now: datetime | None = None) -> Issued:
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"weibao CA {site}", site)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca: Issued, common: str, *, dns: Sequence[str] = (), ips: Sequence[str] = (), server: bool,
          days: int = LEAF_DAYS, now: datetime | None = None) -> Issued:
    """A leaf certificate signed by ``ca``: for a server (``server``) or a client, with these names."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    site = ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(common, str(site))).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                              critical=False))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write(issued: Issued, cert_path: Path, key_path: Path) -> None:
    """The certificate (0644) and its key (0600); an existing file is never overwritten (FileExistsError)."""
    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: not overwritten")
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))


def load(cert_path: Path, key_path: Path) -> Issued:
    """A CA written by ``write`` (ValueError when it is not one)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError(f"{key_path} is not the key of {cert_path}")
    return Issued(cert, key)
