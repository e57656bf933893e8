"""Loading rules/inspection.yaml: the shipped file loads; every mistake is named by file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.agent.inspection.factory import RULES_FILE, raw_rules
from weibao.agent.inspection import load_inspection_rules
from weibao.core.errors import ConfigError
from weibao.core.inspection.rules import ThresholdCheck

GOOD_CHECK = """\
version: 1
checks:
  - id: disk.high
    check: threshold
    metric: disk.util_pct
    op: ">="
    levels: {critical: 95, major: 85}
    message: {zh: "{device} 磁盘 {label} {value}%", en: "{device} disk {label} {value}%"}
    recommendation: {zh: 清理, en: clean up}
"""


def load_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inspection.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[str, int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_inspection_rules(path)
    return [(p.file, p.line, p.key, p.message) for p in info.value.problems]


def test_shipped_rules_load_with_every_check_of_the_file() -> None:
    rules = load_inspection_rules(RULES_FILE)
    assert [c.id for c in rules.checks] == list(raw_rules())
    disk = next(c for c in rules.checks if c.id == "disk.high")
    assert isinstance(disk, ThresholdCheck)
    assert disk.levels == {"critical": raw_rules()["disk.high"]["levels"]["critical"],
                           "major": raw_rules()["disk.high"]["levels"]["major"]}


def test_shipped_rules_cover_the_contract_checks() -> None:
    raw = raw_rules()
    metrics = {c.get("metric") for c in raw.values()}
    for metric in ("disk.util_pct", "mem.util_pct", "cpu.util_pct", "if.in_errors_ps", "if.oper_up",
                   "ups.on_battery", "ups.battery_status", "ups.battery_charge_pct", "ups.runtime_min",
                   "ups.output_load_pct", "ups.temperature_c", "temp.c", "icmp.loss_pct", "icmp.rtt_ms",
                   "systemd.failed_units"):
        assert metric in metrics, metric
    types = {c["check"] for c in raw.values()}
    assert types >= {"rebooted", "event", "unreachable", "protocol_failing", "warranty", "increase", "transition"}
    assert raw["disk.high"]["levels"] == {"critical": 95, "major": 85}
    assert raw["mem.high"]["levels"]["major"] == 90
    assert raw["ups.load"]["levels"]["major"] == 80


def test_rules_directory_means_its_inspection_yaml() -> None:
    assert load_inspection_rules(RULES_FILE.parent).source == str(RULES_FILE)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    [(file, _, _, message)] = problems_of(tmp_path / "nothing.yaml")
    assert file == str(tmp_path / "nothing.yaml") and "cannot read" in message


def test_good_minimal_file(tmp_path: Path) -> None:
    rules = load_inspection_rules(load_text(tmp_path, GOOD_CHECK))
    assert [c.id for c in rules.checks] == ["disk.high"]


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("    op: \">=\"\n", "    op: \">=\"\n    treshold: 5\n"))
    assert problems_of(path) == [(str(path), 7, "checks.0.treshold", "unknown key")]


def test_bad_threshold_type_is_named(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("major: 85", 'major: "eighty"'))
    [(file, line, key, message)] = problems_of(path)
    assert (file, line, key) == (str(path), 7, "checks.0.levels.major")
    assert "number" in message or "float" in message


def test_quoted_number_is_refused(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("major: 85", 'major: "85"'))
    assert [(p[1], p[2]) for p in problems_of(path)] == [(7, "checks.0.levels.major")]


def test_unknown_severity_is_named(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("major: 85", "huge: 85"))
    [(_, line, key, _)] = problems_of(path)
    assert (line, key) == (7, "checks.0.levels.huge")


def test_unknown_metric_check_type_and_duplicate_id(tmp_path: Path) -> None:
    text = GOOD_CHECK + textwrap.indent(textwrap.dedent("""\
        - id: disk.high
          check: threshold
          metric: disk.util_pct
          op: ">="
          levels: {major: 1}
          message: {zh: a, en: a}
          recommendation: {zh: a, en: a}
        - id: typo
          check: threshold
          metric: disk.utl_pct
          op: ">="
          levels: {major: 1}
          message: {zh: a, en: a}
          recommendation: {zh: a, en: a}
        - id: what
          check: sometimes
          message: {zh: a, en: a}
          recommendation: {zh: a, en: a}
        """), "  ")
    path = load_text(tmp_path, text)
    found = {(line, key): msg for _, line, key, msg in problems_of(path)}
    assert "duplicate check id 'disk.high' (first on line 3)" in found[(10, "checks.1.id")]
    assert "unknown metric 'disk.utl_pct'" in found[(19, "checks.2.metric")]
    assert "unknown check type 'sometimes'" in found[(25, "checks.3.check")]
    assert len(found) == 3


def test_levels_in_the_wrong_order_are_refused(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("{critical: 95, major: 85}", "{critical: 80, major: 85}"))
    [(_, line, key, message)] = problems_of(path)
    assert (line, key) == (7, "checks.0.levels")
    assert "worse severity" in message


def test_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace('en: "{device} disk', 'en: "{host} disk'))
    [(_, line, key, message)] = problems_of(path)
    assert (line, key) == (8, "checks.0.message.en")
    assert "{host}" in message


def test_attribute_access_in_template_is_refused(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace('en: "{device} disk', 'en: "{device.__class__} disk'))
    [(_, _, key, _)] = problems_of(path)
    assert key == "checks.0.message.en"


def test_missing_keys_and_wrong_version(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("version: 1", "version: 2").replace(
        "    recommendation: {zh: 清理, en: clean up}\n", ""))
    found = {(line, key) for _, line, key, _ in problems_of(path)}
    assert (1, "version") in found
    path = load_text(tmp_path, GOOD_CHECK.replace("version: 1", "version: 1").replace(
        "    recommendation: {zh: 清理, en: clean up}\n", ""))
    assert [(p[1], p[2], p[3]) for p in problems_of(path)] == [(3, "checks.0.recommendation",
                                                                 "required key is missing")]


def test_unknown_kind_filter(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("    op:", "    kinds: [ups, toaster]\n    op:"))
    [(_, line, key, _)] = problems_of(path)
    assert (line, key) == (6, "checks.0.kinds.1")


def test_duplicate_yaml_key_is_named(tmp_path: Path) -> None:
    path = load_text(tmp_path, GOOD_CHECK.replace("    op: \">=\"\n", "    op: \">=\"\n    op: \">\"\n"))
    [(_, line, key, message)] = problems_of(path)
    assert (line, key) == (7, "checks.0.op")
    assert "duplicate" in message
