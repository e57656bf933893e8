"""``weibao init DIR``: a site skeleton that passes ``weibao check`` and ``weibao collector --check``.

It writes the files both services read (so it lives beside ``weibao run``, the one package that knows both
sides): the inventory, the secrets file (owner-only), the collector configuration, the notification
configuration, the site calendar, the maintenance windows, and ``agent.env`` (the collector URL the agent
unit ships to). Paths inside are absolute, so the files mean the same from any working directory. Nothing
is overwritten: when any of the files exists, nothing is written at all.

With ``--owner USER`` (as root, for the services' user ``weibao``) the secrets file belongs to USER, and
the other files to root with USER's group, mode 0640: the services read their configuration and cannot
change it.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import socket
import sys
from pathlib import Path
from typing import Any

from weibao.core.files import write_atomic

DEFAULT_DATA = Path("/var/lib/weibao/collector")
DEFAULT_COLLECTOR = "http://127.0.0.1:8470"
SECRETS = "secrets.yaml"

INVENTORY = """\
# weibao inventory of this site: the devices under contract, in layers defaults -> groups -> devices
# (later wins). Secrets are never written here: ${secret:NAME} reads secrets.yaml (owner-only), ${ENV_VAR}
# the environment. Check it with: weibao check --inventory @DIR@/inventory.yaml
site: @SITE@
secrets_file: secrets.yaml

credentials:
  snmp-ro:
    type: snmp
    version: 2c
    community: ${secret:snmp_community}
  # snmp-v3:
  #   type: snmp
  #   version: 3
  #   user: weibao
  #   auth_protocol: SHA-256
  #   auth_key: ${secret:snmp_v3_auth}
  #   priv_protocol: AES-128
  #   priv_key: ${secret:snmp_v3_priv}

defaults:
  icmp: {count: 5, interval_ms: 20, timeout_ms: 1000}
  snmp: {credential: snmp-ro, timeout_s: 2, retries: 1}
  ssh: {enabled: false, known_hosts: /var/lib/weibao/agent/known_hosts}
  schedule: {icmp_s: 10, snmp_s: 60, ssh_at: "02:00"}

groups:
  core:
    kind: switch
    category: backbone

# kind: switch, router, firewall, server, ups, storage, wireless, other
# category (the contract's fault table): backbone, provincial, business, realtime, mis, processing
devices: []
#  - name: core-sw-1
#    address: 10.0.0.1
#    group: core
#    asset: {vendor: Huawei, model: S5720, serial: "...", location: "...", warranty_end: 2028-06-30}
"""

SECRETS_TEXT = """\
# Secrets of this site, read through ${secret:NAME} in inventory.yaml and notify.yaml. weibao refuses this
# file when its group or others may read it: keep it mode 0600, owned by the user the services run as.
snmp_community: change-me
"""

COLLECTOR = """\
# weibao collector configuration. Check it with: weibao collector --check --config @DIR@/collector.yaml
# Agents elsewhere reach it through a TLS reverse proxy (README, "Operating weibao"), or listen: 0.0.0.0:8470.
listen: 127.0.0.1:8470
data_dir: @DATA@
# state in PostgreSQL instead of SQLite under data_dir (pip install weibao[postgres]):
# state_url: postgresql://weibao@/weibao?host=/run/postgresql
retention: {raw_days: 30, rollup_300_days: 400}
contract:
  # rules: @DIR@/rules/contract.yaml     # default: the rules shipped with weibao
  calendar: [@DIR@/calendar.yaml]
  notify: @DIR@/notify.yaml
  maintenance: @DIR@/maintenance.yaml
