"""rules/contract.yaml: every row of the contract's fault table, and strict validation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.collector.contract.conftest import RULES
from weibao.collector.contract.durations import format_duration, parse_duration
from weibao.collector.contract.rules import (
    ClockLimit,
    ClockName,
    Condition,
    ContractRules,
    Hours,
    LimitKind,
    Scope,
    TrackKey,
    load_contract_rules,
)
from weibao.core.errors import ConfigError
from weibao.core.inventory import Category

H = timedelta(hours=1)

# (category, condition, scope, hours, threshold, level 2, level 1), copied from contract.md's table; the
# threshold of a loss_or_latency row is its loss (percent), its latency is checked below
TABLE = {
    ("business", "down", "single", "working", None, 1 * H, 2 * H),
    ("business", "down", "day", "working", None, 2 * H, 4 * H),
    ("business", "down", "day", "non_working", None, 3 * H, 6 * H),
    ("realtime", "down", "day", "any", None, 1.5 * H, 3 * H),
    ("realtime", "down", "single", "working", None, 1 * H, 2 * H),   # a real-time system is a business one
    ("mis", "down", "day", "any", None, 2 * H, 4 * H),
    ("processing", "down", "single", "any", None, 2 * H, 4 * H),
    ("processing", "down", "day", "any", None, 4 * H, 8 * H),
    ("processing", "down", "month", "any", None, 12 * H, 24 * H),
    ("backbone", "down", "single", "any", None, 1 * H, 2 * H),
    ("backbone", "loss_or_latency", "single", "any", 30.0, 1 * H, 2 * H),   # loss >= 30 % or latency >= 800 ms
    ("provincial", "loss_or_latency", "single", "any", 15.0, 1 * H, 2 * H),  # latency >= 400 ms or loss >= 15 %
    ("provincial", "cut_off", "single", "any", None, 1 * H, 2 * H),
}


def test_every_row_of_the_table(rules: ContractRules) -> None:
    got = {(r.category.value, r.condition.value, r.scope.value, r.hours.value, r.threshold, r.level_2, r.level_1)
           for cat in rules.categories.values() for r in cat.rows}
    assert got == TABLE
    assert set(rules.categories) == set(Category)
    # "loss or latency" is one condition (contract.md): one row each, with both thresholds
    assert rules.rule("backbone-loss-or-latency").latency == 800.0
    assert rules.rule("provincial-loss-or-latency").latency == 400.0


def test_clock_limits(rules: ContractRules) -> None:
    lim = rules.clocks.limit
    assert lim(ClockName.RESPONSE, 1) == ClockLimit(LimitKind.ELAPSED, timedelta(minutes=5))
    assert lim(ClockName.RESPONSE, 2) == ClockLimit(LimitKind.ELAPSED, timedelta(minutes=10))
    assert lim(ClockName.RESPONSE, 3) == ClockLimit(LimitKind.ELAPSED, timedelta(minutes=20))
    assert lim(ClockName.RESTORATION, 1) == ClockLimit(LimitKind.ELAPSED, 4 * H)
    assert lim(ClockName.RESTORATION, 2) == ClockLimit(LimitKind.ELAPSED, 8 * H)
    assert lim(ClockName.RESTORATION, 3) == ClockLimit(LimitKind.WORKING, 9 * H)
    assert lim(ClockName.REPORT, 1) == ClockLimit(LimitKind.ELAPSED, 2 * H)
    assert lim(ClockName.REPORT, 2) == ClockLimit(LimitKind.DAY_END, days_after=0)
    assert lim(ClockName.REPORT, 3) == ClockLimit(LimitKind.DAY_END, days_after=1)


def test_tracked_keys(rules: ContractRules) -> None:
    assert rules.categories[Category.BACKBONE].tracked() == (
        TrackKey(Condition.DOWN), TrackKey(Condition.LOSS_OR_LATENCY, 30.0, 800.0))
    assert rules.rule("processing-month").scope == Scope.MONTH
    assert rules.rule("business-nonworking-day").hours == Hours.NON_WORKING


@pytest.mark.parametrize("text,expected", [("1h", H), ("90m", 1.5 * H), ("1h30m", 1.5 * H),
                                           ("45s", timedelta(seconds=45)), ("2d", 48 * H), ("0s", timedelta())])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "1", "1.5h", "h", "30m1h", "1 h", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def _broken(tmp_path: Path, old: str, new: str) -> str:
    text = RULES.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "contract.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_contract_rules(path)
    return str(err.value)


def _line_of(needle: str) -> int:
    for n, line in enumerate(RULES.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    line = _line_of("id: mis-day")
    msg = _broken(tmp_path, "    - id: mis-day\n", "    - id: mis-day\n      levle_3: 1h\n")
    assert f"contract.yaml:{line + 1}: categories.mis.0.levle_3: unknown key" in msg


def test_bad_duration_is_named(tmp_path: Path) -> None:
    line = _line_of("reopen_window:")
    msg = _broken(tmp_path, "reopen_window: 30m", "reopen_window: 30 minutes")
    assert f"contract.yaml:{line}: evaluation.reopen_window:" in msg and "bad duration" in msg


def test_level_1_must_exceed_level_2(tmp_path: Path) -> None:
    msg = _broken(tmp_path, "      level_2: 1h30m\n      level_1: 3h", "      level_2: 3h\n      level_1: 1h30m")
    assert "categories.realtime.0" in msg and "level_1 must be longer than level_2" in msg


def test_thresholds_required_for_loss_or_latency(tmp_path: Path) -> None:
    msg = _broken(tmp_path, "      latency_ms: 800\n", "")
    assert "categories.backbone.1" in msg and "needs 'loss_pct' and 'latency_ms'" in msg
    # a loss row of a site's own needs its threshold
    msg = _broken(tmp_path, "      loss_pct: 30\n      latency_ms: 800\n      scope: single\n",
                  "      scope: single\n").replace("loss_or_latency", "x")
    assert "categories.backbone.1" in msg
    msg = _broken(tmp_path, "      condition: loss_or_latency\n      loss_pct: 30\n      latency_ms: 800\n",
                  "      condition: loss\n")
    assert "categories.backbone.1" in msg and "needs 'threshold'" in msg


def test_duplicate_id_and_missing_category(tmp_path: Path) -> None:
    text = RULES.read_text(encoding="utf-8")
    text = text.replace("id: mis-day", "id: realtime-day")
    cut = text.index("  provincial:")
    path = tmp_path / "contract.yaml"
    path.write_text(text[:cut], encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_contract_rules(path)
    msg = str(err.value)
    assert "duplicate rule id 'realtime-day'" in msg
    assert "category 'provincial' is missing" in msg


def test_bad_clock_limit(tmp_path: Path) -> None:
    msg = _broken(tmp_path, "level_2: same_day", "level_2: same day")
    assert "clocks.report.level_2" in msg
