"""``weibao user add|passwd|disable|enable|list``: console accounts, on the collector's state store.

    weibao user add NAME --role admin|engineer|client [--password-stdin]
    weibao user passwd NAME [--password-stdin]
    weibao user disable NAME | enable NAME
    weibao user list

Without ``--password-stdin`` a one-time password is generated and printed once; it must be changed at the
first login. Every change is written to the audit log (via ``cli``, actor: the operating-system user).
Disabling a user or setting a password ends that user's console sessions at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from weibao.collector.commands.collector import common_options, fail, state_engine
from weibao.core.errors import ConfigError

ROLES = ("admin", "engineer", "client")


def register(sub: Any) -> None:
    u = sub.add_parser("user", help="console accounts: add, set a password, disable, list")
    usub = u.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    p = usub.add_parser("add", help="add a user (a one-time password is printed unless --password-stdin)")
    common_options(p)
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(handler=user_add)
    p = usub.add_parser("passwd", help="set a user's password (a one-time password unless --password-stdin)")
    common_options(p)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(handler=user_passwd)
    for action, text in (("disable", "disable a user and end their sessions"), ("enable", "enable a user again")):
        p = usub.add_parser(action, help=text)
        common_options(p)
        p.add_argument("name")
        p.set_defaults(handler=user_toggle, disable=action == "disable")
    p = usub.add_parser("list", help="users, roles and states (never a password)")
    common_options(p)
    p.set_defaults(handler=user_list)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    from weibao.collector.access.accounts import generate_password

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return generate_password(), True


def _audit(engine: Any, action: str, name: str, detail: str = "") -> None:
    from weibao.collector.access.audit import Via, record

    record(engine, actor=getpass.getuser(), role="operator", address="local", via=Via.CLI, action=action,
           target=name, detail=detail)


def _shown(name: str, password: str) -> None:
    print(f"one-time password for {name} (shown once; to be changed at the first login):", file=sys.stderr)
    print(password)


def user_add(args: argparse.Namespace) -> int:
    from weibao.collector.access.accounts import UserRole, add
    from weibao.collector.access.errors import AccessError

    try:
        engine = state_engine(args)
        password, generated = _password(args)
        add(engine, args.name, UserRole(args.role), password, must_change=generated)
    except (ConfigError, AccessError) as exc:
        return fail(exc)
    _audit(engine, "user.add", args.name, f"role {args.role}")
    if generated:
        _shown(args.name, password)
    else:
        print(f"user {args.name} ({args.role}) added", file=sys.stderr)
    return 0


def user_passwd(args: argparse.Namespace) -> int:
    from weibao.collector.access.accounts import set_password
    from weibao.collector.access.errors import AccessError
    from weibao.collector.access.sessions import end_all

    try:
        engine = state_engine(args)
        password, generated = _password(args)
        account = set_password(engine, args.name, password, must_change=generated)
    except (ConfigError, AccessError) as exc:
        return fail(exc)
    ended = end_all(engine, account.id)
    _audit(engine, "user.passwd", args.name, f"{ended} session(s) ended")
    if generated:
        _shown(args.name, password)
    else:
        print(f"password of {args.name} set; {ended} session(s) ended", file=sys.stderr)
    return 0


def user_toggle(args: argparse.Namespace) -> int:
    from weibao.collector.access.accounts import set_disabled
    from weibao.collector.access.errors import AccessError
    from weibao.collector.access.sessions import end_all

    try:
        engine = state_engine(args)
        account = set_disabled(engine, args.name, args.disable)
    except (ConfigError, AccessError) as exc:
        return fail(exc)
    ended = end_all(engine, account.id) if args.disable else 0
    _audit(engine, "user.disable" if args.disable else "user.enable", args.name)
    print(f"{args.name} {'disabled' if args.disable else 'enabled'}"
          + (f"; {ended} session(s) ended" if args.disable else ""), file=sys.stderr)
    return 0


def user_list(args: argparse.Namespace) -> int:
    from weibao.collector.access.accounts import listing

    try:
        rows = listing(state_engine(args))
    except ConfigError as exc:
        return fail(exc)
    for a in rows:
        changed = datetime.fromtimestamp(a.updated_ms / 1000, UTC).isoformat(timespec="seconds")
        state = "disabled" if a.disabled else ("password change due" if a.must_change else "active")
        print(f"{a.name}\t{a.role.value}\t{state}\t{changed}")
    return 0
