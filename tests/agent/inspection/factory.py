"""Building blocks for inspection tests: an inventory written to disk, poll results, the repository's rules."""

from __future__ import annotations

import functools
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from weibao.agent.inventory import Device, load_inventory
from weibao.core.model import Event, EventKind, PollError, PollResult, Protocol, Sample

REPO = Path(__file__).resolve().parents[3]
RULES_FILE = REPO / "rules" / "inspection.yaml"

# throwaway credentials, handed to the inventory through the environment as in production
SECRETS = {
    "WB_TEST_COMMUNITY": "c0mmunity-Str1ng-zq",
    "WB_TEST_AUTH": "authKey-9f8e7d6c",
    "WB_TEST_PRIV": "privKey-5a4b3c2d",
    "WB_TEST_SSH_PASSWORD": "sshPassw0rd-x1y2",
}

INVENTORY = """\
site: 测试单位 机房
credentials:
  snmp-ro: {type: snmp, version: 2c, community: "${WB_TEST_COMMUNITY}"}
  snmp-v3:
    type: snmp
    version: 3
    user: weibao
    auth_protocol: SHA-256
    auth_key: ${WB_TEST_AUTH}
    priv_protocol: AES-128
    priv_key: ${WB_TEST_PRIV}
  ssh-net: {type: ssh, username: weibao, password: "${WB_TEST_SSH_PASSWORD}"}
defaults:
  snmp: {credential: snmp-ro}
devices:
  - name: core-sw-1
    address: 127.0.0.1
    kind: switch
    category: backbone
    snmp: {credential: snmp-v3}
    ssh: {credential: ssh-net, platform: huawei}
    asset: {vendor: Huawei, model: S12704, serial: SN-CORE-0001, location: 机房A 3列, warranty_end: WARRANTY_SW}
  - name: srv-1
    address: 127.0.0.2
    kind: server
    category: mis
    ssh: {credential: ssh-net}
    asset: {vendor: Inspur, model: NF5280M6, warranty_end: WARRANTY_SRV}
  - name: ups-1
    address: 127.0.0.3
    kind: ups
    category: business
    asset: {vendor: Eaton, model: 93E, location: 配电室}
"""


def write_inventory(tmp_path: Path, *, warranty_sw: str = "2030-01-01", warranty_srv: str = "2030-01-01") -> Path:
    path = tmp_path / "inventory.yaml"
    text = INVENTORY.replace("WARRANTY_SW", warranty_sw).replace("WARRANTY_SRV", warranty_srv)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def devices(tmp_path: Path, **warranties: str) -> dict[str, Device]:
    inv = load_inventory(write_inventory(tmp_path, **warranties), env=SECRETS)
    return dict(inv.devices)


@functools.cache
def raw_rules() -> dict[str, dict[str, Any]]:
    """The rules file read with plain PyYAML, so expectations come from the file, not from our loader."""
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {c["id"]: c for c in data["checks"]}


T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def sample(device: str, metric: str, value: float, ts: datetime = T0, **labels: str) -> Sample:
    return Sample(device=device, metric=metric, value=value, ts=ts, labels=labels)


def icmp_ok(device: str, ts: datetime = T0, *, rtt: float = 1.0, loss: float = 0.0) -> PollResult:
    return PollResult(device, Protocol.ICMP, samples=[
        sample(device, "up", 1 if loss < 100 else 0, ts), sample(device, "icmp.loss_pct", loss, ts),
        sample(device, "icmp.rtt_ms", rtt, ts)])


def icmp_dead(device: str, ts: datetime = T0) -> PollResult:
    return PollResult(device, Protocol.ICMP, samples=[sample(device, "up", 0, ts),
                                                      sample(device, "icmp.loss_pct", 100, ts)])


def snmp(device: str, samples: list[Sample], *, facts: dict[str, Any] | None = None,
         events: list[Event] | None = None) -> PollResult:
    ts = samples[0].ts if samples else T0
    return PollResult(device, Protocol.SNMP, samples=[sample(device, "snmp.up", 1, ts), *samples],
                      events=events or [], facts=facts or {})


def failed(device: str, protocol: Protocol, message: str, ts: datetime = T0) -> PollResult:
    return PollResult(device, protocol, samples=[sample(device, f"{protocol.value}.up", 0, ts)],
                      errors=[PollError(device, protocol, message)])


def config_changed(device: str, diff: str, added: Any, removed: Any, ts: datetime = T0) -> Event:
    return Event(device=device, kind=EventKind.CONFIG_CHANGED, ts=ts,
                 data={"diff": diff, "added": added, "removed": removed})
