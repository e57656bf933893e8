"""How a client reaches the collector: never a bearer token in clear across the network, TLS verified.

    check_collector_url(url, allow_insecure_http)   ConfigError for a URL the token must not travel to
    is_loopback(host)                               127.0.0.0/8, ::1 or ``localhost``
    client_tls(ca_file, cert_file, key_file)        the verifying SSLContext of an https:// client

The agent and ``weibao tickets`` send a token with every request: over ``http://`` it crosses the
client's network readable by anyone on the way, so plain HTTP is refused for any host but this machine
unless the operator says ``--allow-insecure-http``. Over ``https://`` the collector's certificate is
verified against a CA file or, without one, the system's trust store; a client certificate and key
(mutual TLS) are optional.
"""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

from weibao.core.errors import ConfigError, Problem

URL_KEY = "--collector"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine by its literal form (no name is resolved: DNS could lie)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_collector_url(url: str, *, allow_insecure_http: bool = False, key: str = URL_KEY) -> str:
    """``url`` when a token may be sent to it: https://, or http:// to a loopback address, or http://
    anywhere when ``allow_insecure_http``. ConfigError naming ``key`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([Problem("<command line>", None, key, f"{url!r} is not an http:// or https:// URL")])
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ConfigError([Problem("<command line>", None, key,
                                   f"refusing to send the token in clear to {parts.hostname} over http://: use "
                                   "https:// (the collector's tls settings) or, on a network you trust, "
                                   "--allow-insecure-http")])
    return url


def _problem(path: Path | None, key: str, message: str) -> ConfigError:
    return ConfigError([Problem(str(path) if path is not None else "<command line>", None, key, message)])


def client_tls(*, ca_file: Path | None = None, cert_file: Path | None = None,
               key_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the server (against ``ca_file``, else the system's trust store, with
    the host name checked) and presents ``cert_file``/``key_file`` when given (mutual TLS)."""
    if (cert_file is None) != (key_file is None):
        raise _problem(cert_file or key_file, "--client-cert", "a client certificate needs its key, and a key "
                       "its certificate (--client-cert and --client-key)")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise _problem(ca_file, "--ca-file", f"cannot load the CA file: {getattr(exc, 'strerror', None) or exc}") \
            from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        try:
            mode = stat.S_IMODE(key_file.stat().st_mode)
        except OSError as exc:
            raise _problem(key_file, "--client-key", f"cannot read the key: {exc.strerror}") from exc
        if mode & 0o077:
            raise _problem(key_file, "--client-key", f"the private key is accessible to others (mode {mode:04o}); "
                           f"run chmod 600 {key_file}")
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file))
        except (OSError, ssl.SSLError) as exc:
            raise _problem(cert_file, "--client-cert", "cannot load the client certificate and key (missing, "
                           f"not PEM, or the key does not match): {getattr(exc, 'strerror', None) or exc}") from exc
    return ctx
