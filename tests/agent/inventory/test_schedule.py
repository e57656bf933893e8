"""Poll schedules in the inventory: the defaults, group and device layers, the daily SSH time, the job plan."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from weibao.agent.inventory import Inventory, load_inventory
from weibao.agent.pollers.registry import DAILY_RUN_DEADLINE_S
from weibao.agent.scheduler import plan_jobs
from weibao.core.errors import ConfigError
from weibao.core.model import Protocol

ENV = {"TEST_SSH_PASSWORD": "ssh-pass-1", "TEST_COMMUNITY": "c0mmunity"}

HEAD = """\
site: schedules
credentials:
  ro: {type: snmp, version: 2c, community: "${TEST_COMMUNITY}"}
  net: {type: ssh, username: admin, password: "${TEST_SSH_PASSWORD}"}
defaults:
  kind: switch
  category: business
"""


def load(tmp_path: Path, body: str) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return load_inventory(path, env=ENV)


def problems(tmp_path: Path, body: str) -> tuple[Path, list[str]]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    return tmp_path / "inventory.yaml", [str(p) for p in info.value.problems]


def test_nothing_set_gives_the_documented_defaults(tmp_path: Path) -> None:
    inv = load(tmp_path, """\
        devices:
          - {name: sw1, address: 127.0.0.1}
        """)
    sch = inv.devices["sw1"].schedule
    assert (sch.icmp_s, sch.snmp_s, sch.ssh_at, sch.timeout_s) == (10.0, 60.0, time(2, 0), 30.0)


def test_group_overrides_defaults_and_device_overrides_group(tmp_path: Path) -> None:
    inv = load(tmp_path, """\
          schedule: {icmp_s: 20}
        groups:
          core:
            schedule: {icmp_s: 5, snmp_s: 30, ssh_at: "03:30"}
        devices:
          - {name: plain, address: 127.0.0.1}
          - {name: grouped, address: 127.0.0.2, group: core}
          - name: own
            address: 127.0.0.3
            group: core
            schedule: {snmp_s: 120, timeout_s: 12}
        """)
    plain, grouped, own = (inv.devices[n].schedule for n in ("plain", "grouped", "own"))
    # defaults layer in the file over the built-in defaults
    assert (plain.icmp_s, plain.snmp_s, plain.ssh_at, plain.timeout_s) == (20.0, 60.0, time(2, 0), 30.0)
    # group over defaults, key by key
    assert (grouped.icmp_s, grouped.snmp_s, grouped.ssh_at, grouped.timeout_s) == (5.0, 30.0, time(3, 30), 30.0)
    # device over group, the keys it does not set still from the group
    assert (own.icmp_s, own.snmp_s, own.ssh_at, own.timeout_s) == (5.0, 120.0, time(3, 30), 12.0)


@pytest.mark.parametrize(("written", "expected"), [
    ("02:00", time(2, 0)),        # leading zero: YAML 1.1 reads a string
    ("2:00", time(2, 0)),         # no leading zero: YAML 1.1 reads the sexagesimal integer 120
    ("14:30", time(14, 30)),      # sexagesimal 870
    ('"14:30"', time(14, 30)),
    ("'02:00:30'", time(2, 0, 30)),
    ("02:00:30", time(2, 0, 30)),
])
def test_daily_ssh_time_as_written_in_yaml(tmp_path: Path, written: str, expected: time) -> None:
    inv = load(tmp_path, f"""\
        devices:
          - name: sw1
            address: 127.0.0.1
            schedule:
              ssh_at: {written}
        """)
    assert inv.devices["sw1"].schedule.ssh_at == expected


@pytest.mark.parametrize("written", ["25:00", "14:30:15", "3:75", "yes"])
def test_a_bad_daily_time_is_named_with_file_line_and_key(tmp_path: Path, written: str) -> None:
    path, found = problems(tmp_path, f"""\
        devices:
          - name: sw1
            address: 127.0.0.1
            schedule:
              ssh_at: {written}
        """)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "ssh_at" in t)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}: devices.0.schedule.ssh_at: "), found
    if written == "14:30:15":  # read by YAML as the number 52215: the message must say how to write it
        assert "quote" in found[0]


PLAN = """\
  snmp: {credential: ro}
groups:
  servers:
    kind: server
    ssh: {credential: net}
    schedule: {ssh_at: "03:15", snmp_s: 300}
devices:
  - {name: sw1, address: 127.0.0.1}
  - {name: sw2, address: 127.0.0.2, schedule: {icmp_s: 30}}
  - {name: srv1, address: 127.0.0.3, group: servers}
  - {name: srv2, address: 127.0.0.4, group: servers, schedule: {ssh_at: "22:45", timeout_s: 2400}}
  - {name: srv3, address: 127.0.0.5, group: servers, icmp: {enabled: false}}
"""


def test_plan_has_daily_ssh_jobs_at_their_times_and_interval_jobs(tmp_path: Path) -> None:
    inv = load(tmp_path, PLAN)
    jobs = plan_jobs(inv.devices.values())
    by_kind = {(j.protocol, j.every_s, j.at, j.deadline_s): j.devices for j in jobs}
    assert by_kind == {
        (Protocol.ICMP, 10.0, None, 30.0): ("sw1", "srv1"),
        (Protocol.ICMP, 10.0, None, 2400.0): ("srv2",),
        (Protocol.ICMP, 30.0, None, 30.0): ("sw2",),
        (Protocol.SNMP, 60.0, None, 30.0): ("sw1", "sw2"),
        (Protocol.SNMP, 300.0, None, 30.0): ("srv1", "srv3"),
        (Protocol.SNMP, 300.0, None, 2400.0): ("srv2",),
        (Protocol.SSH, None, time(3, 15), DAILY_RUN_DEADLINE_S): ("srv1", "srv3"),
        (Protocol.SSH, None, time(22, 45), 2400.0): ("srv2",),
    }
    assert len({j.name for j in jobs}) == len(jobs)
    ssh = [j for j in jobs if j.protocol == Protocol.SSH]
    assert all(j.every_s is None for j in ssh)
    assert all(j.at is None and j.every_s is not None for j in jobs if j.protocol != Protocol.SSH)
