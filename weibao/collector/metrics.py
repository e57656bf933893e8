"""The collector's own counters and the ingest latency histogram, in Prometheus text exposition format
(and ``gauge`` for the few values other parts add to /metrics).

With several worker processes each one keeps its counters in a small file under DATA/run, rewritten
after every change, and GET /metrics (answered by any worker) adds them all up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COUNTERS = (("batches", "weibao_ingest_batches_total", "Batches accepted and stored."),
             ("samples", "weibao_ingest_samples_total", "Samples accepted and stored."),
             ("events", "weibao_ingest_events_total", "Events accepted and stored."),
             ("duplicates", "weibao_ingest_duplicates_total", "Batches whose id was seen before (nothing added)."),
             ("commits", "weibao_ingest_commits_total",
              "State transactions that stored batches (batches waiting together share one)."))


def gauge(name: str, help_text: str, value: float) -> list[str]:
    """The exposition lines of one unlabelled gauge."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]


def _empty() -> dict[str, Any]:
    return {"batches": 0, "samples": 0, "events": 0, "duplicates": 0, "commits": 0, "refused": {}, "clock": {},
            "buckets": [0] * (len(LATENCY_BUCKETS) + 1), "lat_sum": 0.0, "lat_count": 0}


class IngestMetrics:
    """Thread-safe counters; ``render()`` answers GET /metrics. ``share_dir``: the workers' common folder."""

    def __init__(self, share_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._c = _empty()
        self._share = share_dir
        self._file = None if share_dir is None else share_dir / f"metrics-{os.getpid()}.json"
        self._save()

    def _save(self) -> None:
        if self._file is None:
            return
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._c))
        os.replace(tmp, self._file)

    def accepted(self, samples: int, events: int) -> None:
        with self._lock:
            self._c["batches"] += 1
            self._c["samples"] += samples
            self._c["events"] += events
            self._save()

    def committed(self) -> None:
        with self._lock:
            self._c["commits"] += 1
            self._save()

    def clock(self, agent: str, offset_s: float) -> None:
        """An agent's clock minus ours, from the Date header of its last request."""
        with self._lock:
            self._c.setdefault("clock", {})[agent] = [offset_s, time.time()]
            self._save()

    def duplicate(self) -> None:
        with self._lock:
            self._c["duplicates"] += 1
            self._save()

    def refuse(self, reason: str) -> None:
        with self._lock:
            refused = self._c["refused"]
            refused[reason] = refused.get(reason, 0) + 1
            self._save()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._c["buckets"][bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._c["lat_sum"] += seconds
            self._c["lat_count"] += 1
            self._save()

    def _total(self) -> dict[str, Any]:
        if self._share is None:
            return self._c
        total = _empty()
        for path in self._share.glob("metrics-*.json"):
            try:
                c = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker is replacing its file right now; its counts return next scrape
            for key, _, _ in _COUNTERS:
                total[key] += c.get(key, 0)
            for reason, n in c["refused"].items():
                total["refused"][reason] = total["refused"].get(reason, 0) + n
            for agent, (offset, at) in c.get("clock", {}).items():  # the newest word of any worker
                if agent not in total["clock"] or at > total["clock"][agent][1]:
                    total["clock"][agent] = [offset, at]
            total["buckets"] = [a + b for a, b in zip(total["buckets"], c["buckets"], strict=True)]
            total["lat_sum"] += c["lat_sum"]
            total["lat_count"] += c["lat_count"]
        return total

    def render(self) -> str:
        with self._lock:
            c = self._total()
            out: list[str] = []
            for key, name, help_text in _COUNTERS:
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {c[key]}"]
            out += ["# HELP weibao_ingest_refused_total Batches refused, by reason.",
                    "# TYPE weibao_ingest_refused_total counter"]
            out += [f'weibao_ingest_refused_total{{reason="{r}"}} {n}' for r, n in sorted(c["refused"].items())]
            out += ["# HELP weibao_agent_clock_offset_seconds An agent's clock minus the collector's "
                    "(HTTP Date of its last request).", "# TYPE weibao_agent_clock_offset_seconds gauge"]
            out += [f'weibao_agent_clock_offset_seconds{{agent="{a}"}} {o:g}'
                    for a, (o, _) in sorted(c.get("clock", {}).items())]
            out += ["# HELP weibao_ingest_duration_seconds Time to answer an ingest request.",
                    "# TYPE weibao_ingest_duration_seconds histogram"]
            cumulative = 0
            for bound, n in zip((*LATENCY_BUCKETS, None), c["buckets"], strict=True):
                cumulative += n
                le = "+Inf" if bound is None else repr(bound)
                out.append(f'weibao_ingest_duration_seconds_bucket{{le="{le}"}} {cumulative}')
            out.append(f"weibao_ingest_duration_seconds_sum {c['lat_sum']}")
            out.append(f"weibao_ingest_duration_seconds_count {c['lat_count']}")
        return "\n".join(out) + "\n"