"""

NOTIFY = """\
# Who hears of ticket changes. Secrets by reference: ${secret:NAME} (secrets_file) or ${ENV_VAR}.
secrets_file: secrets.yaml
channels: {}
#  duty-mail:
#    type: email
#    host: mail.example.cn
#    port: 587
#    username: weibao
#    password: ${secret:smtp_password}
#    sender: weibao@example.cn
#    to: [duty@example.cn]
#    routing: {levels: [1, 2, 3]}
#  duty-robot:
#    type: dingtalk
#    url: ${secret:dingtalk_url}
#    routing: {levels: [1, 2]}
"""

CALENDAR = """\
# The site's working calendar, applied after the national holidays shipped with weibao. Add a year from
# the State Council's notice (国务院办公厅关于YYYY年部分节假日安排的通知) as soon as it is published:
#   weibao calendar add-year @DIR@/calendar.yaml --year 2027 --notice notice.txt
# then restart the collector. Local holidays and working days, other working hours and protection
# periods (重保) go here too: see "Calendar upkeep" in the README.
years: {}
holidays: []
working_days: []
"""

MAINTENANCE = """\
# Planned maintenance windows (no ticket, left out of availability); also: weibao maintenance add.
windows: []
#  - devices: [core-sw-1]
#    start: 2027-01-09T22:00:00+08:00
#    end: 2027-01-10T02:00:00+08:00
#    reason: core switch software upgrade
"""

AGENT_ENV = """\
# Read by weibao-agent.service: the collector the agent ships to.
WEIBAO_COLLECTOR=@COLLECTOR@
"""

FILES = {"inventory.yaml": INVENTORY, SECRETS: SECRETS_TEXT, "collector.yaml": COLLECTOR, "notify.yaml": NOTIFY,
         "calendar.yaml": CALENDAR, "maintenance.yaml": MAINTENANCE, "agent.env": AGENT_ENV}


def _quoted(text: str) -> str:
    """A YAML scalar that reads back as ``text`` whatever it holds (JSON strings are YAML)."""
    return json.dumps(text, ensure_ascii=False)


def render(directory: Path, *, site: str, data: Path, collector: str) -> dict[str, str]:
    """File name -> text of the skeleton for ``directory`` (absolute paths inside)."""
    values = {"@DIR@": str(directory), "@SITE@": _quoted(site), "@DATA@": str(data), "@COLLECTOR@": collector}
    out = {}
    for name, text in FILES.items():
        for key, value in values.items():
            text = text.replace(key, value)
        out[name] = text
    return out


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="write a site skeleton (inventory, secrets, collector and notify config)")
    p.add_argument("dir", type=Path, metavar="DIR", help="the configuration directory, e.g. /etc/weibao")
    p.add_argument("--site", default=None, help="the site's name in reports (default: this host's name)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the collector's data directory (%(default)s)")
    p.add_argument("--collector", default=DEFAULT_COLLECTOR, help="the URL the agent ships to (%(default)s)")
    p.add_argument("--owner", default=None, metavar="USER",
                   help="the services' user: owns the secrets file; the other files get its group, mode 0640")
    p.set_defaults(handler=run)


def _ids(owner: str | None) -> tuple[int, int] | None:
    if owner is None:
        return None
    user = pwd.getpwnam(owner)
    return user.pw_uid, user.pw_gid


def run(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    try:
        ids = _ids(args.owner)
    except KeyError:
        print(f"weibao init: no user {args.owner!r} (create it first: systemd-sysusers, after "
              "`weibao units install`)", file=sys.stderr)
        return 2
    if directory.exists() and not directory.is_dir():
        print(f"weibao init: {directory} exists and is not a directory", file=sys.stderr)
        return 2
    existing = [directory / n for n in FILES if (directory / n).exists()]
    if existing:
        for path in existing:
            print(f"weibao init: {path} exists; nothing written", file=sys.stderr)
        return 1
    texts = render(directory, site=args.site or socket.gethostname(), data=args.data.absolute(),
                   collector=args.collector)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    if ids is not None:
        os.chown(directory, -1, ids[1])  # the services' group may enter it
    for name, text in texts.items():
        path = directory / name
        secret = name == SECRETS
        write_atomic(path, text, mode=0o600 if secret or ids is None else 0o640)
        if ids is not None:
            uid, gid = ids
            os.chown(path, uid if secret else -1, gid)
    group = "" if ids is None else f" (group {grp.getgrgid(ids[1]).gr_name})"
    print(f"wrote {directory}{group}: " + ", ".join(f"{n} (0600)" if n == SECRETS else n for n in FILES))
    print("next:")
    print(f"  1. devices in {directory / 'inventory.yaml'}, their secrets in {directory / SECRETS};\n"
          f"     weibao check --inventory {directory / 'inventory.yaml'}")
    print(f"  2. weibao collector --check --config {directory / 'collector.yaml'}")
    print(f"  3. weibao token issue AGENT-NAME --config {directory / 'collector.yaml'} > "
          f"{directory / 'agent.token'}  (mode 0600, owner of the services)")
    print("  4. weibao units install && systemd-sysusers && systemctl daemon-reload && "
          "systemctl enable --now weibao-collector weibao-agent weibao-backup.timer")
    return 0
