"""What the commands that work through the collector's API share: options, the token, HTTP calls, exit codes.

The token is read from a file only its owner can read (as the agent's). It goes over ``https://``
(``--ca-file``, else the system's trust store; ``--client-cert``/``--client-key`` when the collector asks
for one), or ``http://`` to this machine only unless ``--allow-insecure-http``. Exit status: 0 done, 1 the
collector refused (its reason is printed), 2 a usage or connection problem.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from weibao.core.errors import ConfigError
from weibao.core.files import read_token_file
from weibao.core.text import printable
from weibao.core.transport import check_collector_url, client_tls

DEFAULT_COLLECTOR = "http://127.0.0.1:8470"


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collector", default=os.environ.get("WEIBAO_COLLECTOR", DEFAULT_COLLECTOR),
                   help="the collector's base URL (default: $WEIBAO_COLLECTOR or %(default)s)")
    p.add_argument("--token-file", type=Path, default=os.environ.get("WEIBAO_TOKEN_FILE"),
                   help="file holding an engineer's (or the client's) token (default: $WEIBAO_TOKEN_FILE)")
    p.add_argument("--ca-file", type=Path, default=os.environ.get("WEIBAO_CA_FILE"),
                   help="CA that signed an https:// collector's certificate (default: $WEIBAO_CA_FILE, else the "
                        "system's trust store)")
    p.add_argument("--client-cert", type=Path, default=os.environ.get("WEIBAO_CLIENT_CERT"),
                   help="client certificate when the collector requires mutual TLS ($WEIBAO_CLIENT_CERT)")
    p.add_argument("--client-key", type=Path, default=os.environ.get("WEIBAO_CLIENT_KEY"),
                   help="its key ($WEIBAO_CLIENT_KEY)")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="send the token over plain http:// to a collector that is not on this machine")
    p.add_argument("--json", action="store_true", help="print the collector's JSON answer")
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def token(args: argparse.Namespace) -> str:
    if args.token_file is None:
        raise CliError("--token-file (or $WEIBAO_TOKEN_FILE) is required", 2)
    try:
        return read_token_file(Path(args.token_file))
    except ConfigError as exc:
        raise CliError(str(exc), 2) from exc


def _verify(args: argparse.Namespace) -> ssl.SSLContext | bool:
    """How the collector is reached: refused (2) over http:// beyond this machine, else verified TLS."""
    try:
        check_collector_url(args.collector, allow_insecure_http=args.allow_insecure_http)
        if not args.collector.lower().startswith("https://"):
            return True
        return client_tls(ca_file=args.ca_file, cert_file=args.client_cert, key_file=args.client_key)
    except ConfigError as exc:
        raise CliError(str(exc), 2) from exc


def request(args: argparse.Namespace, method: str, path: str, *, params: dict[str, Any] | None = None,
            body: dict[str, Any] | None = None) -> httpx.Response:
    """The collector's answer; CliError (exit 1) for a 4xx/5xx with the collector's reason."""
    verify = _verify(args)
    headers = {"Authorization": f"Bearer {token(args)}"}
    try:
        with httpx.Client(base_url=args.collector, timeout=args.timeout, headers=headers, verify=verify) as client:
            r = client.request(method, path, params=params, json=body)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CliError(f"cannot reach the collector at {printable(args.collector)}: {type(exc).__name__}: "
                       f"{printable(exc)}", 2) from exc
    if r.status_code >= 400:
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200]}
        reason = data.get("error", data) if isinstance(data, dict) else data
        raise CliError(f"collector answered {r.status_code}: {printable(reason)}", 1)
    return r


def call(args: argparse.Namespace, method: str, path: str, *, params: dict[str, Any] | None = None,
         body: dict[str, Any] | None = None) -> Any:
    """The collector's JSON answer."""
    return request(args, method, path, params=params, body=body).json()


def run(work: Callable[[], None]) -> int:
    """Run a command's work; a CliError is printed and becomes the exit status."""
    try:
        work()
    except CliError as exc:
        print(f"weibao: {exc}", file=sys.stderr)
        return exc.code
    return 0
