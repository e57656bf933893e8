"""Per-probe schedules: devices grouped into jobs by identical interval, runs never stacked, each run bounded.

ICMP and SNMP run every ``schedule.icmp_s`` / ``schedule.snmp_s`` seconds (monotonic clock); the SSH
inspection runs daily at the wall-clock time ``schedule.ssh_at`` (local time, via the ``schedule``
library). Devices with the same protocol, interval and run deadline share one job. A job still running
when its next run is due is not started again: that run is skipped and counted. Every run has an
overall deadline (``schedule.timeout_s``, at least ``DAILY_RUN_DEADLINE_S`` for a daily job), on top
of the pollers' own per-device timeouts, and at most ``max_parallel`` runs poll at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import time as dtime

import schedule

from weibao.agent.inventory import Device
from weibao.agent.pollers.registry import POLLERS

log = logging.getLogger(__name__)

_TICK_S = 0.1


@dataclass(frozen=True, slots=True)
class Job:
    """One protocol over a group of devices that share a schedule."""

    name: str
    protocol: str             # a name of pollers.registry.POLLERS
    devices: tuple[str, ...]
    every_s: float | None = None      # interval jobs
    at: dtime | None = None           # daily wall-clock jobs
    deadline_s: float = 30.0


@dataclass(slots=True)
class JobStats:
    runs: int = 0
    skipped: int = 0
    timeouts: int = 0
    failures: int = 0
    last_start: float | None = None
    last_duration_s: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"runs": self.runs, "skipped": self.skipped, "timeouts": self.timeouts,
                "failures": self.failures, "last_start": self.last_start,
                "last_duration_s": self.last_duration_s}


def plan_jobs(devices: Iterable[Device]) -> list[Job]:
    """Group devices into jobs: one per (protocol, interval or time of day, run deadline)."""
    groups: dict[tuple[str, float | dtime, float], list[str]] = {}
    for d in devices:
        for spec in POLLERS.values():
            if spec.polls(d):
                key = (spec.name, spec.when(d.schedule), spec.deadline_s(d.schedule))
                groups.setdefault(key, []).append(d.name)
    jobs: list[Job] = []
    for (proto, when, deadline), names in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if isinstance(when, dtime):
            jobs.append(Job(f"{proto}@{when.strftime('%H:%M')}/{deadline:g}s", proto, tuple(names),
                            at=when, deadline_s=deadline))
        else:
            jobs.append(Job(f"{proto}/{when:g}s/{deadline:g}s", proto, tuple(names), every_s=when,
                            deadline_s=deadline))
    return jobs


@dataclass(slots=True)
class _Slot:
    job: Job
    next_due: float
    task: asyncio.Task[None] | None = None
    stats: JobStats = field(default_factory=JobStats)


class Scheduler:
    """Starts job runs when due; ``runner`` does the polling and storing of one run."""

    def __init__(self, runner: Callable[[Job], Awaitable[None]], *, max_parallel: int = 4) -> None:
        self._runner = runner
        self._sem = asyncio.Semaphore(max_parallel)
        self._slots: dict[str, _Slot] = {}
        self._wall = schedule.Scheduler()
        self._retired: list[asyncio.Task[None]] = []
        self._accepting = True

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Replace the plan. A job kept by name keeps its rhythm and its running run."""
        now = time.monotonic()
        new: dict[str, _Slot] = {}
        for job in jobs:
            old = self._slots.get(job.name)
            if old is not None:
                old.job = job
                new[job.name] = old
            else:
                new[job.name] = _Slot(job, now)
        for name, slot in self._slots.items():
            if name not in new and slot.task is not None and not slot.task.done():
                self._retired.append(slot.task)  # let it finish; drain() still waits for it
        self._slots = new
        self._wall.clear()
        for slot in new.values():
            if slot.job.at is not None:
                self._wall.every().day.at(slot.job.at.strftime("%H:%M:%S")).do(self._fire, slot.job.name)
        log.info("schedule: %s", ", ".join(f"{n} ({len(s.job.devices)} devices)" for n, s in new.items()))

    def stats(self) -> dict[str, JobStats]:
        return {n: s.stats for n, s in self._slots.items()}

    def running(self) -> list[asyncio.Task[None]]:
        tasks = [s.task for s in self._slots.values() if s.task is not None and not s.task.done()]
        return tasks + [t for t in self._retired if not t.done()]

    def _fire(self, name: str) -> None:
        slot = self._slots.get(name)
        if slot is None or not self._accepting:
            return
        if slot.task is not None and not slot.task.done():
            slot.stats.skipped += 1
            log.warning("job %s still running when due again: run skipped (%d skipped so far)",
                        name, slot.stats.skipped)
            return
        slot.stats.last_start = time.time()
        slot.task = asyncio.create_task(self._run(slot), name=f"job {name}")

    async def _run(self, slot: _Slot) -> None:
        job = slot.job
        start = time.monotonic()
        try:
            async with self._sem:
                await asyncio.wait_for(self._runner(job), timeout=job.deadline_s)
            slot.stats.runs += 1
        except TimeoutError:
            slot.stats.timeouts += 1
            log.warning("job %s passed its %.0f s deadline and was stopped", job.name, job.deadline_s)
        except asyncio.CancelledError:
            slot.stats.failures += 1
            raise
        except Exception:
            slot.stats.failures += 1
            log.exception("job %s failed", job.name)
        finally:
            slot.stats.last_duration_s = time.monotonic() - start

    async def run(self, stop: asyncio.Event) -> None:
        """Start due runs until ``stop`` is set (running runs are left to ``drain``)."""
        while not stop.is_set():
            now = time.monotonic()
            for slot in list(self._slots.values()):
                every = slot.job.every_s
                if every is None or now < slot.next_due:
                    continue
                self._fire(slot.job.name)
                slot.next_due += every
                if slot.next_due <= now:  # far behind (suspend, long stall): resume the rhythm from now
                    slot.next_due = now + every
            self._wall.run_pending()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_TICK_S)
        self._accepting = False

    async def drain(self, deadline_s: float) -> int:
        """Let running runs finish within ``deadline_s``, then cancel the rest; returns how many were cancelled."""
        self._accepting = False
        tasks = self.running()
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
            log.warning("stopped %d runs still going at shutdown", len(pending))
        return len(pending)
