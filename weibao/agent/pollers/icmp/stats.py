"""What one burst of echo requests to one address measured: loss, round-trip times, jitter."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BurstStats:
    """One burst to one address.

    ``rtts_ms`` holds one entry per probe, in send order: the round-trip time in milliseconds, or
    None when no reply came within the timeout (or the probe could not be sent). ``started`` is
    the burst's start, timezone-aware UTC.
    """

    address: str
    started: datetime
    rtts_ms: tuple[float | None, ...]
    send_errors: tuple[str, ...] = ()

    @property
    def sent(self) -> int:
        return len(self.rtts_ms)

    @property
    def answered(self) -> tuple[float, ...]:
        return tuple(r for r in self.rtts_ms if r is not None)

    @property
    def received(self) -> int:
        return len(self.answered)

    @property
    def loss_pct(self) -> float:
        if not self.rtts_ms:
            return 100.0
        return 100.0 * (self.sent - self.received) / self.sent

    @property
    def rtt_avg_ms(self) -> float | None:
        got = self.answered
        return sum(got) / len(got) if got else None

    @property
    def rtt_min_ms(self) -> float | None:
        return min(self.answered, default=None)

    @property
    def rtt_max_ms(self) -> float | None:
        return max(self.answered, default=None)

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference between consecutive answered probes' RTTs; None below two replies.

        This is the transit-time difference D of RFC 3550 section 6.4.1 averaged plainly over the
        burst rather than smoothed with RFC 3550's 1/16 gain: a burst is short, and a plain mean
        does not depend on a previous round. Lost probes are skipped, so the pair around a loss
        counts as consecutive.
        """
        got = self.answered
        if len(got) < 2:
            return None
        return sum(abs(b - a) for a, b in itertools.pairwise(got)) / (len(got) - 1)
