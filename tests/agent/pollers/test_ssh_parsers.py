"""Parsers of the SSH poller on fixed text: secret masking, volatile lines, server report, uptimes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from weibao.agent.pollers.ssh import netdev, server
from weibao.agent.pollers.ssh.configdiff import ConfigStore, Masker, normalize

MASKED = [
    # (line, secret that must vanish, text that must stay)
    ("enable secret 9 $9$abcdefgh$ijklmnop", "$9$abcdefgh$ijklmnop", "enable secret 9 <secret:"),
    ("enable password Pl4inText", "Pl4inText", "enable password <secret:"),
    ("username ops privilege 15 secret 5 $1$xyz$Qwerty", "$1$xyz$Qwerty", "username ops privilege 15 secret 5"),
    ("username bak password 7 0822455D0A16", "0822455D0A16", "username bak password 7"),
    ("snmp-server community s3cr3tRO RO 10", "s3cr3tRO", " RO 10"),
    ("snmp-server user u g v3 auth sha AuthK3y priv aes 128 PrivK3y", "AuthK3y", "priv aes 128 <secret:"),
    ("snmp-server user u g v3 auth sha AuthK3y priv aes 128 PrivK3y", "PrivK3y", "snmp-server user u g v3"),
    ("tacacs-server key 7 104D000A0618", "104D000A0618", "tacacs-server key 7"),
    (" key 7 104D000A0618", "104D000A0618", " key 7"),
    ("crypto isakmp key Psk-Value address 203.0.113.9", "Psk-Value", "address 203.0.113.9"),
    (" ip ospf message-digest-key 1 md5 7 0822455D", "0822455D", "message-digest-key 1 md5 7"),
    (" neighbor 198.51.100.1 password 7 02050D480809", "02050D480809", "neighbor 198.51.100.1 password 7"),
    (" local-user admin password irreversible-cipher $1a$X%y$Z$", "$1a$X%y$Z$", "local-user admin password"),
    (" local-user admin password cipher %^%#abc%^%#", "%^%#abc%^%#", "password cipher <secret:"),
    ("snmp-agent community read cipher %^%#q1w2%^%# acl 2000", "%^%#q1w2%^%#", "acl 2000"),
    ("snmp-agent community read Publ1cRO", "Publ1cRO", "snmp-agent community read <secret:"),
    (" snmp-agent community write simple Wr1te", "Wr1te", "write simple <secret:"),
    (" radius-server shared-key cipher %^%#rs%^%#", "%^%#rs%^%#", "radius-server shared-key cipher <secret:"),
    (" pre-shared-key cipher %^%#pk%^%#", "%^%#pk%^%#", "pre-shared-key cipher"),
    (" pre-shared-key Plain-PSK", "Plain-PSK", "pre-shared-key <secret:"),
    (" password hash $h$6$abc$def", "$h$6$abc$def", "password hash <secret:"),
    (" key authentication cipher $c$3$abc", "$c$3$abc", "key authentication cipher <secret:"),
    (" ospf authentication-mode md5 1 cipher %^%#o%^%#", "%^%#o%^%#", "authentication-mode md5 1 cipher"),
    (" key-string 7 0822455D0A", "0822455D0A", "key-string 7"),
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host", "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7", "ssh-rsa <secret:"),
]

UNTOUCHED = ["service password-encryption", "key chain KC-OSPF", "aaa authentication login default local",
             "interface GigabitEthernet0/0/1", " description to-core password-free", "hostname SW-1",
             " authentication-mode aaa", "ip ssh version 2"]


@pytest.mark.parametrize(("line", "secret", "kept"), MASKED)
def test_secrets_are_masked(line: str, secret: str, kept: str) -> None:
    masked = Masker(b"k" * 32).mask_line(line)
    assert secret not in masked
    assert kept in masked


@pytest.mark.parametrize("line", UNTOUCHED)
def test_plain_lines_are_kept(line: str) -> None:
    assert Masker(b"k" * 32).mask_line(line) == line


def test_same_secret_same_token_other_key_other_token() -> None:
    a, b = Masker(b"a" * 32), Masker(b"b" * 32)
    line = "snmp-server community s3cr3t RO"
    assert a.mask_line(line) == a.mask_line(line)
    assert a.mask_line(line) != b.mask_line(line)
    assert a.mask_line(line) != a.mask_line(line.replace("s3cr3t", "s3cr3u"))


def test_certificate_blocks_are_masked_line_by_line() -> None:
    text = "crypto pki certificate chain TP\n certificate self-signed 01\n  3082022B 30820194 A0030201\n  quit\n!"
    masked = Masker(b"k" * 32).mask(text)
    assert "3082022B" not in masked
    assert masked.splitlines()[3] == "  quit"


def test_volatile_lines_are_dropped() -> None:
    text = ("Building configuration...\n\nCurrent configuration : 3874 bytes\n!\n"
            "! Last configuration change at 10:15:02 CST Thu Nov 20 2026 by admin\n"
            "! NVRAM config last updated at 10:15:40 CST Thu Nov 20 2026\n!Time: Thu Nov 20 10:00:00 2026\n"
            "ntp clock-period 36028973\nhostname R1\n"
            "!Last configuration was updated at 2026-11-20 10:22:31+08:00\nend\r\n")
    assert normalize(text) == "!\nhostname R1\nend\n"


def test_config_store_modes_and_baseline(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "cfg")
    stored, change = store.update("r1", "hostname R1\nsnmp-server community c0mm RO\n")
    assert change is None and "c0mm" not in stored
    assert stat.S_IMODE(os.stat(tmp_path / "cfg").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "cfg" / "r1.cfg").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "cfg" / ".mask-key").st_mode) == 0o600
    assert store.update("r1", "hostname R1\nsnmp-server community c0mm RO\n")[1] is None
    _, change = ConfigStore(tmp_path / "cfg").update("r1", "hostname R2\nsnmp-server community c0mm RO\n")
    assert change is not None and (change.added, change.removed) == (1, 1)
    assert "-hostname R1" in change.diff and "+hostname R2" in change.diff


SERVER_OUTPUT = """
@@uname
Linux web-01 6.1.0-26-amd64 x86_64
@@uptime
350735.47 1370929.35
@@loadavg
0.52 0.61 0.70 2/311 12345
@@meminfo
MemTotal:        8039144 kB
MemFree:          412392 kB
MemAvailable:    5127780 kB
Buffers:          210872 kB
@@df
Filesystem     Type     1024-blocks     Used Available Capacity Mounted on
udev           devtmpfs     4000000        0   4000000       0% /dev
tmpfs          tmpfs         803916     1044    802872       1% /run
/dev/sda1      ext4        51290592 30119524  18532244      62% /
/dev/sdb1      xfs        104806400 94325760  10480640      91% /data/my files
overlay        overlay     51290592 30119524  18532244      62% /var/lib/docker/overlay2/x/merged
@@systemd
nginx.service loaded failed failed A high performance web server
backup.timer  loaded failed failed Nightly backup
@@rc 0
"""


def test_server_report() -> None:
    rep = server.parse_report(SERVER_OUTPUT)
    assert rep.uptime_s == 350735.47
    assert rep.load == (0.52, 0.61, 0.70)
    assert rep.mem_util_pct == pytest.approx(100 * (8039144 - 5127780) / 8039144)
    assert [(d.mount, round(d.util_pct, 2)) for d in rep.disks] == [
        ("/", round(100 * 30119524 / (30119524 + 18532244), 2)),
        ("/data/my files", 90.0),
    ]
    assert rep.failed_units == ["nginx.service", "backup.timer"]


def test_systemd_absent_or_not_running_reports_nothing() -> None:
    assert server.parse_systemd(["@@absent"]) is None
    not_booted = ["System has not been booted with systemd as init system (PID 1). Can't operate.", "@@rc 1"]
    assert server.parse_systemd(not_booted) is None
    assert server.parse_systemd(["@@rc 0"]) == []


def test_broken_server_output_is_a_protocol_failure() -> None:
    from weibao.agent.errors import ProtocolFailure

    with pytest.raises(ProtocolFailure):
        server.parse_report("@@uptime\n\n@@loadavg\n")


@pytest.mark.parametrize(("text", "seconds"), [
    ("1 year, 12 weeks, 3 days, 5 hours, 44 minutes", ((365 + 84 + 3) * 24 + 5) * 3600 + 44 * 60),
    ("0 weeks,5 days,2 hours,33 minutes", (5 * 24 + 2) * 3600 + 33 * 60),
    ("2 hours, 1 minute", 7260),
    ("unknown", None),
])
def test_uptime_text(text: str, seconds: int | None) -> None:
    assert netdev.parse_uptime(text) == seconds


def test_ruijie_interfaces_without_a_template() -> None:
    text = """
Interface                        Status    Vlan   Duplex   Speed     Type
-------------------------------- --------  ----   -------  --------- ------
GigabitEthernet 0/1              up        1      Full     1000M     copper
GigabitEthernet 0/2              down      1      Unknown  Unknown   copper
TenGigabitEthernet 0/49          up        Trunk  Full     10G       fiber
"""
    got = netdev.parse_interfaces(netdev.PLATFORMS["ruijie_os"], text)
    assert [(i.name, i.oper_up) for i in got] == [
        ("GigabitEthernet 0/1", True), ("GigabitEthernet 0/2", False), ("TenGigabitEthernet 0/49", True)]
