"""Log lines about what strangers do (packets, connections), at most one per key and period, with a count.

Anyone on the network can make a receiver fail as often as they can send: one line per failure would
let them fill the disk. ``Throttle`` logs the first occurrence for a key (a source address, a kind of
failure), then at most one line per ``period_s`` that says how many more were held back. Keys are
bounded: past ``max_keys`` the rest share one key, so spoofed sources cannot grow the table either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

OTHERS = "(other sources)"


@dataclass(slots=True)
class _Entry:
    last: float
    held: int = 0


class Throttle:
    """``throttle(key, message, *args)`` logs at most once per ``period_s`` per key (see the module docstring)."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, *, period_s: float = 60.0,
                 max_keys: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.level = level
        self.period_s = period_s
        self.max_keys = max_keys
        self._clock = clock
        self._keys: dict[str, _Entry] = {}

    def __call__(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the period; True when logged."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= self.max_keys:
                self._forget(now)
            if len(self._keys) >= self.max_keys:
                key = OTHERS
                entry = self._keys.get(key)
        if entry is not None and now - entry.last < self.period_s:
            entry.held += 1
            return False
        held = entry.held if entry is not None else 0
        self._keys[key] = _Entry(now)
        if held:
            message += f" (and {held} more like it in the last {self.period_s:g} s)"
        if key == OTHERS:
            message += " (further sources counted together)"
        self.logger.log(self.level, message, *args)
        return True

    def _forget(self, now: float) -> None:
        """Drop keys quiet for a whole period: their held counts were never going to be reported anyway."""
        for k in [k for k, e in self._keys.items() if now - e.last >= self.period_s]:
            del self._keys[k]
