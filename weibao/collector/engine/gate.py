"""Hold a dependent device's samples until its upstream's samples reach them: the same tickets in any order.

A device behind another (``depends_on``) is affected by its upstream's outage when the upstream is down at
its fault's start or within ``upstream_tolerance`` after it (weibao/collector/contract). To decide that the
same way whichever agent's batch arrives first (two agents, a backlog), a dependent's sample that begins a
fault (``begins``) at ``t`` is evaluated only once its upstream's samples reach ``t + tolerance``, or once
``released`` says so (the upstream is known down at ``t`` already, or it is silent: its agent was not heard
from for longer than the upstream's gap threshold, or moved on without it). The device's later samples
wait behind it: one device's samples keep their order. Other samples pass at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from weibao.core.model import Sample
from weibao.core.wire import dependency_circle

log = logging.getLogger(__name__)

# (upstream, the held sample's time, seconds it has waited) -> whether to stop waiting for the upstream
Released = Callable[[str, datetime, float], bool]
# the newest sample time taken for a device, or None
Seen = Callable[[str], datetime | None]
# whether evaluating this sample would begin a fault of its device (and so ask about its upstream)
Begins = Callable[[Sample], bool]


class DependencyGate:
    """Per-device queues of samples waiting for their upstream; ``push`` returns what may be evaluated."""

    def __init__(self, upstream: Mapping[str, str | None], tolerance: timedelta, begins: Begins) -> None:
        self.tolerance = tolerance
        self.begins = begins
        self.upstream: dict[str, str] = {}
        self.downstream: dict[str, list[str]] = {}
        self._held: dict[str, deque[Sample]] = {}
        self._waiting: dict[str, float] = {}  # device -> since when (monotonic) its first held sample waits
        self.retarget(upstream)

    def retarget(self, upstream: Mapping[str, str | None]) -> None:
        """Take new dependencies (a registration changed them); samples of devices no longer listed are
        dropped, those of the others keep waiting."""
        self.upstream = {d: u for d, u in upstream.items() if u is not None and u in upstream}
        # a circle (refused at registration, but kept from before) would hold its devices' samples for
        # each other: its devices are evaluated as if they had no upstream
        while (circle := dependency_circle(self.upstream)) is not None:
            log.warning("depends_on goes round in a circle (%s): those devices are evaluated without an upstream",
                        " -> ".join(circle))
            for d in circle:
                self.upstream.pop(d, None)
        self.downstream = {}
        for device, up in self.upstream.items():
            self.downstream.setdefault(up, []).append(device)
        self.forget([d for d in self._held if d not in upstream])

    @property
    def held(self) -> int:
        return sum(len(q) for q in self._held.values())

    def _ready(self, s: Sample, seen: Seen, released: Released) -> bool:
        up = self.upstream.get(s.device)
        if up is None or not self.begins(s):
            return True
        reached = seen(up)
        if reached is not None and reached >= s.ts + self.tolerance:
            return True
        waited = time.monotonic() - self._waiting.setdefault(s.device, time.monotonic())
        return released(up, s.ts, waited)

    def push(self, samples: Iterable[Sample], evaluate: Callable[[Sample], None], seen: Seen,
             released: Released) -> None:
        """Evaluate each sample now, in order, or hold it behind its device's earlier held ones; after each
        evaluation the dependents of its device get their turn (``seen`` reflects the evaluation)."""
        for s in samples:
            queue = self._held.get(s.device)
            if queue or not self._ready(s, seen, released):
                self._held.setdefault(s.device, deque()).append(s)
                continue
            self._waiting.pop(s.device, None)
            evaluate(s)
            self._drain(self.downstream.get(s.device, ()), evaluate, seen, released)

    def release(self, evaluate: Callable[[Sample], None], seen: Seen, released: Released) -> None:
        """Let go of whatever may go now (called when time passes: an upstream may have fallen silent)."""
        self._drain(list(self._held), evaluate, seen, released)

    def oldest(self, device: str) -> datetime | None:
        """The time of the device's first sample still waiting, if any."""
        queue = self._held.get(device)
        return queue[0].ts if queue else None

    def forget(self, devices: Iterable[str]) -> None:
        for d in devices:
            self._held.pop(d, None)
            self._waiting.pop(d, None)

    def _drain(self, devices: Iterable[str], evaluate: Callable[[Sample], None], seen: Seen,
               released: Released) -> None:
        work = deque(devices)
        while work:
            device = work.popleft()
            queue = self._held.get(device)
            moved = False
            while queue and self._ready(queue[0], seen, released):
                evaluate(queue.popleft())
                self._waiting.pop(device, None)
                moved = True
            if queue is not None and not queue:
                del self._held[device]
            if moved:
                work.extend(d for d in self.downstream.get(device, ()) if d in self._held)
