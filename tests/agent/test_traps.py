"""Traps sent by net-snmp's snmptrap (v1, v2c, v3) to the receiver on 127.0.0.1 become device events."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from weibao.agent.inventory.model import Device, SnmpCredential, SnmpLayer, SnmpSettings
from weibao.agent.spool import SPOOL_FILE, Spool
from weibao.agent.traps import TrapReceiver
from weibao.core.inventory import Category, Kind
from weibao.core.model import Event, EventKind

SNMPTRAP = shutil.which("snmptrap")
pytestmark = pytest.mark.skipif(SNMPTRAP is None, reason="net-snmp's snmptrap is not installed")

COMMUNITY = "trap-c0mmunity"
V3 = {"user": "trapuser", "auth": "SHA-256", "auth_key": "trap-auth-pass", "priv": "AES-128",
      "priv_key": "trap-priv-pass"}


def devices() -> list[Device]:
    v2 = SnmpSettings(credential_name="ro", credential=SnmpCredential(
        type="snmp", version="2c", community=SecretStr(COMMUNITY)))
    v3 = SnmpSettings(credential_name="v3", credential=SnmpCredential(
        type="snmp", version="3", user=V3["user"], auth_protocol="SHA-256", auth_key=SecretStr(V3["auth_key"]),
        priv_protocol="AES-128", priv_key=SecretStr(V3["priv_key"])))
    return [
        Device(name="core-sw-1", address="127.0.0.1", kind=Kind.SWITCH, category=Category.BACKBONE, snmp=v2),
        Device(name="ups-eaton", address="127.0.0.2", kind=Kind.UPS, category=Category.BUSINESS, snmp=v2),
        Device(name="ups-apc", address="127.0.0.3", kind=Kind.UPS, category=Category.BUSINESS, snmp=v2),
        Device(name="ups-v3", address="127.0.0.4", kind=Kind.UPS, category=Category.BUSINESS, snmp=v3),
    ]


V3_ARGS = ["-v3", "-u", V3["user"], "-l", "authPriv", "-a", V3["auth"], "-A", V3["auth_key"], "-x", "AES",
           "-X", V3["priv_key"], "-e", "0x80001f8880c0ffee0001"]


def v1(*trap: str) -> list[str]:
    return ["-v", "1", "-c", COMMUNITY, "--", *trap]


def v2(*trap: str) -> list[str]:
    return ["-v", "2c", "-c", COMMUNITY, "--", *trap]


async def send(port: int, source: str, args: Sequence[str]) -> None:
    """snmptrap OPTIONS --clientaddr=SOURCE 127.0.0.1:PORT TRAP... (``--`` in ``args`` splits the two)."""
    assert SNMPTRAP is not None
    cut = list(args).index("--")
    proc = await asyncio.create_subprocess_exec(
        SNMPTRAP, *args[:cut], f"--clientaddr={source}", f"127.0.0.1:{port}", *args[cut + 1:],
        env={"MIBS": "", "PATH": os.environ.get("PATH", "/usr/bin")},
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def receive(commands: list[tuple[str, list[str]]],
                  devs: list[Device] | None = None) -> tuple[list[Event], TrapReceiver]:
    got: list[Event] = []
    rx = TrapReceiver(devices() if devs is None else devs, got.append, host="127.0.0.1", port=0)
    rx.start()
    try:
        for source, args in commands:
            await send(rx.port, source, args)
        end = asyncio.get_running_loop().time() + 5
        while len(got) + rx.counters.unknown_source + rx.counters.v3_engine_learned < len(commands):
            if asyncio.get_running_loop().time() > end:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        rx.close()
    return got, rx


def test_v2c_link_down_and_up_name_the_interface() -> None:
    link = ["1.3.6.1.2.1.2.2.1.1.7", "i", "7", "1.3.6.1.2.1.2.2.1.7.7", "i", "1", "1.3.6.1.2.1.2.2.1.8.7", "i",
            "2", "1.3.6.1.2.1.31.1.1.1.1.7", "s", "GigabitEthernet0/7"]
    got, _ = asyncio.run(receive([
        ("127.0.0.1", v2("", "1.3.6.1.6.3.1.1.5.3", *link)),
        ("127.0.0.1", v2("", "1.3.6.1.6.3.1.1.5.4", *link)),
    ]))
    assert [(e.device, e.kind, e.data["trap"]) for e in got] == [
        ("core-sw-1", EventKind.TRAP, "linkDown"), ("core-sw-1", EventKind.TRAP, "linkUp")]
    assert got[0].data["ifIndex"] == 7 and got[0].data["ifName"] == "GigabitEthernet0/7"
    assert got[0].data["oid"] == "1.3.6.1.6.3.1.1.5.3"
    assert got[0].data["varbinds"]["1.3.6.1.2.1.2.2.1.8.7"] == 2


def test_v1_generic_and_enterprise_traps_including_apc_on_battery() -> None:
    got, _ = asyncio.run(receive([
        # v1: enterprise, agent-addr, generic-trap, specific-trap, uptime
        ("127.0.0.1", v1("1.3.6.1.4.1.9", "127.0.0.1", "0", "0", "")),
        ("127.0.0.3", v1("1.3.6.1.4.1.318", "127.0.0.3", "6", "5", "",
                       "1.3.6.1.4.1.318.2.3.3.0", "s", "UPS: On battery power in response to an input power problem.")),
        ("127.0.0.1", v1("1.3.6.1.4.1.9", "127.0.0.1", "2", "0", "",
                       "1.3.6.1.2.1.2.2.1.1.3", "i", "3")),
    ]))
    assert [(e.device, e.data["trap"]) for e in got] == [
        ("core-sw-1", "coldStart"), ("ups-apc", "apcUpsOnBattery"), ("core-sw-1", "linkDown")]
    assert got[1].data["oid"] == "1.3.6.1.4.1.318.0.5"
    assert got[2].data["ifIndex"] == 3
    for e in got:  # the community is a credential: it must not travel with the event
        assert COMMUNITY not in repr(e.data)


def test_v2c_ups_mib_and_apc_v2_form() -> None:
    got, _ = asyncio.run(receive([
        ("127.0.0.2", v2("", "1.3.6.1.2.1.33.2.1",
                       "1.3.6.1.2.1.33.1.2.2.0", "i", "120")),
        ("127.0.0.2", v2("", "1.3.6.1.2.1.33.2.3",
                       "1.3.6.1.2.1.33.1.6.2.1.1.4", "i", "4",
                       "1.3.6.1.2.1.33.1.6.2.1.2.4", "o", "1.3.6.1.2.1.33.1.6.3.2")),
        ("127.0.0.3", v2("", "1.3.6.1.4.1.318.0.5")),
    ]))
    assert [(e.device, e.data["trap"]) for e in got] == [
        ("ups-eaton", "upsTrapOnBattery"), ("ups-eaton", "upsTrapAlarmEntryAdded"), ("ups-apc", "apcUpsOnBattery")]
    assert got[1].data["alarm"] == "upsAlarmOnBattery"


def test_v3_traps_and_informs() -> None:
    """The first v3 trap of an unknown engine teaches the receiver its engine ID; informs work at once."""
    got, rx = asyncio.run(receive([
        ("127.0.0.4", [*V3_ARGS, "--", "", "1.3.6.1.2.1.33.2.1"]),
        ("127.0.0.4", [*V3_ARGS, "--", "", "1.3.6.1.2.1.33.2.1"]),
        ("127.0.0.4", [*V3_ARGS, "--", "", "1.3.6.1.6.3.1.1.5.2"]),
    ]))
    assert rx.counters.v3_engine_learned == 1
    assert [(e.device, e.data["trap"]) for e in got] == [("ups-v3", "upsTrapOnBattery"), ("ups-v3", "warmStart")]


def test_v3_trap_of_an_engine_named_in_the_inventory_is_received_the_first_time() -> None:
    devs = devices()
    ups = devs[-1]
    assert ups.snmp is not None
    # as a device shows it (colons); the trap below is sent with 0x80001f8880c0ffee0001
    layer = SnmpLayer(engine_id="80:00:1F:88:80:C0:FF:EE:00:01")
    devs[-1] = ups.model_copy(update={"snmp": ups.snmp.model_copy(update={"engine_id": layer.engine_id})})
    got, rx = asyncio.run(receive([("127.0.0.4", [*V3_ARGS, "--", "", "1.3.6.1.2.1.33.2.1"])], devs))
    assert rx.counters.v3_engine_learned == 0
    assert [(e.device, e.data["trap"]) for e in got] == [("ups-v3", "upsTrapOnBattery")]


def test_v3_inform_needs_no_engine_learning() -> None:
    snmpinform = shutil.which("snmpinform")
    if snmpinform is None:
        pytest.skip("snmpinform is not installed")
    inform = [a for a in V3_ARGS if a not in ("-e", "0x80001f8880c0ffee0001")]

    async def scenario() -> list[Event]:
        got: list[Event] = []
        rx = TrapReceiver(devices(), got.append, host="127.0.0.1", port=0)
        rx.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                snmpinform, *inform, "-t", "2", "-r", "2", "--clientaddr=127.0.0.4", f"127.0.0.1:{rx.port}", "",
                "1.3.6.1.6.3.1.1.5.1", env={"MIBS": ""}, stdin=asyncio.subprocess.DEVNULL)
            assert await proc.wait() == 0  # acknowledged by the receiver
        finally:
            rx.close()
        return got

    got = asyncio.run(scenario())
    assert [(e.device, e.data["trap"]) for e in got] == [("ups-v3", "coldStart")]


def test_unknown_source_and_wrong_community_are_not_kept() -> None:
    got, rx = asyncio.run(receive([
        ("127.0.0.9", v2("", "1.3.6.1.6.3.1.1.5.1")),
        ("127.0.0.1", ["-v", "2c", "-c", "not-the-community", "--", "", "1.3.6.1.6.3.1.1.5.1"]),
    ]))
    assert got == []
    assert rx.counters.unknown_source == 1


def test_traps_go_to_the_spool_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)

    def store(event: Event) -> None:
        spool.append((), [event])

    async def scenario() -> None:
        rx = TrapReceiver(devices(), store, host="127.0.0.1", port=0)
        rx.start()
        try:
            await send(rx.port, "127.0.0.2", v2("", "1.3.6.1.2.1.33.2.1"))
            for _ in range(100):
                if spool.depth():
                    break
                await asyncio.sleep(0.05)
        finally:
            rx.close()

    asyncio.run(scenario())
    batch = spool.next_batch()
    assert batch is not None
    assert [(e["device"], e["kind"], e["data"]["trap"]) for e in batch.events] == [
        ("ups-eaton", "trap", "upsTrapOnBattery")]
    spool.close()
