"""Faults that do not come from the reachability table: a UPS on battery, and inspection dangers that persist.

- A trap saying a UPS switched to battery (UPS-MIB ``upsTrapOnBattery``, APC ``apcUpsOnBattery``, or an
  ``upsTrapAlarmEntryAdded`` for ``upsAlarmOnBattery``) opens a level-3 ticket (rule ``ups_on_battery``)
  for that device at once, before the next poll; a poll with ``ups.on_battery`` = 1 does the same. The
  ticket is restored by a power-restored trap (``apcPowerRestored``, ``upsTrapAlarmEntryRemoved`` of the
  on-battery alarm) or by a poll with ``ups.on_battery`` = 0 taken after the ticket opened.
- ``linkDown`` / ``linkUp`` traps are added as comments to the device's open ticket, if it has one.
- A threshold check of the inspection rules (any severity but info) that holds on every sample of a
  series for ``inspection_danger_after`` (24 h by contract) opens a level-3 ticket whose rule is the
  check's id; the ticket is restored when no series of that device and check holds any more. The
  "since" times are kept in the state store (``danger_timers``): a restart does not start the 24 h again.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from weibao.collector.state.models import DangerTimer
from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import later
from weibao.collector.tickets.model import TicketError, TicketState
from weibao.collector.tickets.ops import ACTIVE, TicketOps
from weibao.core.inspection.model import Severity
from weibao.core.inspection.rules import ThresholdCheck
from weibao.core.model import Sample
from weibao.core.timeutil import SHANGHAI, from_ms, to_ms

log = logging.getLogger(__name__)

UPS_RULE = "ups_on_battery"
UPS_METRIC = "ups.on_battery"
ON_BATTERY_TRAPS = frozenset({"upsTrapOnBattery", "apcUpsOnBattery"})
POWER_BACK_TRAPS = frozenset({"apcPowerRestored"})
ON_BATTERY_ALARM = "upsAlarmOnBattery"
LINK_TRAPS = frozenset({"linkDown", "linkUp"})


class Extras:
    """UPS on battery and persistent inspection dangers (see the module docstring)."""

    def __init__(self, ops: TicketOps, checks: tuple[ThresholdCheck, ...], danger_after: timedelta,
                 reopen_window: timedelta) -> None:
        self.ops = ops
        self.danger_after = danger_after
        self.window = reopen_window
        self.checks: dict[str, list[ThresholdCheck]] = defaultdict(list)
        for c in checks:
            self.checks[c.metric].append(c)
        self.metrics = frozenset({UPS_METRIC, *self.checks})
        self._since: dict[tuple[str, str, str], datetime] = self._load_timers()
        # timers started (since) or stopped (None) and not stored yet: see ``batch``
        self._unsaved: dict[tuple[str, str, str], datetime | None] = {}
        self._batched = 0
        self._ticketed: set[tuple[str, str]] = set()
        ids = {c.id for c in checks}
        for t in ops.store.find(state=list(ACTIVE), limit=100_000):
            if t.rule in ids:
                self._ticketed.add((t.device, t.rule))

    # -- timers kept across restarts ---------------------------------------------------------------------
    def _load_timers(self) -> dict[tuple[str, str, str], datetime]:
        with self.ops.store.engine.connect() as conn:
            rows = conn.execute(select(DangerTimer.device, DangerTimer.check_id, DangerTimer.labels,
                                       DangerTimer.since_ms)).all()
        return {(r.device, r.check_id, r.labels): from_ms(r.since_ms, SHANGHAI) for r in rows}

    def _start_timer(self, key: tuple[str, str, str], since: datetime) -> None:
        self._since[key] = since
        self._unsaved[key] = since
        if not self._batched:
            self._flush()

    def _stop_timer(self, key: tuple[str, str, str]) -> datetime | None:
        since = self._since.pop(key, None)
        if since is not None:
            self._unsaved[key] = None
            if not self._batched:
                self._flush()
        return since

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within it, timers started and stopped are stored once, at its end, in one transaction (the
        engine takes an ingested batch as a whole); outside, each is stored at once."""
        self._batched += 1
        try:
            yield
        finally:
            self._batched -= 1
            if not self._batched:
                self._flush()

    def _flush(self) -> None:
        if not self._unsaved:
            return
        changed, self._unsaved = self._unsaved, {}
        with self.ops.store.writing() as s:  # within the engine's unit of work when there is one
            for key, since in changed.items():
                s.execute(delete(DangerTimer).where(*self._where(key)))
                if since is not None:
                    s.execute(insert(DangerTimer).values(device=key[0], check_id=key[1], labels=key[2],
                                                            since_ms=to_ms(since)))

    @staticmethod
    def _where(key: tuple[str, str, str]) -> tuple[Any, ...]:
        return (DangerTimer.device == key[0], DangerTimer.check_id == key[1], DangerTimer.labels == key[2])

    # -- events --------------------------------------------------------------------------------------------
    def event(self, device: str, kind: str, ts: datetime, data: Mapping[str, Any]) -> None:
        if kind != "trap":
            return
        trap = str(data.get("trap", ""))
        alarm = str(data.get("alarm", ""))
        try:
            if trap in ON_BATTERY_TRAPS or (trap == "upsTrapAlarmEntryAdded" and alarm == ON_BATTERY_ALARM):
                self.on_battery(device, ts, f"trap {trap}")
            elif trap in POWER_BACK_TRAPS or (trap == "upsTrapAlarmEntryRemoved" and alarm == ON_BATTERY_ALARM):
                self.power_back(device, ts, f"trap {trap}")
            elif trap in LINK_TRAPS:
                self._link(device, ts, trap, data)
        except TicketError as exc:
            log.warning("trap %s from %s: %s", trap, device, exc)

    def _link(self, device: str, ts: datetime, trap: str, data: Mapping[str, Any]) -> None:
        ticket = self.ops.active(device)
        if ticket is None:
            return
        where = data.get("ifName") or data.get("ifDescr") or data.get("ifIndex") or "?"
        note = f"trap {trap} interface {where} at {ts.isoformat()}"
        self.ops.change(ticket.id, lambda t: machine.comment(t, at=later(t, ts), actor="system", note=note))

    def on_battery(self, device: str, ts: datetime, why: str) -> None:
        if self.ops.active(device, [UPS_RULE]) is not None:
            return
        prior = self.ops.active(device, [UPS_RULE], states=(TicketState.RESTORED,))
        if prior is not None and machine.reopen_due(prior, ts, window=self.window):
            self.ops.change(prior.id, lambda t: machine.reopen(t, at=later(t, ts), window=self.window, note=why))
            return
        self.ops.open(device=device, rule=UPS_RULE, at=ts, episode=f"{device}/{UPS_RULE}/{ts.isoformat()}",
                      note=f"UPS on battery ({why})")

    def power_back(self, device: str, ts: datetime, why: str) -> None:
        ticket = self.ops.active(device, [UPS_RULE])
        if ticket is None or ts <= ticket.opened_at:
            return
        self.ops.change(ticket.id, lambda t: machine.restore(t, at=later(t, ts), note=f"mains power back ({why})"))

    # -- samples -------------------------------------------------------------------------------------------
    def sample(self, s: Sample, kind: str | None) -> None:
        try:
            if s.metric == UPS_METRIC:
                if s.value >= 1:
                    self.on_battery(s.device, s.ts, "poll")
                else:
                    self.power_back(s.device, s.ts, "poll")
            for check in self.checks.get(s.metric, ()):
                if kind is None or check.applies_to(kind):
                    self._danger(check, s)
        except TicketError as exc:
            log.warning("%s %s: %s", s.device, s.metric, exc)

    def _danger(self, check: ThresholdCheck, s: Sample) -> None:
        labels = json.dumps(dict(s.labels), sort_keys=True, separators=(",", ":")) if s.labels else "{}"
        key = (s.device, check.id, labels)
        held = check.level_of(s.value)
        if held is not None and held[0] is not Severity.INFO:
            since = self._since.get(key)
            if since is None:
                since = s.ts
                self._start_timer(key, since)
            if s.ts - since >= self.danger_after and (s.device, check.id) not in self._ticketed:
                self._open_danger(check, s, since, held[0], held[1], labels)
            return
        if self._stop_timer(key) is None or (s.device, check.id) not in self._ticketed:
            return
        if any(k[0] == s.device and k[1] == check.id for k in self._since):
            return
        self._ticketed.discard((s.device, check.id))
        ticket = self.ops.active(s.device, [check.id])
        if ticket is not None:
            self.ops.change(ticket.id, lambda t: machine.restore(
                t, at=later(t, s.ts), note=f"{check.metric} back within limits ({s.value:g})"))

    def _open_danger(self, check: ThresholdCheck, s: Sample, since: datetime, severity: Severity,
                     limit: float, labels: str) -> None:
        self._ticketed.add((s.device, check.id))
        if self.ops.active(s.device, [check.id]) is not None:
            return
        at = since + self.danger_after
        where = f" {labels}" if labels != "{}" else ""
        note = (f"hidden danger {check.id}{where}: {check.metric} {check.op} {limit:g} ({severity.value}) "
                f"since {since.isoformat()}, now {s.value:g}")
        self.ops.open(device=s.device, rule=check.id, at=at, episode=f"{s.device}/{check.id}/{since.isoformat()}",
                      note=note)
