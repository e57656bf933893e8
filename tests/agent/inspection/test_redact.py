"""Credentials are masked in device text, whether or not the inventory knows them."""

from __future__ import annotations

import pytest

from weibao.agent.inspection.redact import MASK, Redactor

KNOWN = "Inventory-Secret-77"


@pytest.mark.parametrize(("line", "hidden"), [
    ("snmp-server community PubLicRO RO", "PubLicRO"),                                   # Cisco IOS
    ("snmp-agent community read cipher %^%#Xk2!abc%^%#", "%^%#Xk2!abc%^%#"),            # Huawei VRP
    ("snmp-agent community read simple h3cRead", "h3cRead"),                             # H3C Comware
    ("snmp-server user mon grp v3 auth sha AuthK3y! priv aes 128 PrivK3y!", "AuthK3y!"),
    ("snmp-server user mon grp v3 auth sha AuthK3y! priv aes 128 PrivK3y!", "PrivK3y!"),
    ("enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0"),
    ("username admin privilege 15 password 0 Cl3arText", "Cl3arText"),
    (" local-user admin password irreversible-cipher $1a$zzz$", "$1a$zzz$"),
    ("+ pre-shared-key cipher %@%@abcdef%@%@", "%@%@abcdef%@%@"),
    (f"description uses {KNOWN} by mistake", KNOWN),
])
def test_secret_values_are_masked(line: str, hidden: str) -> None:
    out = Redactor([KNOWN]).config(line)
    assert hidden not in out
    assert MASK in out


def test_ordinary_lines_are_kept() -> None:
    text = "interface GigabitEthernet0/1\n description uplink to core\n ip address 10.0.0.1 255.255.255.0"
    assert Redactor([KNOWN]).config(text) == text


def test_messages_only_lose_known_values() -> None:
    r = Redactor([KNOWN, "short"])
    assert r.known(f"auth failed for key {KNOWN}") == f"auth failed for key {MASK}"
    assert r.known("SSH key refused") == "SSH key refused"


def test_tiny_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"]).known("table cab") == "table cab"
