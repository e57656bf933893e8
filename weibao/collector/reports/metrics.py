"""Counters of the report scheduler, in Prometheus text (appended to the collector's /metrics)."""

from __future__ import annotations

import threading
from collections import Counter

_COUNTERS = (("generated", "weibao_reports_generated_total", "Scheduled reports generated, by kind."),
             ("failed", "weibao_reports_failed_total",
              "Scheduled report runs that failed (generation or mail), by kind."),
             ("mailed", "weibao_reports_mailed_total", "Scheduled reports mailed, by kind."),
             ("gave_up", "weibao_reports_given_up_total", "Scheduled runs abandoned after the last attempt, by kind."))


class ReportMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: dict[str, Counter[str]] = {key: Counter() for key, _, _ in _COUNTERS}

    def count(self, key: str, kind: str) -> None:
        with self._lock:
            self._c[key][kind] += 1

    def value(self, key: str, kind: str) -> int:
        with self._lock:
            return self._c[key][kind]

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            for key, name, help_text in _COUNTERS:
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                out += [f'{name}{{kind="{k}"}} {n}' for k, n in sorted(self._c[key].items())]
        return "\n".join(out) + "\n"
