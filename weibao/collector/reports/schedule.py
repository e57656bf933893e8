"""The report scheduler: the daily inspection (08:00), weekly (Friday 17:00, the running week), monthly,
quarterly and annual (the first day after the period, 08:00), and a fault analysis draft for every level 1
or 2 ticket once it is restored.

It runs in the one collector process that runs the contract engine. ``tick(now)`` does what is due: a run
missed while the collector was down is made up at the next tick (back to ``catch_up_days``, never before
the scheduler first started), and a run that failed (generation or mail) is retried with a growing delay
up to ``max_attempts``. Each run is recorded in ``report_runs``, so a restart repeats nothing that was done.
Failures are logged and counted in /metrics (``weibao_reports_failed_total``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from weibao.collector.config import ReportsConfig
from weibao.collector.contract.calendar import local
from weibao.collector.notify.config import EmailChannel, NotifyConfig
from weibao.collector.reports.mail import send_report
from weibao.collector.reports.metrics import ReportMetrics
from weibao.collector.reports.periods import Kind, Period, containing, previous
from weibao.collector.reports.service import ReportService
from weibao.collector.tickets.store import TicketRow
from weibao.core.inspection.i18n import Lang
from weibao.core.timeutil import SHANGHAI, to_ms

log = logging.getLogger(__name__)

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_MARK = ("scheduler", "first-start")
_MAX_BACKOFF_STEPS = 6


def due_at(kind: Kind, period: Period, cfg: ReportsConfig) -> datetime:
    """When the scheduled report of ``period`` is due (Asia/Shanghai)."""
    if kind is Kind.DAILY:
        return datetime.combine(period.start.date(), cfg.daily_at, SHANGHAI)
    if kind is Kind.WEEKLY:
        d = period.start.date() + timedelta(days=WEEKDAYS[cfg.weekly_day])
        return datetime.combine(d, cfg.weekly_at, SHANGHAI)
    return datetime.combine(period.end.date(), cfg.periodic_at, SHANGHAI)


def due_periods(kind: Kind, cfg: ReportsConfig, now: datetime, since: datetime) -> Iterator[Period]:
    """Periods of ``kind`` whose report fell due in [since, now], newest first."""
    p = containing(kind, now)
    for _ in range(1000):  # bounded: 400 days back is at most ~60 weeks
        at = due_at(kind, p, cfg)
        if at < since:
            return
        if at <= now:
            yield p
        p = previous(p)


class ReportScheduler:
    def __init__(self, service: ReportService, cfg: ReportsConfig, notify: NotifyConfig, metrics: ReportMetrics,
                 *, wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service = service
        self.store = service.store
        self.cfg = cfg
        self.metrics = metrics
        self._wall = wall
        self.channel: tuple[str, EmailChannel] | None = None
        if cfg.channel is not None:
            ch = notify.channels.get(cfg.channel)
            if not isinstance(ch, EmailChannel):
                raise ValueError(f"reports.channel {cfg.channel!r} is not an e-mail channel of the notify config")
            self.channel = (cfg.channel, ch)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="weibao-reports", daemon=True)
            self._thread.start()
            log.info("report scheduler runs (mail channel: %s)", self.channel[0] if self.channel else "none")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.check_interval_s):
            try:
                self.tick(self._wall())
            except Exception:  # the next tick tries again; the scheduler must not die
                log.exception("report scheduler: tick failed")

    # -- work ----------------------------------------------------------------------------------------------
    def since(self, now: datetime) -> datetime:
        """The earliest due time still made up: the first start, at most ``catch_up_days`` back."""
        mark = self.store.run(*_MARK)
        if mark is None:
            mark = self.store.record_run(*_MARK, ok=True, next_at=now, now=now)
        return max(mark.next_at, now - timedelta(days=self.cfg.catch_up_days))

    def tick(self, now: datetime) -> int:
        """Run whatever is due at ``now``; returns how many runs were attempted."""
        now = local(now)
        since = self.since(now)
        attempted = 0
        for job in self.cfg.jobs:
            kind = Kind(job)
            if kind is Kind.FAULT:
                keys = self._restored_faults(since, now)
            else:
                keys = [p.key for p in due_periods(kind, self.cfg, now, since)]
            for key in reversed(keys):  # oldest first
                attempted += self._attempt(kind, key, now)
        return attempted

    def _restored_faults(self, since: datetime, now: datetime) -> list[str]:
        """Level 1 and 2 tickets restored in [since, now], newest first: each gets a fault report draft."""
        q = (select(TicketRow.id).where(TicketRow.level <= 2, TicketRow.restored_ms >= to_ms(since),
                                        TicketRow.restored_ms <= to_ms(now)).order_by(TicketRow.restored_ms.desc()))
        with self.service.sources.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(q)]

    def _attempt(self, kind: Kind, key: str, now: datetime) -> int:
        run = self.store.run(kind.value, key)
        if run is not None and (run.status == "done" or run.attempts >= self.cfg.max_attempts or run.next_at > now):
            return 0
        lang: Lang = self.cfg.lang
        try:
            _doc, saved, _ = self.service.generate(kind, key, formats=self.cfg.formats, lang=lang, now=now)
            self.metrics.count("generated", kind.value)
            if self.channel is not None:
                name, channel = self.channel
                send_report(name, channel, saved, self.cfg.to, site=self.service.sources.site(), lang=lang)
                self.metrics.count("mailed", kind.value)
        except Exception as exc:  # logged, counted and retried: one failing report must not stop the others
            attempts = (run.attempts if run is not None else 0) + 1
            delay = timedelta(seconds=self.cfg.retry_s * 2 ** min(attempts - 1, _MAX_BACKOFF_STEPS))
            self.store.record_run(kind.value, key, ok=False, error=f"{type(exc).__name__}: {exc}",
                                  next_at=now + delay, now=now)
            self.metrics.count("failed", kind.value)
            if attempts >= self.cfg.max_attempts:
                self.metrics.count("gave_up", kind.value)
                log.error("report %s %s: attempt %d failed, giving up: %s", kind.value, key, attempts, exc)
            else:
                log.warning("report %s %s: attempt %d failed, retrying in %s: %s", kind.value, key, attempts,
                            delay, exc)
            return 1
        self.store.record_run(kind.value, key, ok=True, next_at=now, now=now)
        return 1
