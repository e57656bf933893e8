"""What the commands that work through the collector's API share: options, the token, HTTP calls, exit codes.

Exit status: 0 done, 1 the collector refused (its reason is printed), 2 a usage or connection problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

DEFAULT_COLLECTOR = "http://127.0.0.1:8470"


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collector", default=os.environ.get("WEIBAO_COLLECTOR", DEFAULT_COLLECTOR),
                   help="the collector's base URL (default: $WEIBAO_COLLECTOR or %(default)s)")
    p.add_argument("--token-file", type=Path, default=os.environ.get("WEIBAO_TOKEN_FILE"),
                   help="file holding an engineer's token (default: $WEIBAO_TOKEN_FILE)")
    p.add_argument("--json", action="store_true", help="print the collector's JSON answer")
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def token(args: argparse.Namespace) -> str:
    if args.token_file is None:
        raise CliError("--token-file (or $WEIBAO_TOKEN_FILE) is required", 2)
    try:
        token = Path(args.token_file).read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read the token file {args.token_file}: {exc.strerror}", 2) from exc
    if not token:
        raise CliError(f"the token file {args.token_file} is empty", 2)
    return token


def request(args: argparse.Namespace, method: str, path: str, *, params: dict[str, Any] | None = None,
            body: dict[str, Any] | None = None) -> httpx.Response:
    """The collector's answer; CliError (exit 1) for a 4xx/5xx with the collector's reason."""
    headers = {"Authorization": f"Bearer {token(args)}"}
    try:
        with httpx.Client(base_url=args.collector, timeout=args.timeout, headers=headers) as client:
            r = client.request(method, path, params=params, json=body)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the collector at {args.collector}: {type(exc).__name__}", 2) from exc
    if r.status_code >= 400:
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200]}
        raise CliError(f"collector answered {r.status_code}: {data.get('error', data)}", 1)
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


