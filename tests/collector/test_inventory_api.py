"""PUT /api/v1/inventory over HTTP: a registration carrying a credential is refused with 422 naming the
field, and the secret appears in no answer, no row of the state database and no log line."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.collector.conftest import registration, state_path
from tests.peers.collector import CollectorPeer
from weibao.agent.inventory import load_inventory
from weibao.agent.shipper import registration as agent_registration

SECRET = "Inv-S3cret-7f3a9c"  # a value no other part of the collector could produce by chance
OTHER_AGENT = "site-b"


def every_text(db: Path) -> str:
    """Every value of every column of every row of every table, as one text."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for t in tables
                         for row in conn.execute(f'SELECT * FROM "{t}"')  # noqa: S608  # names from sqlite_master
                         for v in row)
    finally:
        conn.close()


def assert_secret_nowhere(peer: CollectorPeer, http: httpx.Client, secret: str) -> None:
    devices = http.get("/api/v1/devices")
    assert devices.status_code == 200
    assert secret not in devices.text
    stored = every_text(state_path(peer))
    assert stored, "the state database is empty"
    assert secret not in stored
    assert secret not in peer.log()


def with_device(extra: dict[str, Any], name: str = "leaky-sw-1") -> dict[str, Any]:
    doc = registration()
    doc["devices"].append({"name": name, "address": "127.0.0.9", "kind": "switch", "category": "backbone",
                           **extra})
    return doc


# (what the device carries, the field the collector must name, the key its message must name)
LEAKS: dict[str, tuple[dict[str, Any], str, str]] = {
    "snmp-community": ({"snmp": {"version": "2c", "community": SECRET, "port": 161}}, "devices.3.snmp",
                       "community"),
    "snmp-v3-credential-block": ({"snmp": {"port": 161, "credential": {
        "version": "3", "user": "weibao", "auth_protocol": "SHA-256", "auth_key": SECRET,
        "priv_protocol": "AES-128", "priv_key": SECRET}}}, "devices.3.snmp", "credential"),
    "ssh-credential-block": ({"ssh": {"port": 22, "platform": "cisco_ios", "credential": {
        "username": "weibao", "password": SECRET, "enable_secret": SECRET}}}, "devices.3.ssh", "credential"),
    "ssh-password": ({"ssh": {"port": 22, "password": SECRET}}, "devices.3.ssh", "password"),
    "community-on-the-device": ({"community": SECRET}, "devices.3.community", "unknown field"),
    # other spellings of a credential's key, anywhere in the free-form parts
    "asset-authKey": ({"asset": {"authKey": SECRET}}, "devices.3.asset", "authKey"),
    "asset-privKey": ({"asset": {"privKey": SECRET}}, "devices.3.asset", "privKey"),
    "asset-snmp_community": ({"asset": {"snmp_community": SECRET}}, "devices.3.asset", "snmp_community"),
    "asset-communityString": ({"asset": {"communityString": SECRET}}, "devices.3.asset", "communityString"),
    "asset-pass_word": ({"asset": {"pass_word": SECRET}}, "devices.3.asset", "pass_word"),
    "asset-passwd": ({"asset": {"nested": [{"passwd": SECRET}]}}, "devices.3.asset", "nested.0.passwd"),
    "asset-api-token": ({"asset": {"api-token": SECRET}}, "devices.3.asset", "api-token"),
    # SNMP's own word for the community string: only credential_name (which names one) is set aside
    "asset-community_name": ({"asset": {"snmpCommunityName": SECRET}}, "devices.3.asset", "snmpCommunityName"),
}


@pytest.mark.parametrize("case", list(LEAKS))
def test_a_credential_in_a_registration_is_refused_and_never_kept(collector: CollectorPeer, http: httpx.Client,
                                                                  case: str) -> None:
    extra, field, named = LEAKS[case]
    r = http.put("/api/v1/inventory", json=with_device(extra))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "invalid_field"
    assert [p["field"] for p in body["problems"]] == [field], body  # refused for the credential alone
    assert named in body["problems"][0]["message"]
    assert field in body["error"]
    assert SECRET not in r.text
    # refused whole: not even the device's name was registered
    names = {d["name"] for d in http.get("/api/v1/devices").json()["devices"]}
    assert "leaky-sw-1" not in names and {"core-sw-1", "acc-sw-1", "ups-1"} <= names
    assert_secret_nowhere(collector, http, SECRET)


@pytest.fixture()
def site_b(collector: CollectorPeer) -> Iterator[httpx.Client]:
    with collector.client(collector.token(OTHER_AGENT)) as client:
        yield client


