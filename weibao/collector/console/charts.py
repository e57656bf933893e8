"""Which rollup series a device page charts, and the chart data: one x axis of bucket times, one line per
label set (for each series the bucket's average, as ``GET /api/v1/series`` answers it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from weibao.collector import rollup
from weibao.collector.state.models import Series
from weibao.core.timeutil import to_ms


@dataclass(frozen=True, slots=True)
class ChartSpec:
    metric: str
    title: str  # i18n key
    unit: str
    max_lines: int = 8  # labelled metrics: the label sets with the highest peaks


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("up", "chart_up", ""),
    ChartSpec("icmp.loss_pct", "chart_loss", "%"),
    ChartSpec("icmp.rtt_ms", "chart_rtt", "ms"),
    ChartSpec("cpu.util_pct", "chart_cpu", "%"),
    ChartSpec("mem.util_pct", "chart_mem", "%"),
    ChartSpec("disk.util_pct", "chart_disk", "%"),
    ChartSpec("if.util_pct", "chart_if", "%"),
    ChartSpec("ups.battery_charge_pct", "chart_ups_charge", "%"),
    ChartSpec("ups.runtime_min", "chart_ups_runtime", "min"),
    ChartSpec("ups.input_voltage_v", "chart_ups_voltage", "V"),
    ChartSpec("ups.output_load_pct", "chart_ups_load", "%"),
    ChartSpec("ups.temperature_c", "chart_ups_temp", "°C"),
    ChartSpec("temp.c", "chart_temp", "°C"),
)

# range name -> (length, rollup resolution in seconds)
RANGES: dict[str, tuple[timedelta, int]] = {
    "6h": (timedelta(hours=6), 300), "24h": (timedelta(hours=24), 300), "7d": (timedelta(days=7), 3600),
    "30d": (timedelta(days=30), 3600), "90d": (timedelta(days=90), 3600),
}
DEFAULT_RANGE = "24h"


def device_metrics(conn: Connection, device: str) -> set[str]:
    return set(conn.execute(select(Series.metric).where(Series.device == device).distinct()).scalars())


def _label(labels: dict[str, str]) -> str:
    return ", ".join(f"{v}" for _k, v in sorted(labels.items())) or "—"


def chart(conn: Connection, device: str, spec: ChartSpec, start: datetime, end: datetime,
          step: int) -> dict[str, Any] | None:
    """``{"metric", "unit", "step", "from", "to", "x": [epoch s], "lines": [{"label", "labels", "y"}]}``
    or None when the range holds no point."""
    lo, hi = to_ms(start), to_ms(end)
    found = rollup.read(conn, device=device, metric=spec.metric, resolution=step, from_ms=lo, to_ms=hi)
    found = [s for s in found if s.points]
    if not found:
        return None
    found.sort(key=lambda s: (-max(p.max for p in s.points), _label(s.labels)))
    found = found[:spec.max_lines]
    xs = sorted({p.bucket_ms for s in found for p in s.points})
    at = {x: i for i, x in enumerate(xs)}
    lines = []
    for s in sorted(found, key=lambda s: _label(s.labels)):
        y: list[float | None] = [None] * len(xs)
        for p in s.points:
            y[at[p.bucket_ms]] = p.avg
        lines.append({"label": _label(s.labels), "labels": s.labels, "y": y})
    return {"metric": spec.metric, "unit": spec.unit, "step": step, "from": start.isoformat(),
            "to": end.isoformat(), "x": [x / 1000 for x in xs], "lines": lines}
