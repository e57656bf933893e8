"""The ``weibao`` command as a user runs it: check, poll --json and inspect against real peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.peers.snmpd import Snmpd, free_udp_port, running_snmpd
from tests.peers.snmpsim import read_recording, running_snmpsim

REPO = Path(__file__).resolve().parents[2]
WEIBAO = [sys.executable, "-m", "weibao"]
SECRET_AUTH, SECRET_PRIV = "authpass-512", "privpass-256"  # the test snmpd's v3 user priv512aes256


def weibao(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WEIBAO, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_check_accepts_the_shipped_inventory_and_rules() -> None:
    out = weibao("check", "--inventory", "inventory.yaml", "--rules", "rules",
                 env={"WEIBAO_SNMP_COMMUNITY": "x"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok:")


def test_check_names_file_line_and_key_for_each_problem(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent("""\
        site: s
        credentials:
          c: {type: snmp, version: 2c, community: "${WEIBAO_TEST_UNSET_VAR}"}
        defaults: {kind: switch, category: mis, snmp: {credential: c}}
        devices:
          - {name: a, address: 10.0.0.1, colour: red}
          - {name: b, address: 10.0.0.2, depends_on: c}
          - {name: c, address: 10.0.0.3, depends_on: b}
        """), encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "inspection.yaml").write_text((REPO / "rules" / "inspection.yaml").read_text(encoding="utf-8")
                                           + "\nbogus_top_level_key: 1\n", encoding="utf-8")
    (rules / "contract.yaml").write_text((REPO / "rules" / "contract.yaml").read_text(encoding="utf-8"),
                                         encoding="utf-8")
    out = weibao("check", "--inventory", str(inv), "--rules", str(rules))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert f"{inv}:3: credentials.c.community: environment variable WEIBAO_TEST_UNSET_VAR is not set" in lines
    assert f"{inv}:6: devices.0.colour: unknown key" in lines
    assert any(line.startswith(f"{inv}:7: devices.1.depends_on:") and "cycle" in line for line in lines)
    n = len((rules / "inspection.yaml").read_text(encoding="utf-8").splitlines())
    assert f"{rules / 'inspection.yaml'}:{n}: bogus_top_level_key: unknown key" in lines


def _v3_inventory(path: Path, snmpd: Snmpd, dead_port: int) -> None:
    path.write_text(textwrap.dedent(f"""\
        site: cli-test
        credentials:
          v3:
            type: snmp
            version: 3
            user: priv512aes256
            auth_protocol: SHA-512
            auth_key: ${{TEST_AUTH}}
            priv_protocol: AES-256
            priv_key: ${{TEST_PRIV}}
        defaults: {{kind: server, category: mis, icmp: {{count: 3}},
                    snmp: {{credential: v3, timeout_s: 2, retries: 0}}}}
        devices:
          - {{name: srv, address: 127.0.0.1, snmp: {{port: {snmpd.port}}}}}
          - {{name: dead, address: 127.0.0.1, snmp: {{port: {dead_port}}}, icmp: {{enabled: false}}}}
        """), encoding="utf-8")


@pytest.fixture(scope="module")
def snmpd_v3() -> Iterator[Snmpd]:
    with running_snmpd() as d:
        yield d


def test_poll_json_over_snmpv3_authpriv(tmp_path: Path, snmpd_v3: Snmpd) -> None:
    inv = tmp_path / "inv.yaml"
    _v3_inventory(inv, snmpd_v3, free_udp_port())
    env = {"TEST_AUTH": SECRET_AUTH, "TEST_PRIV": SECRET_PRIV}
    out = weibao("poll", "--inventory", str(inv), "--data", str(tmp_path / "data"), "--json",
                 "-p", "icmp", "-p", "snmp", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"samples", "events", "errors"}
    for s in doc["samples"]:
        assert set(s) == {"device", "metric", "value", "ts", "labels"}
        assert datetime.fromisoformat(s["ts"]).utcoffset() is not None
    by = {(s["device"], s["metric"]): s["value"] for s in doc["samples"] if not s["labels"]}
    assert by[("srv", "snmp.up")] == 1 and by[("srv", "up")] == 1 and by[("srv", "icmp.loss_pct")] == 0
    # snmpd's sysUpTime (centiseconds) read by net-snmp's own snmpget right after the poll
    ticks = int(snmpd_v3.snmpget("1.3.6.1.2.1.1.3.0") or "0")
    assert 0 <= ticks / 100 - by[("srv", "sys.uptime_s")] < 10
    # the host's memory as /proc says, against HOST-RESOURCES' RAM figure (both move a little)
    assert 0 < by[("srv", "mem.util_pct")] <= 100
    assert by[("dead", "snmp.up")] == 0 and by[("dead", "up")] == 0
    assert [e["device"] for e in doc["errors"]] == ["dead"]
    assert SECRET_AUTH not in out.stdout + out.stderr and SECRET_PRIV not in out.stdout + out.stderr


def test_poll_refuses_an_unknown_device(tmp_path: Path, snmpd_v3: Snmpd) -> None:
    inv = tmp_path / "inv.yaml"
    _v3_inventory(inv, snmpd_v3, free_udp_port())
    out = weibao("poll", "--inventory", str(inv), "--device", "nosuch", env={"TEST_AUTH": "x" * 8,
                                                                              "TEST_PRIV": "y" * 8})
    assert out.returncode == 2 and "nosuch" in out.stderr


def test_inspect_reports_recorded_ups_figures_and_a_reboot(tmp_path: Path, snmpd_v3: Snmpd) -> None:
    recording = "UPS/eaton-93e-80"
    # the recording's community (its name in snmpsim) is a secret the report must not show
    with running_snmpsim({"c0mmunity-ups": recording}) as sim:
        inv = tmp_path / "inv.yaml"
        inv.write_text(textwrap.dedent(f"""\
            site: 巡检测试
            credentials:
              ups: {{type: snmp, version: 2c, community: "${{TEST_COMMUNITY}}"}}
              v3: {{type: snmp, version: 3, user: priv512aes256, auth_protocol: SHA-512,
                    auth_key: "${{TEST_AUTH}}", priv_protocol: AES-256, priv_key: "${{TEST_PRIV}}"}}
            devices:
              - {{name: ups-1, address: {sim.host}, kind: ups, category: business,
                  snmp: {{credential: ups, port: {sim.port}, timeout_s: 3}}}}
              - {{name: srv, address: 127.0.0.1, kind: server, category: mis,
                  snmp: {{credential: v3, port: {snmpd_v3.port}}}}}
            """), encoding="utf-8")
        env = {"TEST_COMMUNITY": sim.community_for("c0mmunity-ups"), "TEST_AUTH": SECRET_AUTH, "TEST_PRIV": SECRET_PRIV}
        args = ["inspect", "--inventory", str(inv), "--data", str(tmp_path / "data"), "--settle", "1",
                "--lang", "en"]
        first = weibao(*args, "--out", str(tmp_path / "r1"), env=env)
        assert first.returncode == 0, first.stderr
        snmpd_v3.restart()  # the server reboots between two inspections
        second = weibao(*args, "--out", str(tmp_path / "r2"), env=env)
        assert second.returncode == 0, second.stderr
    html1 = (tmp_path / "r1" / "latest.en.html").read_text(encoding="utf-8")
    html2 = (tmp_path / "r2" / "latest.en.html").read_text(encoding="utf-8")
    charge = read_recording(recording)["1.3.6.1.2.1.33.1.2.4.0"][1]  # upsEstimatedChargeRemaining
    assert f"{int(charge)}%" in html1
    assert "rebooted" in html2 and "rebooted" not in html1
    for secret in (SECRET_AUTH, SECRET_PRIV, "c0mmunity-ups"):
        assert secret not in html1 + html2
