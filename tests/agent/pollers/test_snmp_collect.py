"""Counter rates across polls: wraps, resets and gaps give honest rates or none."""

from __future__ import annotations

import pytest

from weibao.agent.pollers.snmp.collect import MAX_RATE_GAP_S, Counters


def rate(prev: int | None, cur: int, *, dt: float = 60.0, width: int = 64) -> float | None:
    c = Counters(prev={} if prev is None else {"k": prev}, prev_ts=1000.0 if prev is not None else None,
                 now_ts=1000.0 + dt)
    out = c.rate("k", cur, width)
    assert c.current == {"k": cur}  # the new reading is always kept for next time
    return out


def test_first_reading_has_no_rate() -> None:
    assert rate(None, 100) is None


def test_plain_rate() -> None:
    assert rate(1000, 7000, dt=60) == pytest.approx(100.0)


def test_64bit_counter_that_went_backwards_gives_no_rate() -> None:
    assert rate(10_000, 5_000, width=64) is None


def test_32bit_counter_wraps_once() -> None:
    assert rate(2**32 - 600, 600, dt=60, width=32) == pytest.approx(20.0)


def test_32bit_counter_reset_is_not_a_huge_rate() -> None:
    assert rate(1_000_000, 10, width=32) is None


def test_gap_of_more_than_an_hour_gives_no_rate() -> None:
    assert rate(0, 1000, dt=MAX_RATE_GAP_S + 1) is None
    assert rate(0, 1000, dt=0) is None


def test_non_numbers_are_not_counted() -> None:
    c = Counters(prev={"k": 1}, prev_ts=0.0, now_ts=10.0)
    assert c.rate("k", None, 64) is None
    assert c.current == {}
