"""``weibao collector`` and ``weibao token ...``: argparse subcommands the main CLI registers."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weibao.core.cli import DEFAULT_DATA
from weibao.core.errors import ConfigError
from weibao.core.files import private_dir, private_umask
from weibao.core.text import printable

log = logging.getLogger(__name__)


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help=f"data directory (default: the config's data_dir, else {DEFAULT_DATA} or $WEIBAO_DATA)")
    p.add_argument("--config", type=Path, default=None, help="collector configuration YAML")


def register(sub: Any) -> None:
    """Add ``collector`` and ``token`` to the main parser's subcommands (``handler`` returns an exit code)."""
    p = sub.add_parser("collector", help="run the collector (ingest API, storage, rollups)")
    common_options(p)
    p.add_argument("--listen", default=None, metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8470)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the config's, else 1)")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration and every file it names, then exit (0: valid, 2: problems)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                   help="serve HTTPS with this certificate (chain, PEM); the config's tls.cert_file")
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key (tls.key_file)")
    p.add_argument("--tls-client-ca", type=Path, default=None, metavar="FILE",
                   help="mutual TLS: clients present certificates from this CA, an agent's naming the agent "
                        "(tls.client_ca_file)")
    p.set_defaults(handler=run_collector, log_level=logging.INFO)

    t = sub.add_parser("token", help="issue, revoke and list API tokens")
    tsub = t.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = tsub.add_parser("issue", help="issue a token for NAME and print it (the only time it is shown)")
    common_options(p)
    p.add_argument("name")
    p.add_argument("--role", choices=["agent", "engineer", "client"], default="agent",
                   help="agent: ships data; engineer: works tickets; client: reads tickets, opens requests")
    p.set_defaults(handler=token_issue)
    p = tsub.add_parser("revoke", help="revoke the tokens of NAME")
    common_options(p)
    p.add_argument("name")
    p.set_defaults(handler=token_revoke)
    p = tsub.add_parser("list", help="list token holders (never the tokens)")
    common_options(p)
    p.set_defaults(handler=token_list)


def tls_flags(args: argparse.Namespace) -> dict[str, Path]:
    """The ``tls`` keys given on the command line."""
    flags = {"cert_file": getattr(args, "tls_cert", None), "key_file": getattr(args, "tls_key", None),
             "client_ca_file": getattr(args, "tls_client_ca", None)}
    return {k: v for k, v in flags.items() if v is not None}


def config_from_args(args: argparse.Namespace, *, listen: str | None = None) -> Any:
    """The collector configuration of ``--config`` and ``--data`` (the command line wins); ConfigError."""
    from weibao.collector.config import load_config

    data = args.data
    if data is None and args.config is None:
        data = DEFAULT_DATA
    return load_config(args.config, data_dir=data, listen=listen, tls=tls_flags(args))


def state_engine(args: argparse.Namespace) -> Any:
    """The migrated state store of the configuration ``args`` names (``--config``, ``--data``), for the admin
    commands; the data directory is its owner's alone, whatever the umask."""
    from weibao.collector.config import DATA_FILES
    from weibao.collector.state.db import create_state_engine, migrate

    private_umask()
    cfg = config_from_args(args)
    private_dir(cfg.data_dir, owned=DATA_FILES)
    engine = create_state_engine(cfg.resolved_state_url())
    migrate(engine)
    return engine


def fail(exc: Exception) -> int:
    print(f"weibao: {exc}", file=sys.stderr)
    return 2


def check_collector(args: argparse.Namespace) -> int:
    """``weibao collector --check``: one ``file:line: key: message`` line per problem; starts nothing."""
    from weibao.collector.check import check_collector as check

    data = args.data
    if data is None and args.config is None:
        data = DEFAULT_DATA
    report = check(args.config, data_dir=data, listen=args.listen, workers=args.workers, tls=tls_flags(args))
    for line in report.warning_lines():
        print(f"warning: {line}", file=sys.stderr)
    for line in report.lines():
        print(line)
    if report.problems:
        print(f"{len(report.problems)} problem(s)", file=sys.stderr)
        return 1  # as weibao check
    print("collector config ok: " + ", ".join(report.checked))
    return 0


def run_collector(args: argparse.Namespace) -> int:
    if getattr(args, "check", False):
        return check_collector(args)
    from weibao.collector.http.server import serve

    private_umask()  # state.db, its journal and lock files: the owner's alone, whatever umask we came with
    try:
        cfg = config_from_args(args, listen=args.listen)
        if args.workers is not None:
            cfg = cfg.model_copy(update={"workers": max(1, args.workers)})
        serve(cfg)
    except ConfigError as exc:
        return fail(exc)
    return 0


def token_issue(args: argparse.Namespace) -> int:
    from weibao.collector.auth import Role, issue
    from weibao.collector.errors import TokenError

    try:
        token = issue(state_engine(args), args.name, Role(args.role))
    except (ConfigError, TokenError) as exc:
        return fail(exc)
    print(f"token for {args.name} ({args.role}); store it now, it is not shown again:", file=sys.stderr)
    print(token)
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from weibao.collector.auth import revoke
    from weibao.collector.errors import TokenError

    try:
        n = revoke(state_engine(args), args.name)
    except (ConfigError, TokenError) as exc:
        return fail(exc)
    print(f"revoked {n} token(s) of {args.name}", file=sys.stderr)
    return 0


def token_list(args: argparse.Namespace) -> int:
    from weibao.collector.auth import listing

    try:
        rows = listing(state_engine(args))
    except ConfigError as exc:
        return fail(exc)
    for r in rows:
        created = datetime.fromtimestamp(r.created_ms / 1000, UTC).isoformat(timespec="seconds")
        state = "active" if r.revoked_ms is None else "revoked " + datetime.fromtimestamp(
            r.revoked_ms / 1000, UTC).isoformat(timespec="seconds")
        print(f"{printable(r.name)}\t{r.role}\t{created}\t{state}")
    return 0
