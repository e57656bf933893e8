"""Inventory loading: layering, secrets, and one located problem per mistake."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from weibao.agent.inventory import Category, Kind, load_inventory
from weibao.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
site: test-site
secrets_file: secrets.yaml
credentials:
  v2: {type: snmp, version: 2c, community: "${TEST_COMMUNITY}"}
  v3:
    type: snmp
    version: 3
    user: weibao
    auth_protocol: SHA-512
    auth_key: ${secret:auth}
    priv_protocol: AES-256
    priv_key: ${secret:priv}
  net: {type: ssh, username: admin, password: "${secret:pw}"}
defaults:
  snmp: {credential: v2, timeout_s: 3}
  icmp: {count: 3}
  tags: [site-a]
groups:
  core: {kind: switch, category: backbone, ssh: {credential: net, platform: huawei}, tags: [core]}
  power: {kind: ups, category: business, icmp: {enabled: false}}
devices:
  - name: sw1
    address: 10.0.0.1
    group: core
    snmp: {credential: v3, port: 1161}
    asset: {vendor: Huawei, warranty_end: 2027-01-31}
  - name: ups1
    address: ups1.example.net
    group: power
    depends_on: sw1
    snmp: {enabled: false}
"""


def write(tmp_path: Path, text: str, secrets: str = "auth: authpass123\npriv: privpass123\npw: sshpass\n",
          mode: int = 0o600) -> Path:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(textwrap.dedent(text), encoding="utf-8")
    sec = tmp_path / "secrets.yaml"
    sec.write_text(secrets, encoding="utf-8")
    os.chmod(sec, mode)
    return inv


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_inventory(path, env=env if env is not None else {"TEST_COMMUNITY": "c0mmunity"})
    return [str(p) for p in info.value.problems]


def test_layers_resolve_later_wins(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD), env={"TEST_COMMUNITY": "c0mmunity"})
    sw1, ups1 = inv.devices["sw1"], inv.devices["ups1"]
    assert sw1.kind is Kind.SWITCH and sw1.category is Category.BACKBONE
    assert sw1.snmp is not None and sw1.snmp.credential.version == "3"
    assert sw1.snmp.port == 1161 and sw1.snmp.timeout_s == 3  # device port, defaults timeout
    assert sw1.snmp.credential.priv_key is not None
    assert sw1.snmp.credential.priv_key.get_secret_value() == "privpass123"
    assert sw1.ssh is not None and sw1.ssh.platform == "huawei"
    assert sw1.icmp is not None and sw1.icmp.count == 3
    assert sw1.tags == ["site-a", "core"]
    assert str(sw1.asset.warranty_end) == "2027-01-31"
    assert ups1.snmp is None and ups1.icmp is None and ups1.depends_on == "sw1"


def test_secrets_never_printed(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD), env={"TEST_COMMUNITY": "c0mmunity"})
    text = repr(inv) + str(inv.model_dump()) + str([d.public() for d in inv.devices.values()])
    for secret in ("c0mmunity", "authpass123", "privpass123", "sshpass"):
        assert secret not in text


def test_every_problem_named_with_file_line_key(tmp_path: Path) -> None:
    bad = GOOD.replace("  icmp: {count: 3}", "  icmp: {count: 3, colour: red}")
    bad = bad.replace("address: 10.0.0.1", "address: 10.0.0.256")
    bad = bad.replace("depends_on: sw1", "depends_on: nowhere")
    bad += "  - name: ups1\n    address: 10.0.0.9\n    group: power\n"
    path = write(tmp_path, bad)
    found = problems(path)
    text = path.read_text().splitlines()

    def line_of(fragment: str, nth: int = 0) -> int:
        return [i for i, t in enumerate(text, 1) if fragment in t][nth]

    assert f"{path}:{line_of('colour')}: defaults.icmp.colour: unknown key" in found
    assert any(p.startswith(f"{path}:{line_of('10.0.0.256')}: devices.0.address:") and "bad address" in p
               for p in found)
    assert any(p.startswith(f"{path}:{line_of('nowhere')}: devices.1.depends_on:") and "unknown device" in p
               for p in found)
    assert any(p.startswith(f"{path}:{line_of('name: ups1', 1)}: devices.2.name:") and "duplicate" in p
               for p in found)


