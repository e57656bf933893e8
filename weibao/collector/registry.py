"""Devices the collector knows: registered by agents (PUT /api/v1/inventory) and listed with their state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from weibao.collector import rollup
from weibao.collector.state.models import Device
from weibao.core.timeutil import from_ms, now_ms
from weibao.core.wire import InventoryRegistration

# label-less metrics shown with each device in GET /api/v1/devices
KEY_METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "snmp.up", "ssh.up", "cpu.util_pct", "mem.util_pct",
               "sys.uptime_s", "ups.on_battery", "ups.battery_charge_pct", "ups.runtime_min")


class Registry:
    """Device registration plus an in-memory set of known names (ingest asks it for every batch)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        with engine.connect() as conn:
            self._known: set[str] = set(conn.execute(select(Device.name)).scalars())

    def unknown(self, names: set[str]) -> list[str]:
        """The names that no agent has registered (asking the store for names not seen by this process)."""
        missing = names - self._known
        if not missing:
            return []
        with self.engine.connect() as conn:
            found = set(conn.execute(select(Device.name).where(Device.name.in_(missing))).scalars())
        with self._lock:
            self._known |= found
        return sorted(missing - found)

    def register(self, reg: InventoryRegistration) -> dict[str, int]:
        """Create or update every device of ``reg``; devices the agent no longer lists become inactive
        (kept: their history still counts in reports)."""
        now = now_ms()
        rows = [{"name": d.name, "site": reg.site, "agent": reg.agent, "kind": str(d.kind),
                 "category": str(d.category), "depends_on": d.depends_on,
                 "tags": json.dumps(d.tags, ensure_ascii=False),
                 "asset": json.dumps(d.asset, ensure_ascii=False, default=str),
                 "spec": d.model_dump_json(), "active": True, "registered_ms": now, "updated_ms": now}
                for d in reg.devices]
        names = [d.name for d in reg.devices]
        with self.engine.begin() as conn:
            if rows:
                ins = (postgresql.insert(Device) if conn.dialect.name == "postgresql"
                       else sqlite.insert(Device))
                keep = ("registered_ms",)
                conn.execute(ins.on_conflict_do_update(
                    index_elements=["name"],
                    set_={c: ins.excluded[c] for c in rows[0] if c not in keep and c != "name"}), rows)
            retired = conn.execute(update(Device).where(Device.agent == reg.agent, Device.name.not_in(names),
                                                        Device.active.is_(True))
                                   .values(active=False, updated_ms=now)).rowcount
        with self._lock:
            self._known |= set(names)
        return {"registered": len(rows), "retired": int(retired or 0)}

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
