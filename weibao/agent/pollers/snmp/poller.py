"""The SNMP poller: one round for one device or many, as PollResults of the metric vocabulary.

Per device: one GET of sysDescr/sysObjectID/sysUpTime/sysName (plus the scalars of the profiles it
had last time), the profiles chosen by sysObjectID/sysDescr (or forced by ``snmp.profiles``), the
remaining scalars by GET and every table column by GETBULK. A profile whose OIDs the device lacks
is remembered in the StateStore and skipped quietly until ``RECHECK_ABSENT_S`` has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from weibao.agent.errors import PollFailure
from weibao.agent.inventory.model import Device
from weibao.agent.pollers.snmp.collect import Collected, Counters, collect_profile, profile_absent
from weibao.agent.pollers.snmp.profiles import Profile, load_profiles, select
from weibao.agent.pollers.snmp.transport import Missing, Oid, SnmpTransport, Target
from weibao.agent.pollers.snmp.walk import Rows, get_scalars, longest_column, walk_columns
from weibao.agent.state import StateStore
from weibao.core.model import Event, EventKind, PollResult, Protocol, Sample, utcnow

log = logging.getLogger(__name__)

RECHECK_ABSENT_S = 6 * 3600.0
UPTIME_WRAP_S = 2**32 / 100  # sysUpTime is TimeTicks: it wraps after ~497 days

# state keys (per device)
K_COUNTERS = "snmp.counters"
K_UPTIME = "snmp.uptime"
K_ABSENT = "snmp.absent"
K_PROFILES = "snmp.profiles"
K_ROWS = "snmp.rows"


class SnmpPoller:
    """Polls devices over SNMP v1/v2c/v3; never raises for a device, returns a result with an error."""

    def __init__(self, state: StateStore, *, max_in_flight: int = 32,
                 profiles: dict[str, Profile] | None = None, pysnmp_for_community: bool = False) -> None:
        self.state = state
        self.profiles = profiles if profiles is not None else load_profiles()
        # more requests in flight than the process can decode makes pysnmp time out while agents idle
        self.max_in_flight = max_in_flight
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._transport = SnmpTransport(pysnmp_for_community=pysnmp_for_community)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self.max_in_flight), loop
        return self._slots

    async def poll_many(self, devices: Sequence[Device]) -> list[PollResult]:
        """Every device, concurrently but bounded; results in input order."""
        return list(await asyncio.gather(*(self.poll(d) for d in devices)))

    async def poll(self, device: Device) -> PollResult:
        result = PollResult(device.name, Protocol.SNMP)
        if device.snmp is None:
            return result.fail("SNMP is not configured for this device", retryable=False)
        s = device.snmp
        # a whole poll may take several requests; the per-request timeout bounds each, this bounds all
        budget = max(device.schedule.timeout_s, s.timeout_s * (s.retries + 1) * 2)
        async with self._semaphore():
            try:
                await asyncio.wait_for(self._poll(device, result), budget)
            except TimeoutError:
                result.fail(f"SNMP poll did not finish within {budget:g} s")
            except PollFailure as exc:
                result.fail(str(exc), retryable=exc.retryable)
            except Exception as exc:  # a bug or an agent answering nonsense must not stop the round
                log.exception("SNMP poll of %s failed unexpectedly", device.name)
                result.fail(f"SNMP poll failed: {type(exc).__name__}: {exc}")
        if not any(x.metric == "snmp.up" for x in result.samples):
            result.samples.insert(0, Sample(device.name, "snmp.up", 0.0, utcnow()))
        return result

    async def _poll(self, device: Device, result: PollResult) -> None:
        assert device.snmp is not None
        s = device.snmp
        target = Target(device.address, s.port, s.timeout_s, s.retries, self._transport.auth_for(s.credential))
        ts, now = utcnow(), time.time()
        system = self.profiles["system"]
        remembered = [self.profiles[n] for n in self.state.get(device.name, K_PROFILES, []) or []
                      if n in self.profiles and n != "system"]
        absent: dict[str, float] = dict(self.state.get(device.name, K_ABSENT, {}) or {})

        def wanted(p: Profile) -> bool:
            return now - absent.get(p.name, 0.0) >= RECHECK_ABSENT_S

        first = [c.oid for c in system.scalars] + [c.oid for p in remembered if wanted(p) for c in p.scalars]
        scalars = await get_scalars(self._transport, target, first)
        result.samples.append(Sample(device.name, "snmp.up", 1.0, ts))

        def text(name: str) -> str | None:
            col = next((c for c in system.scalars if c.name == name), None)
            v = scalars.get(col.oid) if col else None
            return None if v is None or isinstance(v, Missing) else str(v)

        chosen = select(self.profiles, text("sysObjectID"), text("sysDescr"), s.profiles)
        active = [p for p in chosen if p.name == "system" or wanted(p)]
        missing = [c.oid for p in active for c in p.scalars if c.oid not in scalars]
        if missing:
            scalars.update(await get_scalars(self._transport, target, missing))
        walked = True
        try:
            rows = await self._walk(device, target, active)
        except PollFailure as exc:
            # the device answered its scalars: keep them, report the tables as failed
            result.fail(f"table walk failed: {exc}", retryable=exc.retryable)
            rows, walked = {}, False

        counters = Counters(prev=self._prev_counters(device.name), prev_ts=None, now_ts=now)
        prev_state = self.state.get(device.name, K_COUNTERS)
        if isinstance(prev_state, dict) and isinstance(prev_state.get("ts"), int | float):
            counters.prev_ts = float(prev_state["ts"])
        out = Collected()
        for p in active:  # "system" comes first: a reboot is known before any rate is taken
            if p.name != "system" and walked and profile_absent(p, scalars, rows):
                absent[p.name] = now
                log.debug("%s lacks the %s profile's MIB; skipping it for a while", device.name, p.name)
                continue
            absent.pop(p.name, None)
            collect_profile(device.name, ts, p, scalars, rows, counters, out)
            if p.name == "system" and self._check_reboot(device.name, out, now, result):
                counters.prev = {}  # counters restarted with the device: no rates across a reboot
        result.samples.extend(out.samples)
        result.facts.update(out.facts)
        result.facts["profiles"] = [p.name for p in active if p.name not in absent]
        self.state.put(device.name, K_COUNTERS, counters.state())
        self.state.put(device.name, K_ABSENT, absent)
        self.state.put(device.name, K_PROFILES, [p.name for p in chosen if p.name != "system"])

    async def _walk(self, device: Device, target: Target, active: list[Profile]) -> Rows:
        assert device.snmp is not None
        v1 = device.snmp.credential.version == "1"
        # SNMPv1 cannot carry a Counter64 (RFC 2576 4.1.2.1): a v1 agent never answers those columns, and
        # a proxy or simulator that holds them makes every GETNEXT naming one skip value after value
        columns: list[Oid] = list(dict.fromkeys(c.oid for p in active for t in p.tables for c in t.columns
                                                if not (v1 and c.counter == 64)))
        if not columns:
            return {}
        hint = self.state.get(device.name, K_ROWS)
        rows = await walk_columns(self._transport, target, columns, max_repetitions=device.snmp.max_repetitions,
                                  use_bulk=not v1,
                                  rows_hint=hint if isinstance(hint, int) else None)
        self.state.put(device.name, K_ROWS, longest_column(rows))
        return rows

    def _prev_counters(self, device: str) -> dict[str, int]:
        st = self.state.get(device, K_COUNTERS)
        if isinstance(st, dict) and isinstance(st.get("v"), dict):
            return {k: v for k, v in st["v"].items() if isinstance(v, int)}
        return {}

    def _check_reboot(self, device: str, out: Collected, now: float, result: PollResult) -> bool:
        uptime = next((x.value for x in out.samples if x.metric == "sys.uptime_s"), None)
        if uptime is None:
            return False
        prev = self.state.get(device, K_UPTIME)
        self.state.put(device, K_UPTIME, {"uptime_s": uptime, "ts": now})
        if not isinstance(prev, dict) or not isinstance(prev.get("uptime_s"), int | float):
            return False
        before = float(prev["uptime_s"])
        if uptime >= before:
            return False
        expected = before + (now - float(prev.get("ts", now)))
        if expected >= UPTIME_WRAP_S - 600 and uptime < 3600:
            return False  # TimeTicks wrapped after ~497 days: not a reboot
        result.events.append(Event(device, EventKind.REBOOTED, utcnow(),
                                   {"previous_uptime_s": before, "uptime_s": uptime}))
        return True

    def close(self) -> None:
        self._transport.close()

