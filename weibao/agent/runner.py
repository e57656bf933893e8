"""One polling round over chosen devices and protocols, and the derived ``up`` metric."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path

from weibao.agent.inventory import Device
from weibao.agent.pollers.registry import POLLERS, Poller
from weibao.agent.state import StateStore
from weibao.core.model import PollResult, Protocol, Sample, utcnow

log = logging.getLogger(__name__)

ALL_PROTOCOLS: frozenset[str] = frozenset(POLLERS)


def _answered(result: PollResult) -> bool | None:
    """Whether this result shows the device answering; None when the protocol says nothing either way."""
    if result.protocol is Protocol.ICMP:
        for s in result.samples:
            if s.metric == "icmp.loss_pct":
                return s.value < 100.0
        return None if result.errors else False
    metric = f"{result.protocol.value}.up"
    for s in result.samples:
        if s.metric == metric:
            return s.value >= 1.0
    return None


ICMP_TRUST_S = 24 * 3600.0
_ICMP_LAST_OK = "up.icmp_last_ok"


def derive_up(device: Device, results: Sequence[PollResult], ts: datetime,
              state: StateStore | None = None) -> Sample | None:
    """``up``: 1 when the device answered, 0 when it did not; None when this round cannot tell.

    ICMP and SNMP decide (SSH runs daily, and a refused login is not an outage). When both ran in this
    round, either answering means up. The agent daemon runs them on separate schedules, and there the
    answers must not fight (a router that pings but whose SNMP agent is dead would flap): ICMP decides
    for a device whose ICMP answered within the last day, SNMP decides for a device without ICMP or
    whose ICMP never answers (filtered). ``state`` remembers when ICMP last answered.
    """
    mine = [r for r in results if r.device == device.name]
    icmp = next((v for r in mine if r.protocol is Protocol.ICMP and (v := _answered(r)) is not None), None)
    snmp = next((v for r in mine if r.protocol is Protocol.SNMP and (v := _answered(r)) is not None), None)
    now = ts.timestamp()
    last_ok = state.get(device.name, _ICMP_LAST_OK) if state is not None else None
    if icmp and state is not None:
        state.put(device.name, _ICMP_LAST_OK, now)
    icmp_trusted = bool(icmp) or (isinstance(last_ok, int | float) and now - last_ok < ICMP_TRUST_S)
    if icmp is not None and snmp is not None:
        verdict: bool | None = icmp or snmp
    elif icmp is not None:
        verdict = icmp if (icmp_trusted or device.snmp is None) else None
    elif snmp is not None:
        verdict = snmp if (device.icmp is None or not icmp_trusted) else None
    else:
        verdict = None
    return None if verdict is None else Sample(device.name, "up", 1.0 if verdict else 0.0, ts)


async def poll_once(devices: Sequence[Device], protocols: Collection[str] = ALL_PROTOCOLS,
                    state: StateStore | None = None, config_dir: Path | None = None) -> list[PollResult]:
    """Poll every device once with each chosen protocol, all protocols concurrently.

    Returns the pollers' results plus, per device, an ICMP/SNMP-derived ``up`` sample appended to the
    first result of that device. Never raises for a device failure.
    """
    state = state if state is not None else StateStore()
    ts = utcnow()
    pollers: list[Poller] = []
    jobs: list[asyncio.Task[list[PollResult]]] = []
    for spec in POLLERS.values():
        targets = [d for d in devices if spec.polls(d)] if spec.name in protocols else []
        if targets:
            poller = spec.factory(state, config_dir)
            pollers.append(poller)
            jobs.append(asyncio.create_task(poller.poll_many(targets)))
    try:
        batches = await asyncio.gather(*jobs)
    finally:
        for poller in pollers:
            poller.close()
    results = [r for batch in batches for r in batch]
    by_device: dict[str, list[PollResult]] = {}
    for r in results:
        by_device.setdefault(r.device, []).append(r)
    for device in devices:
        mine = by_device.get(device.name, [])
        up = derive_up(device, mine, ts, state)
        if up is not None and mine:
            mine[0].samples.append(up)
    return results