def test_missing_env_and_open_secrets_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, mode=0o644)
    found = problems(path, env={})
    assert any("environment variable TEST_COMMUNITY is not set" in p and ":4: credentials.v2.community" in p
               for p in found)
    assert any("group- or world-accessible" in p and "secrets_file" in p for p in found)


def test_unreadable_secrets_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("secrets_file: secrets.yaml", "secrets_file: nowhere.yaml"))
    assert any("unreadable secrets file" in p and f"{path}:2: secrets_file" in p for p in problems(path))


def test_dependency_cycle(tmp_path: Path) -> None:
    text = GOOD.replace("    group: core\n", "    group: core\n    depends_on: ups1\n", 1)
    found = problems(write(tmp_path, text))
    assert any("depends_on cycle" in p for p in found)


def test_yaml_syntax_error_located(tmp_path: Path) -> None:
    path = write(tmp_path, "site: x\ndevices:\n  - name: [unclosed\n")
    found = problems(path)
    assert len(found) == 1 and found[0].startswith(f"{path}:") and "YAML syntax" in found[0]


def test_a_date_that_does_not_exist_is_a_located_problem(tmp_path: Path) -> None:
    text = GOOD.replace("warranty_end: 2027-01-31", "warranty_end: 2027-02-30")
    path = write(tmp_path, text)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "2027-02-30" in t)
    found = problems(path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:{line}: devices.0.asset.warranty_end: invalid value '2027-02-30'")


@pytest.mark.parametrize("given", ['"0x80001F8880C0FFEE0001"', '"80:00:1f:88:80:c0:ff:ee:00:01"',
                                   "80001f8880c0ffee0001"])
def test_snmp_engine_id_in_the_forms_devices_show(tmp_path: Path, given: str) -> None:
    text = GOOD.replace("port: 1161}", f"port: 1161, engine_id: {given}}}")
    inv = load_inventory(write(tmp_path, text), env={"TEST_COMMUNITY": "c0mmunity"})
    snmp = inv.devices["sw1"].snmp
    assert snmp is not None and snmp.engine_id == "80001f8880c0ffee0001"


@pytest.mark.parametrize(("given", "says"), [('"0x80zz"', "hexadecimal"), ('"0x8000"', "5 to 32 octets"),
                                             ("8000123", "must be text")])
def test_a_bad_snmp_engine_id_is_a_located_problem(tmp_path: Path, given: str, says: str) -> None:
    text = GOOD.replace("port: 1161}", f"port: 1161, engine_id: {given}}}")
    path = write(tmp_path, text)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "engine_id" in t)
    (found,) = problems(path)
    assert found.startswith(f"{path}:{line}: devices.0.snmp.engine_id: ") and says in found


def test_snmpv3_needs_auth_for_priv(tmp_path: Path) -> None:
    text = GOOD.replace("    auth_protocol: SHA-512\n    auth_key: ${secret:auth}\n", "")
    assert any("credentials.v3" in p and "authentication" in p for p in problems(write(tmp_path, text)))


def test_shipped_example_validates(tmp_path: Path) -> None:
    env = {"WEIBAO_SNMP_COMMUNITY": "x"}
    inv = load_inventory(REPO / "inventory.yaml", env=env)
    assert len(inv.devices) >= 4


def test_unknown_forced_snmp_profile(tmp_path: Path) -> None:
    text = GOOD.replace("snmp: {credential: v3, port: 1161}",
                        "snmp: {credential: v3, port: 1161, profiles: [huawei, nosuch]}")
    path = write(tmp_path, text)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "nosuch" in t)
    assert f"{path}:{line}: devices.0.snmp.profiles: unknown SNMP profile 'nosuch'" in problems(path)
