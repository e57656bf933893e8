"""snmpsim serving snmpsim-data recordings on loopback (a thin wrapper of weibao.embedded.simlab for tests)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from weibao.agent.inventory.model import Device, SnmpCredential, SnmpSettings
from weibao.core.inventory import Category, Kind
from weibao.embedded.simlab import SnmpSim, data_roots, read_recording

__all__ = ["device_for", "read_recording", "running_snmpsim"]


@contextmanager
def running_snmpsim(recordings: Mapping[str, str], *, start_timeout_s: float = 60.0) -> Iterator[SnmpSim]:
    if not data_roots():
        pytest.skip("snmpsim-data is not installed (pip install snmpsim-data)")
    # installed but failing to start is the demo's own code failing (weibao.embedded.simlab): a failure,
    # never a skip
    sim = SnmpSim(recordings, start_timeout_s=start_timeout_s).start()
    try:
        yield sim
    finally:
        sim.stop()


def device_for(sim: SnmpSim, name: str, *, timeout_s: float = 3.0, retries: int = 1,
               profiles: list[str] | None = None, version: str = "2c") -> Device:
    cred = SnmpCredential(type="snmp", version=version, community=sim.community_for(name))
    return Device(name=name, address=sim.host, kind=Kind.OTHER, category=Category.MIS,
                  snmp=SnmpSettings(credential_name="sim", credential=cred, port=sim.port,
                                    timeout_s=timeout_s, retries=retries, profiles=profiles))
