"""SshPoller against recorded network-device CLIs served over SSH on loopback (Huawei, Cisco IOS, H3C)."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pollers.ssh_fixtures import make_device, metric, poll, value
from tests.peers.cli_server import RECORDINGS, CliServer
from weibao.agent.inventory.model import Device
from weibao.agent.pollers.ssh import SshPoller
from weibao.agent.state import StateStore
from weibao.core.model import EventKind

pytestmark = pytest.mark.timeout(120)

CONFIG_COMMAND = {"huawei": "display current-configuration", "hp_comware": "display current-configuration",
                  "cisco_ios": "show running-config"}
INTERFACE_FILE = {"huawei": "display_interface_brief.txt", "hp_comware": "display_interface_brief.txt",
                  "cisco_ios": "show_ip_interface_brief.txt"}
# every secret written in the recorded configurations (checked to be there, then never to leak)
SECRETS = {
    "huawei": ["%^%#qR5@Lw8$e2H!k9X]zT4c}P7vN1%^%#", "$1a$Wb7r%Hq2Pz$Kx9_mN3&vT8@pL5#jR2!sF6^dY4*cQ1$",
               "$1a$Zt4w%Lm8Rq$Hp2_bV7&nC3@xK9#gT5!wM1^eS6*uA8$", "%^%#Gk3!Rw9$Yt2@Mn7&Vb5^Hx8*Qz1%^%#",
               "%^%#Fs8@Kd3!Pw6$Jn1&Lc4^Ty9*Rb2%^%#", "%^%#Ue5!Hm2@Qa7$Wz4&Xk9^Gv3*Np6%^%#",
               "%^%#Bc6@Nr1!Ts8$Gy3&Mf5^Kw2*Dp9%^%#"],
    "cisco_ios": ["$9$Wq3mLk8ZpT2vHs$Jx7nR4bY1cF6gD9sK2wQ5eU8tA3zM0pL7vN4hB1xC6o",
                  "$9$Pz6tRk2QwL8mNs$Hv3bX7cY1dJ5gF9kS2aE4uT8rW0qM6nL3pB7zC1xV5o", "0822455D0A16544541",
                  "Wb-RO-c0mmunity", "Wb-RW-s3cret", "AuthKey-7q2w9e", "PrivKey-4r8t1y", "104D000A0618411F5A",
                  "121A0C041104", "060506324F41", "3082022B 30820194"],
    "hp_comware": ["Wb-H3C-r3ad", "$c$3$Uq4bHn8KsP2wLm6Zt1Rx9Vy3Cf7Jd5Ga", "$c$3$Kd8mWq2TzX5vBn1Lp7Hs4Rf9Gy6Jc3Ua",
                   "$h$6$Wb9kLm2Pq$Tz4xNv7Rs1Hc8Jd5Gf3Yb6Ka2Qw9Ep0Lm4Xn7Vr1Ts8Hc5Jd2Gf6Yb3Ka9Qw"],
}
# (model fragment, uptime as written in the recording, its value in seconds)
VERSIONS = {
    "huawei": ("S5720-28X-SI-AC", "23 weeks, 4 days, 6 hours, 12 minutes", ((23 * 7 + 4) * 24 + 6) * 3600 + 12 * 60),
    "cisco_ios": ("WS-C2960X-48TS-L", "1 year, 12 weeks, 3 days, 5 hours, 44 minutes",
                  ((365 + 12 * 7 + 3) * 24 + 5) * 3600 + 44 * 60),
    "hp_comware": ("S5130S-28S-EI", "0 weeks, 5 days, 2 hours, 33 minutes", (5 * 24 + 2) * 3600 + 33 * 60),
}


def recorded_interfaces(platform: str) -> dict[str, bool]:
    """Interfaces and up/down as the recording states them, read with plain string splitting."""
    text = (RECORDINGS / platform / INTERFACE_FILE[platform]).read_text()
    out: dict[str, bool] = {}
    if platform == "huawei":
        rows = text.split("inErrors  outErrors\n", 1)[1].splitlines()
        for row in rows:
            name, phy, proto = row.split()[:3]
            out[name] = phy.startswith("up") and proto.startswith("up")
    elif platform == "cisco_ios":
        for row in text.splitlines()[1:]:
            f = row.split()
            out[f[0]] = f[-2] == "up" and f[-1] == "up"
    else:
        for row in text.splitlines():
            f = row.split()
            if len(f) >= 2 and re.match(r"^(?:[A-Z]+-?[A-Za-z]*\d|InLoop|NULL|REG|Vlan)", f[0]) and f[1] in (
                "UP", "DOWN", "ADM"
            ):
                # route-mode rows carry a protocol column; bridge-mode rows a speed there
                protocol = f[2] if len(f) > 2 and f[2].startswith(("UP", "DOWN")) else None
                out[f[0]] = f[1] == "UP" and (protocol is None or protocol.startswith("UP"))
    return out


@pytest.fixture(params=["huawei", "cisco_ios", "hp_comware"])
def device_cli(request: pytest.FixtureRequest) -> Iterator[CliServer]:
    with CliServer(request.param) as server:
        yield server


@pytest.fixture
def poller(tmp_path: Path) -> Iterator[SshPoller]:
    p = SshPoller(StateStore(), tmp_path / "configs")
    yield p
    p.close()


def device_for(server: CliServer, tmp_path: Path) -> Device:
    kh = tmp_path / "known_hosts"
    if not kh.exists():
        kh.write_text(server.known_hosts_line())
    return make_device(f"sw-{server.platform}", server.port, username=server.username, password=server.password,
                       platform=server.platform, known_hosts=kh, timeout_s=20)


def test_version_and_interfaces_as_recorded(device_cli: CliServer, poller: SshPoller, tmp_path: Path) -> None:
    dev = device_for(device_cli, tmp_path)
    result = poll(poller, dev)
    assert result.ok, result.errors
    assert value(result, "ssh.up") == 1.0
    model, uptime_text, uptime_s = VERSIONS[device_cli.platform]
    version_file = next(RECORDINGS.joinpath(device_cli.platform).glob("*_version.txt"))
    assert model in version_file.read_text() and uptime_text in version_file.read_text()
    assert model in result.facts["model"]
    assert value(result, "sys.uptime_s") == uptime_s
    got = {dict(k)["ifName"]: v == 1.0 for k, v in metric(result, "if.oper_up").items()}
    expected = recorded_interfaces(device_cli.platform)
    assert got == expected
    assert any(expected.values()) and not all(expected.values())


def test_config_baseline_then_change_with_secrets_masked(device_cli: CliServer, poller: SshPoller,
                                                         tmp_path: Path) -> None:
    platform = device_cli.platform
    command = CONFIG_COMMAND[platform]
    original = device_cli.output(command)
    assert original is not None
    for secret in SECRETS[platform]:
        assert secret in original, secret
    dev = device_for(device_cli, tmp_path)

    first = poll(poller, dev)
    assert first.ok, first.errors
    assert first.events == []  # the first configuration is the baseline
    stored = Path(first.facts["config_path"])
    assert stored == tmp_path / "configs" / f"sw-{platform}.cfg"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    baseline = stored.read_text()

    # same configuration, only the volatile lines differ: no event
    volatile = original.replace("10:15:02", "11:47:59").replace("36028973", "36028990").replace(
        "2026-11-20 10:22:31", "2026-11-26 01:00:00")
    device_cli.set_output(command, volatile)
    second = poll(poller, dev)
    assert second.ok and second.events == []
    assert stored.read_text() == baseline

    # a real change: a new VLAN line and a new password for one secret
    old_secret = SECRETS[platform][1]
    new_secret = "NEW" + old_secret[3:] if len(old_secret) > 6 else old_secret + "X"
    new_line = {"huawei": "vlan batch 10 20 100 200", "cisco_ios": "vlan 10,20,100,200",
                "hp_comware": "vlan 200"}[platform]
    anchor = {"huawei": "vlan batch 10 20 100", "cisco_ios": "vlan 10,20,100", "hp_comware": "vlan 10"}[platform]
    changed = original.replace(old_secret, new_secret).replace(anchor + "\n", new_line + "\n", 1)
    if platform == "hp_comware":
        changed = original.replace(old_secret, new_secret).replace("vlan 10\n#\n", "vlan 10\n#\nvlan 200\n#\n", 1)
    assert changed != original
    device_cli.set_output(command, changed)
    third = poll(poller, dev)
    assert third.ok, third.errors
    assert [e.kind for e in third.events] == [EventKind.CONFIG_CHANGED]
    data = third.events[0].data
    diff = data["diff"]
    assert f"+{new_line}" in diff
    assert data["added"] >= 2 and data["removed"] >= 1  # the new line, and the secret line both ways
    secret_lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and "<secret:" in ln]
    assert len(secret_lines) == 2
    for text in (diff, stored.read_text(), repr(third.events), repr(third.facts)):
        for secret in [*SECRETS[platform], new_secret]:
            assert secret not in text, secret


def test_wrong_password_on_a_device(poller: SshPoller, tmp_path: Path) -> None:
    with CliServer("huawei") as server:
        kh = tmp_path / "known_hosts"
        kh.write_text(server.known_hosts_line())
        dev = make_device("sw-bad", server.port, username=server.username, password="Bad-Pass-99",
                          platform="huawei", known_hosts=kh, timeout_s=10)
        result = poll(poller, dev)
    assert value(result, "ssh.up") == 0.0
    assert "authentication refused" in result.errors[0].message
    assert "Bad-Pass-99" not in result.errors[0].message
    assert not (tmp_path / "configs" / "sw-bad.cfg").exists()


def test_unknown_device_key_refused_and_netmiko_never_adds_it(poller: SshPoller, tmp_path: Path) -> None:
    with CliServer("cisco_ios") as server:
        kh = tmp_path / "known_hosts"
        dev = make_device("sw-new", server.port, username=server.username, password=server.password,
                          platform="cisco_ios", known_hosts=kh, timeout_s=10)
        result = poll(poller, dev)
        assert value(result, "ssh.up") == 0.0
        assert server.host_key.fingerprint in result.errors[0].message
        assert not kh.exists()
        assert server.commands == []
        tofu = make_device("sw-new", server.port, username=server.username, password=server.password,
                           platform="cisco_ios", known_hosts=kh, timeout_s=20, accept_new=True)
        assert poll(poller, tofu).ok
        assert kh.read_text() == server.known_hosts_line()


def test_unsupported_platform_is_an_error_not_a_crash(poller: SshPoller, tmp_path: Path) -> None:
    dev = make_device("sw-odd", 1, username="u", password="p-unused-1", platform="juniper_junos",
                      known_hosts=tmp_path / "kh")
    result = poll(poller, dev)
    assert value(result, "ssh.up") == 0.0
    assert "juniper_junos" in result.errors[0].message


def test_device_hanging_mid_session_times_out_within_timeout(poller: SshPoller, tmp_path: Path) -> None:
    with CliServer("huawei") as server:
        server.stalled.add("display current-configuration")
        kh = tmp_path / "known_hosts"
        kh.write_text(server.known_hosts_line())
        dev = make_device("sw-hang", server.port, username=server.username, password=server.password,
                          platform="huawei", known_hosts=kh, timeout_s=6)
        started = time.monotonic()
        result = poll(poller, dev)
        elapsed = time.monotonic() - started
    assert elapsed < 6 + 1.0
    assert value(result, "ssh.up") == 0.0
    assert result.errors[0].retryable
    assert "sw-hang" in result.errors[0].message
    assert "display current-configuration" in result.errors[0].message  # the worker's own deadline ended it
