"""Time as weibao stores it (integer milliseconds since the epoch, UTC, converted in one place) and contract time.

``to_ms`` is exact integer arithmetic (no float): the same instant always gives the same number, whoever
converts it (ingest, the raw store, tickets, the replay). Sub-millisecond parts are cut off (floor).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

# contract time: the contract's days, working hours and deadlines are Asia/Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch of an aware time; a naive one is refused (ValueError)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive time {t.isoformat()} refused: every stored time carries an offset")
    return (t - EPOCH) // _MS


def from_ms(ms: int, tz: tzinfo = UTC) -> datetime:
    """The aware time of ``ms`` in ``tz`` (UTC by default)."""
    return (EPOCH + ms * _MS).astimezone(tz)


def now_ms() -> int:
    """The wall clock in milliseconds since the epoch (what stored times of the present are)."""
    return time.time_ns() // 1_000_000
