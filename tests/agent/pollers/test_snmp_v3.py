"""SNMPv3 against net-snmp's snmpd: noAuthNoPriv, authNoPriv and authPriv with SHA-1/256/512 and AES-128/256."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb256Protocol,
    usmHMACSHAAuthProtocol,
)

from tests.peers.snmpd import V3_USERS, Snmpd, V3User, running_snmpd
from weibao.agent.inventory.model import Device, SnmpCredential, SnmpSettings
from weibao.agent.pollers.snmp import SnmpPoller
from weibao.agent.state import StateStore
from weibao.core.inventory import Category, Kind
from weibao.core.model import PollResult

pytestmark = pytest.mark.timeout(120)

_PRIV = {"AES": "AES-128", "AES-256": "AES-256"}


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Snmpd]:
    with running_snmpd() as d:
        yield d


def cred(u: V3User, *, auth_key: str | None = None, priv_key: str | None = None) -> SnmpCredential:
    kw: dict[str, object] = {"type": "snmp", "version": "3", "user": u.name}
    if u.auth:
        kw.update(auth_protocol=u.auth, auth_key=auth_key or u.auth_key)
    if u.priv:
        kw.update(priv_protocol=_PRIV[u.priv], priv_key=priv_key or u.priv_key)
    return SnmpCredential.model_validate(kw)


def device(name: str, port: int, c: SnmpCredential) -> Device:
    return Device(name=name, address="127.0.0.1", kind=Kind.SERVER, category=Category.MIS,
                  snmp=SnmpSettings(credential_name="v3", credential=c, port=port, timeout_s=1.0, retries=0,
                                    profiles=[]))


def poll_all(devices: list[Device]) -> list[PollResult]:
    async def run() -> list[PollResult]:
        poller = SnmpPoller(StateStore())
        try:
            return await poller.poll_many(devices)
        finally:
            poller.close()

    return asyncio.run(run())


def test_every_security_level_and_protocol(snmpd: Snmpd) -> None:
    results = poll_all([device(u.name, snmpd.port, cred(u)) for u in V3_USERS])
    for u, r in zip(V3_USERS, results, strict=True):
        assert r.ok, (u.name, r.errors)
        assert r.facts["sysName"] == "weibao-test-snmpd"
    levels = {cred(u).security_level for u in V3_USERS}
    assert levels == {"noAuthNoPriv", "authNoPriv", "authPriv"}


def test_wrong_keys_fail_without_showing_them(snmpd: Snmpd) -> None:
    auth_user = next(u for u in V3_USERS if u.auth == "SHA-512" and not u.priv)
    priv_user = next(u for u in V3_USERS if u.priv == "AES-256")
    bad_auth, bad_priv = poll_all([
        device("bad-auth", snmpd.port, cred(auth_user, auth_key="wrong-auth-key-1")),
        device("bad-priv", snmpd.port, cred(priv_user, priv_key="wrong-priv-key-1")),
    ])
    assert not bad_auth.ok and not bad_priv.ok
    assert [s.value for s in bad_auth.samples if s.metric == "snmp.up"] == [0.0]
    assert not bad_auth.errors[0].retryable  # refused credentials: trying again will not help
    for r in (bad_auth, bad_priv):
        text = repr(r)
        assert "wrong-auth-key-1" not in text and "wrong-priv-key-1" not in text


def test_aes256_key_localisation_matches_net_snmp(snmpd: Snmpd) -> None:
    """net-snmp's AES-256 extends the localised key the Blumenthal way; the Reeder way does not talk to it.

    The two ways differ only when the authentication hash is shorter than the 32-byte AES-256 key,
    so SHA-1 (20 bytes) is the case that tells them apart; with SHA-256/512 both work.
    """
    u = next(x for x in V3_USERS if x.priv == "AES-256" and x.auth == "SHA")
    assert u.auth_key and u.priv_key
    # net-snmp's own client agrees with its agent
    got = snmpd.snmpget("1.3.6.1.2.1.1.5.0", auth=["-v3", "-l", "authPriv", "-u", u.name, "-a", "SHA",
                                                   "-A", u.auth_key, "-x", "AES-256", "-X", u.priv_key])
    assert got == '"weibao-test-snmpd"'

    async def ask(priv_protocol: object) -> object:
        engine = SnmpEngine()
        try:
            err, status, _idx, binds = await get_cmd(
                engine,
                UsmUserData(u.name, u.auth_key, u.priv_key, authProtocol=usmHMACSHAAuthProtocol,
                            privProtocol=priv_protocol),
                await UdpTransportTarget.create(("127.0.0.1", snmpd.port), timeout=1, retries=0),
                ContextData(), ObjectType(ObjectIdentity("1.3.6.1.2.1.1.5.0")))
            return err or status or str(binds[0][1])
        finally:
            engine.close_dispatcher()

    assert asyncio.run(ask(usmAesBlumenthalCfb256Protocol)) == "weibao-test-snmpd"
    assert asyncio.run(ask(usmAesCfb256Protocol)) != "weibao-test-snmpd"
    # and the poller (which maps AES-256 to the Blumenthal variant) talks to it
    (r,) = poll_all([device("aes256", snmpd.port, cred(u))])
    assert r.ok, r.errors
