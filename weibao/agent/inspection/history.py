"""What the inspection remembers between runs: uptime, interface states, error rates of the last inspection.

Kept in ``inspection-history.json`` in the data directory (mode 0600, written atomically by StateStore),
apart from the pollers' own state so that an inspection run never disturbs their counters. Per device:

    inspected_at  ISO time of the last inspection that had results for it
    uptime        [seconds, ISO time of the sample]
    values        {metric: {label_key: value}} for the remembered metrics
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from weibao.agent.state import StateStore
from weibao.core.inspection.rules import UPTIME_METRIC
from weibao.core.inspection.view import DeviceRound
from weibao.core.model import PollResult, utcnow

FILE_NAME = "inspection-history.json"
# what the default rules compare with; pass ``InspectionRules.remembered_metrics`` when rules add more
DEFAULT_REMEMBERED: frozenset[str] = frozenset({UPTIME_METRIC, "if.oper_up", "if.in_errors_ps",
                                                "if.out_errors_ps"})


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


class History:
    """The previous inspection's view of every device; ``update`` then ``save`` after each run."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    @classmethod
    def load(cls, data_dir: Path) -> History:
        return cls(StateStore.in_dir(Path(data_dir), FILE_NAME))

    @classmethod
    def empty(cls) -> History:
        """A history that remembers nothing and saves nowhere (a first run, or a one-off report)."""
        return cls(StateStore(None))

    @property
    def path(self) -> Path | None:
        return self._store.path

    def inspected_at(self, device: str) -> datetime | None:
        return _time(self._store.get(device, "inspected_at"))

    def uptime(self, device: str) -> tuple[float, datetime] | None:
        """The uptime seen at the last inspection and when it was sampled."""
        raw = self._store.get(device, "uptime")
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int | float)):
            return None
        ts = _time(raw[1])
        return None if ts is None else (float(raw[0]), ts)

    def previous(self, device: str, metric: str, key: str) -> float | None:
        """The value of one series (``label_key``) at the last inspection."""
        values = self._store.get(device, "values", {})
        if not isinstance(values, dict):
            return None
        series = values.get(metric)
        v = series.get(key) if isinstance(series, dict) else None
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    def update(self, results: Iterable[PollResult], *, metrics: Collection[str] = DEFAULT_REMEMBERED,
               now: datetime | None = None) -> None:
        """Remember this round for the next run: series not seen this round keep their last value."""
        now = now or utcnow()
        rounds: dict[str, DeviceRound] = {}
        for r in results:
            rounds.setdefault(r.device, DeviceRound(r.device)).add(r)
        for name, rnd in rounds.items():
            if not rnd.latest:
                continue  # a device that said nothing leaves its memory as it was
            self._store.put(name, "inspected_at", now.isoformat())
            up = rnd.get(UPTIME_METRIC)
            if up is not None:
                self._store.put(name, "uptime", [up.value, up.ts.isoformat()])
            values = self._store.get(name, "values", {})
            values = dict(values) if isinstance(values, dict) else {}
            for metric in metrics:
                if metric == UPTIME_METRIC:
                    continue
                series = rnd.latest.get(metric)
                if series:
                    values[metric] = {key: s.value for key, s in series.items()}
            self._store.put(name, "values", values)

    def save(self) -> None:
        self._store.save()