def test_the_agents_own_registration_carries_no_credential(collector: CollectorPeer, site_b: httpx.Client,
                                                           tmp_path: Path) -> None:
    """An inventory with SNMPv2c, SNMPv3 and SSH credentials, registered as the agent does it: accepted,
    the devices listed with their settings, no secret anywhere."""
    community, auth_key, priv_key, password = (f"{SECRET}-{w}" for w in ("comm", "auth", "priv", "pass"))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump({"c": community, "a": auth_key, "p": priv_key, "s": password}))
    secrets.chmod(0o600)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({
        "site": "lab-b", "secrets_file": "secrets.yaml",
        "credentials": {
            "v2": {"type": "snmp", "version": "2c", "community": "${secret:c}"},
            "v3": {"type": "snmp", "version": "3", "user": "weibao", "auth_protocol": "SHA-256",
                   "auth_key": "${secret:a}", "priv_protocol": "AES-128", "priv_key": "${secret:p}"},
            "cli": {"type": "ssh", "username": "weibao", "password": "${secret:s}"}},
        "devices": [
            {"name": "b-sw-1", "address": "127.0.0.21", "kind": "switch", "category": "backbone",
             "snmp": {"credential": "v2"}},
            {"name": "b-sw-2", "address": "127.0.0.22", "kind": "switch", "category": "backbone",
             "snmp": {"credential": "v3"}, "ssh": {"credential": "cli", "platform": "cisco_ios"}}]}))
    inventory = load_inventory(inv)
    # the loader really resolved the secrets: otherwise "nowhere" below would prove nothing
    sw2 = inventory.devices["b-sw-2"]
    assert sw2.ssh is not None and sw2.ssh.credential.password is not None
    assert sw2.ssh.credential.password.get_secret_value() == password
    body = agent_registration(inventory, OTHER_AGENT).model_dump(mode="json")
    r = site_b.put("/api/v1/inventory", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"registered": 2, "retired": 0}
    listed = {d["name"]: d for d in site_b.get("/api/v1/devices").json()["devices"]}
    assert listed["b-sw-2"]["agent"] == OTHER_AGENT and listed["b-sw-2"]["site"] == "lab-b"
    conn = sqlite3.connect(f"file:{state_path(collector)}?mode=ro", uri=True, timeout=10)
    try:
        (spec,), = conn.execute("SELECT spec FROM devices WHERE name = 'b-sw-2'").fetchall()
    finally:
        conn.close()
    assert '"platform":"cisco_ios"' in spec.replace(" ", "")  # the settings were kept, only the secrets not
    for secret in (community, auth_key, priv_key, password):
        assert secret not in r.text
        assert_secret_nowhere(collector, site_b, secret)


# a credential nested deeper, spelt with another case, or put in `asset` / `icmp` is refused as well
HIDDEN = "Hidden-S3cret-51b2"
HIDDEN_CASES: dict[str, dict[str, Any]] = {
    "nested-in-snmp": {"snmp": {"port": 161, "v3": {"auth_key": HIDDEN}}},
    "other-case": {"snmp": {"port": 161, "Community": HIDDEN}},
    "in-asset": {"asset": {"vendor": "Huawei", "password": HIDDEN}},
}


@pytest.mark.parametrize("case", list(HIDDEN_CASES))
def test_a_credential_hidden_deeper_is_refused_too(collector: CollectorPeer, http: httpx.Client,
                                                   case: str) -> None:
    r = http.put("/api/v1/inventory", json=with_device(HIDDEN_CASES[case], name=f"hidden-{case}"))
    assert r.status_code == 422, r.text
    assert "must not carry credentials" in r.text and HIDDEN not in r.text
    assert_secret_nowhere(collector, http, HIDDEN)


@pytest.mark.parametrize(("deps", "named"), [
    ({"core-sw-1": "core-sw-1"}, "core-sw-1 -> core-sw-1"),
    ({"core-sw-1": "acc-sw-1", "acc-sw-1": "core-sw-1"}, "core-sw-1 -> acc-sw-1 -> core-sw-1"),
    ({"core-sw-1": "ups-1", "ups-1": "acc-sw-1", "acc-sw-1": "core-sw-1"}, "-> core-sw-1"),
])
def test_a_device_behind_itself_is_refused(http: httpx.Client, deps: dict[str, str], named: str) -> None:
    # a device behind itself, or a circle of them, would hold its samples for ever: no ticket would open
    before = {d["name"]: d.get("depends_on") for d in http.get("/api/v1/devices").json()["devices"]}
    doc = registration()
    for d in doc["devices"]:
        d["depends_on"] = deps.get(d["name"])
    r = http.put("/api/v1/inventory", json=doc)
    assert r.status_code == 422, r.text
    assert "circle" in r.text and named in r.text
    after = {d["name"]: d.get("depends_on") for d in http.get("/api/v1/devices").json()["devices"]}
    assert after == before


