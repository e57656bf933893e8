"""How far the working calendar reaches, watched: a warning when fewer than N days of holiday data remain.

Beyond the last year with holiday data the calendar falls back to "Monday-Friday are working days", which
puts restoration and report deadlines on public holidays and misses make-up Saturdays. The watch says so
ahead of time: a log line once a day (not per request), the gauge ``weibao_calendar_days_remaining`` in
/metrics, and ``calendar`` in GET /api/v1/contract for a console banner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from weibao.collector.contract.calendar import WorkingCalendar, local
from weibao.collector.metrics import gauge

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CalendarStatus:
    today: date
    covered_until: date | None   # the last day of known holidays, None when today's year has none
    days_remaining: int          # days of holiday data from today on, today included
    warn_days: int

    @property
    def short(self) -> bool:
        return self.days_remaining < self.warn_days

    def message(self) -> str | None:
        if not self.short:
            return None
        nxt = self.today.year if self.covered_until is None else self.covered_until.year + 1
        if self.covered_until is None:
            head = f"the working calendar has no holiday data for {self.today.year}"
        else:
            head = (f"the working calendar's holiday data ends {self.covered_until} ({self.days_remaining} "
                    f"day{'' if self.days_remaining == 1 else 's'} from today)")
        return (f"{head}: add {nxt}'s holidays and make-up working days from the State Council's notice "
                f"(weibao calendar add-year SITE_FILE --notice NOTICE), list the file under contract.calendar "
                f"and restart the collector; without them {nxt} counts Monday-Friday as working days")


class CalendarWatch:
    """``status()`` as of now; ``check()`` also logs the warning, at most once per local day."""

    def __init__(self, calendar: WorkingCalendar, warn_days: int = 60, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.calendar = calendar
        self.warn_days = warn_days
        self._clock = clock
        self._logged: date | None = None
        self._lock = threading.Lock()

    def status(self) -> CalendarStatus:
        today = local(self._clock()).date()
        until = self.calendar.covered_until(today)
        remaining = 0 if until is None else (until - today).days + 1
        return CalendarStatus(today, until, remaining, self.warn_days)

    def check(self) -> CalendarStatus:
        status = self.status()
        message = status.message()
        with self._lock:
            if message is not None and self._logged != status.today:
                self._logged = status.today
                log.warning("%s", message)
        return status

    def json(self) -> dict[str, Any]:
        s = self.status()
        return {"covered_until": s.covered_until.isoformat() if s.covered_until else None,
                "days_remaining": s.days_remaining, "warn_days": s.warn_days, "warning": s.message()}

    def metrics(self) -> list[str]:
        s = self.status()
        return gauge("weibao_calendar_days_remaining",
                     "Days of working-calendar holiday data from today on (0: today's year has none).",
                     s.days_remaining)
