"""``weibao tls init`` and ``weibao tls agent``: a site CA, the collector's certificate and agents' certificates.

    weibao tls init --dir DIR --name collector.example [--ip 10.0.0.5] [--agent site-a ...]
        DIR/ca.crt ca.key            the site CA (keep ca.key offline once the agents have certificates)
        DIR/collector.crt .key       tls.cert_file / tls.key_file of the collector
        DIR/agents/NAME.crt .key     --client-cert / --client-key of each agent (mutual TLS)
    weibao tls agent NAME --dir DIR  one more agent certificate from the CA in DIR

Agents verify the collector with ``--ca-file DIR/ca.crt``; the collector verifies agents with
``tls.client_ca_file: DIR/ca.crt``. Nothing existing is overwritten.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any

from weibao.core.inventory import DEVICE_NAME


def _agent_name(text: str) -> str:
    if not DEVICE_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an agent name (letters, digits, '.', '_', '-')")
    return text


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from exc


def register(sub: Any) -> None:
    t = sub.add_parser("tls", help="make a site CA and the certificates of the collector and its agents")
    tsub = t.add_subparsers(dest="tls_command", required=True, metavar="ACTION")
    p = tsub.add_parser("init", help="a new CA, the collector's certificate and, optionally, agents' certificates")
    p.add_argument("--dir", type=Path, required=True, help="where to write them (created 0700)")
    p.add_argument("--name", action="append", required=True, metavar="DNS",
                   help="a DNS name agents use to reach the collector (repeatable)")
    p.add_argument("--ip", action="append", type=_ip, default=[], help="an IP address agents use (repeatable)")
    p.add_argument("--agent", action="append", type=_agent_name, default=[], metavar="NAME",
                   help="an agent to make a client certificate for (repeatable)")
    p.add_argument("--site", default="weibao", help="organisation name in the certificates")
    p.add_argument("--days", type=int, default=825, help="validity of the collector's and agents' certificates")
    p.set_defaults(handler=tls_init)
    p = tsub.add_parser("agent", help="a client certificate for one more agent, from the CA in --dir")
    p.add_argument("name", type=_agent_name)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--days", type=int, default=825)
    p.set_defaults(handler=tls_agent)


def _agent(ca: Any, directory: Path, name: str, days: int) -> None:
    from weibao.collector import pki

    pki.write(pki.issue(ca, name, dns=[name], server=False, days=days),
              directory / "agents" / f"{name}.crt", directory / "agents" / f"{name}.key")
    print(f"agent {name}: {directory / 'agents' / name}.crt and .key", file=sys.stderr)


def tls_init(args: argparse.Namespace) -> int:
    from weibao.collector import pki

    d: Path = args.dir
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca = pki.make_ca(args.site)
        pki.write(ca, d / "ca.crt", d / "ca.key")
        server = pki.issue(ca, args.name[0], dns=args.name, ips=args.ip, server=True, days=args.days)
        pki.write(server, d / "collector.crt", d / "collector.key")
        for name in args.agent:
            _agent(ca, d, name, args.days)
    except (OSError, ValueError) as exc:
        print(f"weibao tls init: {exc}", file=sys.stderr)
        return 2
    print(f"CA {d / 'ca.crt'}; collector certificate {d / 'collector.crt'} (key {d / 'collector.key'}) for "
          f"{', '.join([*args.name, *args.ip])}", file=sys.stderr)
    return 0


def tls_agent(args: argparse.Namespace) -> int:
    from weibao.collector import pki

    try:
        ca = pki.load(args.dir / "ca.crt", args.dir / "ca.key")
        _agent(ca, args.dir, args.name, args.days)
    except (OSError, ValueError) as exc:
        print(f"weibao tls agent: {exc}", file=sys.stderr)
        return 2
    return 0