def test_a_device_listed_twice_is_refused(http: httpx.Client) -> None:
    doc = registration()
    doc["devices"].append(dict(doc["devices"][0], kind="server"))
    r = http.put("/api/v1/inventory", json=doc)
    assert r.status_code == 422 and "listed twice" in r.text, r.text


def test_a_circle_through_another_agents_devices_is_refused(collector: CollectorPeer, http: httpx.Client) -> None:
    # site-c's edge switch hangs off the core switch; the core switch then named behind it closes a circle
    site_c = collector.client(collector.token("site-c"))
    r = site_c.put("/api/v1/inventory", json={"site": "lab", "agent": "site-c", "devices": [
        {"name": "edge-c-1", "address": "127.0.0.1", "kind": "switch", "category": "backbone",
         "depends_on": "core-sw-1"}]})
    assert r.status_code == 200, r.text
    doc = registration()
    doc["devices"][0]["depends_on"] = "edge-c-1"
    r = http.put("/api/v1/inventory", json=doc)
    assert r.status_code == 422 and "core-sw-1 -> edge-c-1 -> core-sw-1" in r.text, r.text
    # a circle kept from before this check existed (written into the store directly here): the agent's
    # unchanged registration is still taken (its devices are evaluated without an upstream), while a new
    # circle beside it is refused
    db = sqlite3.connect(state_path(collector))
    try:
        with db:
            db.execute("UPDATE devices SET depends_on = 'edge-c-1' WHERE name = 'core-sw-1'")
    finally:
        db.close()
    assert http.put("/api/v1/inventory", json=doc).status_code == 200
    doc["devices"][2]["depends_on"] = "edge-c-2"
    r = site_c.put("/api/v1/inventory", json={"site": "lab", "agent": "site-c", "devices": [
        {"name": "edge-c-1", "address": "127.0.0.1", "kind": "switch", "category": "backbone",
         "depends_on": "core-sw-1"},
        {"name": "edge-c-2", "address": "127.0.0.1", "kind": "switch", "category": "backbone",
         "depends_on": "ups-1"}]})
    assert r.status_code == 200, r.text
    r = http.put("/api/v1/inventory", json=doc)
    assert r.status_code == 422 and "ups-1 -> edge-c-2 -> ups-1" in r.text, r.text
    doc["devices"][2]["depends_on"] = None
    # an upstream another agent registers later is taken (agents register in any order)
    doc["devices"][0]["depends_on"] = "not-yet-registered"
    assert http.put("/api/v1/inventory", json=doc).status_code == 200
    assert http.put("/api/v1/inventory", json=registration()).status_code == 200
    assert site_c.put("/api/v1/inventory", json={"site": "lab", "agent": "site-c", "devices": []}).status_code == 200
    site_c.close()


def test_a_chain_deeper_than_the_bound_is_refused(collector: CollectorPeer) -> None:
    # each device behind the one before: 16 upstreams above the last is the most a registration may make
    client = collector.client(collector.token("site-chain"))

    def chain(n: int) -> dict[str, Any]:
        return {"site": "lab", "agent": "site-chain", "devices": [
            {"name": f"ch-{i}", "address": "127.0.0.1", "kind": "switch", "category": "backbone",
             "depends_on": f"ch-{i - 1}" if i else None} for i in range(n)]}

    assert client.put("/api/v1/inventory", json=chain(17)).status_code == 200  # ch-16 has 16 above it
    r = client.put("/api/v1/inventory", json=chain(18))
    assert r.status_code == 422 and "ch-17 would sit 17 devices deep" in r.text, r.text
    # what an agent sees of the devices: its own only; another site's series is refused
    names = {d["name"] for d in client.get("/api/v1/devices").json()["devices"]}
    assert names == {f"ch-{i}" for i in range(17)}
    assert client.get("/api/v1/series", params={"device": "core-sw-1", "metric": "up"}).status_code == 403
    assert client.get("/api/v1/series", params={"device": "ch-3", "metric": "up"}).status_code == 200
    empty = {"site": "lab", "agent": "site-chain", "devices": []}
    assert client.put("/api/v1/inventory", json=empty).status_code == 200
    client.close()
