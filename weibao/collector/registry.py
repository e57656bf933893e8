"""Devices the collector knows, and which agent each belongs to: registration, ownership, moves, states.

A device belongs to the agent that registered it first (PUT /api/v1/inventory). Another agent's
registration of it, or its samples and events, are refused with 403 naming the device: a token that
leaks cannot re-register the client's devices with another site, kind or contract category, nor feed
them samples. A device no longer listed by its agent becomes inactive but stays its own. Moving it to
another agent is an explicit admin action (``weibao devices move``, ``move``): recorded in
``device_moves`` with who did it, and logged by every collector that notices it.

Ingest asks ``check`` for every batch. Owners are cached per process; the newest ``device_moves`` id
(one index lookup per batch) says when the cache is stale, so a move made by another process (the CLI,
another worker or collector) takes effect at the next batch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from weibao.collector import rollup
from weibao.collector.errors import Refused
from weibao.collector.state.models import Device, DeviceMove
from weibao.collector.validate import MAX_PROBLEMS
from weibao.core.timeutil import from_ms, now_ms
from weibao.core.wire import InventoryRegistration

log = logging.getLogger(__name__)

# label-less metrics shown with each device in GET /api/v1/devices
KEY_METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "snmp.up", "ssh.up", "cpu.util_pct", "mem.util_pct",
               "sys.uptime_s", "ups.on_battery", "ups.battery_charge_pct", "ups.runtime_min")


@dataclass(frozen=True, slots=True)
class Move:
    """One device handed from one agent to another by an admin."""

    id: int
    device: str
    from_agent: str
    to_agent: str
    actor: str
    at_ms: int


_NONE = object()  # a device not registered before (its dependency is new)


# how many upstreams one device may have above it (its upstream, that one's, ...): a network has a few
# tiers; a bound keeps what the engine does for one device going down (whose fault is it?) bounded
MAX_CHAIN = 16


def chain_depths(upstream: dict[str, str | None]) -> dict[str, int]:
    """How many upstreams each device has above it (0 for none; a circle counts once round). Linear."""
    depth: dict[str, int] = {}
    for start in upstream:
        path: list[str] = []
        on_path: set[str] = set()
        d: str | None = start
        while d is not None and d in upstream and d not in depth and d not in on_path:
            path.append(d)
            on_path.add(d)
            d = upstream[d]
        # the last device walked: none above it, a known one, or one not registered (yet) or closing a circle
        level = 0 if d is None else depth[d] + 1 if d in depth else 1
        for name in reversed(path):
            depth[name] = level
            level += 1
    return depth


def circle_through(upstream: dict[str, str | None], device: str) -> list[str] | None:
    """The circle of ``depends_on`` that leads from ``device`` back to it (``a -> b -> a``), or None."""
    path, d = [device], upstream.get(device)
    # a longer circle is a chain deeper than MAX_CHAIN, refused as such before this is asked
    while d is not None and len(path) <= min(len(upstream), MAX_CHAIN + 1):
        path.append(d)
        if d == device:
            return path
        d = upstream.get(d)
    return None


def _shown(names: list[str]) -> str:
    return ", ".join(names[:MAX_PROBLEMS]) + (" ..." if len(names) > MAX_PROBLEMS else "")


def foreign(devices: dict[str, str], agent: str, what: str) -> Refused:
    """403 for ``devices`` (name -> owning agent) that ``agent`` may not send ``what`` for."""
    names = sorted(devices)
    owners = sorted(set(devices.values()))
    return Refused(403, "foreign_device",
                   f"device(s) {_shown(names)} belong to agent(s) {', '.join(owners[:5])}, not {agent}: this "
                   f"token may not send {what} for them (an admin moves a device with 'weibao devices move')",
                   [{"field": "device", "message": f"{n!r} belongs to agent {devices[n]!r}"}
                    for n in names[:MAX_PROBLEMS]])


class Registry:
    """Registration and ownership, with a per-process cache of owners (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        with engine.connect() as conn:
            self._owner: dict[str, str] = {r.name: r.agent for r in conn.execute(select(Device.name, Device.agent))}
            self._moves = self._last_move(conn)

    @staticmethod
    def _last_move(conn: Connection) -> int:
        return int(conn.execute(select(func.max(DeviceMove.id))).scalar() or 0)

    def _refresh(self) -> None:
        """Forget cached owners when a move was recorded since they were read (and log the moves)."""
        with self.engine.connect() as conn:
            last = self._last_move(conn)
            if last == self._moves:
                return
            moves = conn.execute(select(DeviceMove.device, DeviceMove.from_agent, DeviceMove.to_agent,
                                        DeviceMove.actor).where(DeviceMove.id > self._moves)
                                 .order_by(DeviceMove.id)).all()
        with self._lock:
            if last <= self._moves:
                return
            for m in moves:
                log.warning("device %s now belongs to agent %s (moved from %s by %s)", m.device, m.to_agent,
                            m.from_agent, m.actor)
                self._owner.pop(m.device, None)
            self._moves = last

    def owners(self, names: Iterable[str]) -> dict[str, str]:
        """name -> owning agent for the registered ones among ``names``."""
        self._refresh()
        wanted = set(names)
        cache = self._owner
        missing = wanted - cache.keys()
        if missing:
            with self.engine.connect() as conn:
                found = {r.name: r.agent for r in conn.execute(select(Device.name, Device.agent)
                                                               .where(Device.name.in_(missing)))}
            with self._lock:
                cache.update(found)
        return {n: cache[n] for n in wanted if n in cache}

    def unknown(self, names: set[str]) -> list[str]:
        """The names that no agent has registered."""
        return sorted(names - self.owners(names).keys())

    def check(self, agent: str, names: set[str]) -> None:
        """Refuse (422 unknown, 403 another agent's) unless every device of ``names`` belongs to ``agent``."""
        owners = self.owners(names)
        unknown = sorted(names - owners.keys())
        if unknown:
            raise Refused(422, "unknown_device", f"unknown device(s), not registered by any agent: {_shown(unknown)}",
                          [{"field": "device", "message": f"unknown device {n!r}"} for n in unknown[:MAX_PROBLEMS]])
        others = {n: a for n, a in owners.items() if a != agent}
        if others:
            raise foreign(others, agent, "samples or events")

    def register(self, reg: InventoryRegistration) -> dict[str, int]:
        """Create or update every device of ``reg``; devices the agent no longer lists become inactive
        (kept: their history still counts in reports). Refused (403, nothing changed) when any device
        belongs to another agent."""
        now = now_ms()
        rows = [{"name": d.name, "site": reg.site, "agent": reg.agent, "kind": str(d.kind),
                 "category": str(d.category), "depends_on": d.depends_on,
                 "tags": json.dumps(d.tags, ensure_ascii=False),
                 "asset": json.dumps(d.asset, ensure_ascii=False, default=str),
                 "spec": d.model_dump_json(), "active": True, "registered_ms": now, "updated_ms": now}
                for d in reg.devices]
        names = [d.name for d in reg.devices]
        with self.engine.begin() as conn:
            before = self._upstream(conn)
            if rows:
                ins = (postgresql.insert(Device) if conn.dialect.name == "postgresql"
                       else sqlite.insert(Device))
                keep = ("registered_ms",)
                # another agent's row is never overwritten, even by a registration racing this check
                conn.execute(ins.on_conflict_do_update(
                    index_elements=["name"],
                    set_={c: ins.excluded[c] for c in rows[0] if c not in keep and c != "name"},
                    where=Device.agent == ins.excluded.agent), rows)
                others = self._foreign_rows(conn, reg.agent, names)
                if others:  # raised inside the transaction: nothing of this registration is kept
                    raise foreign(others, reg.agent, "a registration")
            retired = conn.execute(update(Device).where(Device.agent == reg.agent, Device.name.not_in(names),
                                                        Device.active.is_(True))
                                   .values(active=False, updated_ms=now)).rowcount
            # the registration itself has no circle (its model checks); with other agents' devices it may
            upstream = self._upstream(conn)
            deep = chain_depths(upstream)
            deepest = max(deep, key=lambda n: deep[n], default=None)
            if deepest is not None and deep[deepest] > MAX_CHAIN \
                    and deep[deepest] > max(chain_depths(before).values(), default=0):
                raise Refused(422, "invalid", f"{deepest} would sit {deep[deepest]} devices deep behind "
                              f"depends_on: at most {MAX_CHAIN} (core, distribution, access... a real network "
                              "is a few levels deep)")
            for d in reg.devices:
                if d.depends_on is None or before.get(d.name, _NONE) == d.depends_on:
                    continue  # only a new or changed dependency is checked: one kept from before stays
                circle = circle_through(upstream, d.name)
                if circle:
                    raise Refused(422, "invalid", "depends_on goes round in a circle with other agents' "
                                  "devices: " + " -> ".join(circle))
        with self._lock:
            self._owner.update(dict.fromkeys(names, reg.agent))
        return {"registered": len(rows), "retired": int(retired or 0)}

    @staticmethod
    def _upstream(conn: Connection) -> dict[str, str | None]:
        """Every active device's upstream (``depends_on``)."""
        return {r.name: r.depends_on for r in conn.execute(select(Device.name, Device.depends_on)
                                                           .where(Device.active.is_(True)))}

    @staticmethod
    def _foreign_rows(conn: Connection, agent: str, names: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(names), 10_000):  # bounded statement size
            chunk = names[i:i + 10_000]
            out.update({r.name: r.agent for r in conn.execute(select(Device.name, Device.agent)
                                                              .where(Device.name.in_(chunk), Device.agent != agent))})
        return out

    def move(self, device: str, to_agent: str, *, actor: str) -> Move:
        """Hand ``device`` to ``to_agent`` (an admin's decision, recorded with ``actor``). The device stays
        inactive until its new agent registers it. KeyError when no agent registered it."""
        now = now_ms()
        with self.engine.begin() as conn:
            row = conn.execute(select(Device.agent).where(Device.name == device).with_for_update()).first()
            if row is None:
                raise KeyError(device)
            conn.execute(update(Device).where(Device.name == device)
                         .values(agent=to_agent, active=False, updated_ms=now))
            move_id = conn.execute(insert(DeviceMove).values(
                device=device, from_agent=row.agent, to_agent=to_agent, actor=actor, at_ms=now)
                .returning(DeviceMove.id)).scalar_one()
        log.warning("device %s moved from agent %s to agent %s by %s", device, row.agent, to_agent, actor)
        return Move(int(move_id), device, row.agent, to_agent, actor, now)

    def listing(self) -> list[dict[str, Any]]:
        """Every registered device with its agent (for the admin CLI)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Device.name, Device.agent, Device.site, Device.kind, Device.category,
                                       Device.active, Device.updated_ms).order_by(Device.name)).all()
        return [dict(r._mapping) for r in rows]

    def states(self, metrics: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every device with its last sample time, ``up`` and the newest value of the key metrics.

        With ``metrics`` (which should include ``up``) only those are read, and the last sample time is the
        newest of theirs: the console's overview reads ``up`` alone, one series per device.
        """
        with self.engine.connect() as conn:
            devices = conn.execute(select(*Device.__table__.c).order_by(Device.name)).all()
            latest = rollup.latest(conn, metrics=metrics)
        last_seen: dict[str, int] = {}
        values: dict[str, dict[str, float]] = {}
        for r in latest:
            if r.ts_ms > last_seen.get(r.device, -1):
                last_seen[r.device] = r.ts_ms
            if r.labels == "{}" and r.metric in KEY_METRICS:
                values.setdefault(r.device, {})[r.metric] = r.value
        out = []
        for d in devices:
            seen = last_seen.get(d.name)
            vals = values.get(d.name, {})
            up = vals.get("up")
            out.append({"name": d.name, "site": d.site, "agent": d.agent, "kind": d.kind,
                        "category": d.category, "depends_on": d.depends_on, "tags": json.loads(d.tags),
                        "asset": json.loads(d.asset), "active": d.active,
                        "last_seen": None if seen is None else from_ms(seen).isoformat(),
                        "up": None if up is None else up >= 1, "latest": vals})
        return out
