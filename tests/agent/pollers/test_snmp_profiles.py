"""SNMP profiles: the packaged files are valid, broken ones are reported by file/line/key, selection, expressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from weibao.agent.pollers.snmp import check_profiles, default_profile_dir, load_profile, load_profiles
from weibao.agent.pollers.snmp.expr import ExprError, compile_expr
from weibao.agent.pollers.snmp.profiles import Metric, select
from weibao.core.errors import ConfigError

EXPECTED = {"system", "if_mib", "host_resources", "ucd", "ups_mib", "apc_powernet", "entity_sensor",
            "huawei", "h3c", "ruijie", "cisco"}


def test_packaged_profiles_are_valid() -> None:
    profiles = load_profiles()
    assert set(profiles) >= EXPECTED
    assert check_profiles() == []
    assert (default_profile_dir() / "system.yaml").is_file()
    produced = {r.metric for p in profiles.values() for r in p.metrics}
    produced |= {r.metric for p in profiles.values() for t in p.tables for r in t.metrics}
    assert produced == set(Metric)  # every SNMP metric of the vocabulary comes from some profile


def test_selection_by_sysobjectid_sysdescr_and_forcing() -> None:
    profiles = load_profiles()

    def names(oid: str | None, descr: str | None, forced: list[str] | None = None) -> list[str]:
        return [p.name for p in select(profiles, oid, descr, forced)]

    huawei = names("1.3.6.1.4.1.2011.2.23.276", "Huawei Versatile Routing Platform")
    assert huawei[0] == "system" and "huawei" in huawei and "cisco" not in huawei
    assert huawei.index("huawei") < huawei.index("if_mib")  # vendor first: it wins on cpu/mem
    assert "h3c" in names("1.3.6.1.4.1.9999.1", "H3C Comware Platform Software")  # by sysDescr
    assert "cisco" in names("1.3.6.1.4.1.9.1.617", "Cisco IOS")
    assert "cisco" not in names("1.3.6.1.4.1.99.1", "x")  # a prefix is a whole arc, not digits
    assert "apc_powernet" in names("1.3.6.1.4.1.318.1.3.4.6", "APC Web/SNMP Management Card")
    assert names("1.3.6.1.4.1.2011.2.23.276", "", ["if_mib"]) == ["system", "if_mib"]
    assert names(None, None, []) == ["system"]


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_is_named_with_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "bad", """name: bad
description: x
match:
  always: true
  sysobjectid: [1.3.6.1]
""")
    with pytest.raises(ConfigError) as exc:
        load_profile(p)
    (problem,) = exc.value.problems
    assert problem.file == str(p) and problem.line == 5 and problem.key == "match.sysobjectid"
    assert "unknown key" in problem.message


def test_bad_oid_metric_expression_and_names(tmp_path: Path) -> None:
    p = write(tmp_path, "bad2", """name: bad2
description: x
match: {always: true}
scalars:
  a: 1.3.6.1.2.1.1.3.0
  b: not-an-oid
metrics:
  - metric: cpu.util_pct
    expr: a + 1
""")
    with pytest.raises(ConfigError) as exc:
        load_profile(p)
    assert any(pr.key == "scalars.b" and pr.line == 6 for pr in exc.value.problems)

    p = write(tmp_path, "bad3", """name: bad3
description: x
match: {always: true}
scalars:
  a: 1.3.6.1.2.1.1.3.0
metrics:
  - metric: cpu.util_pct
    expr: a + nothere
  - metric: cpu.util_pct
    expr: __import__("os")
  - metric: cpu.util_pct
    expr: rate(a)
  - metric: not.a.metric
    expr: a
""")
    with pytest.raises(ConfigError) as exc:
        load_profile(p)
    located = {(pr.key, pr.line): pr.message for pr in exc.value.problems}
    assert ("metrics.3.metric", 13) in located, located
    p = write(tmp_path, "bad4", """name: bad4
description: x
match: {always: true}
scalars:
  a: 1.3.6.1.2.1.1.3.0
metrics:
  - metric: cpu.util_pct
    expr: a + nothere
  - metric: cpu.util_pct
    expr: __import__("os")
  - metric: cpu.util_pct
    expr: rate(a)
""")
    with pytest.raises(ConfigError) as exc:
        load_profile(p)
    problems = {pr.key: (pr.line, pr.message) for pr in exc.value.problems}
    assert problems["metrics.0.expr"][0] == 8 and "nothere" in problems["metrics.0.expr"][1]
    assert problems["metrics.1.expr"][0] == 10 and "unknown function" in problems["metrics.1.expr"][1]
    assert problems["metrics.2.expr"][0] == 12 and "counter" in problems["metrics.2.expr"][1]


def test_check_profiles_lists_problems_of_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "system", (default_profile_dir() / "system.yaml").read_text(encoding="utf-8"))
    write(tmp_path, "wrongname", "name: other\ndescription: x\nmatch: {always: true}\n")
    problems = check_profiles(tmp_path)
    assert [(p.key, p.line) for p in problems] == [("name", 1)]
    assert check_profiles(tmp_path / "empty") != []


def test_labelled_metrics_need_a_label(tmp_path: Path) -> None:
    p = write(tmp_path, "nolabel", """name: nolabel
description: x
match: {always: true}
tables:
  - name: t
    columns: {v: 1.3.6.1.2.1.99.1.1.1.4}
metrics:
  - metric: temp.c
    table: t
    expr: v
""")
    with pytest.raises(ConfigError) as exc:
        load_profile(p)
    assert exc.value.problems[0].key == "metrics.0" and "label" in exc.value.problems[0].message


def test_expressions() -> None:
    e = compile_expr("100 * used / (used + free)")
    assert e({"used": 1, "free": 3}) == 25.0
    assert e({"used": 0, "free": 0}) is None  # division by zero is no value
    assert e({"used": None, "free": 3}) is None  # a missing value poisons the result
    assert compile_expr("coalesce(a, b)")({"a": None, "b": 2}) == 2
    assert compile_expr("x == 5")({"x": 5}) is True
    assert compile_expr("x == 5")({"x": None}) is None
    assert compile_expr('t == "1.3.6.1.2.1.25.2.1.4"')({"t": "1.3.6.1.2.1.25.2.1.4"}) is True
    assert compile_expr("v * pow10(3 * (s - 9) - p)")({"v": 451, "s": 9, "p": 1}) == pytest.approx(45.1)
    assert compile_expr("max(a, b)")({"a": None, "b": 2}) == 2
    assert compile_expr("n if n != '' else None")({"n": ""}) is None
    assert compile_expr("8 * rate(c)")({}, lambda name: 10.0) == 80.0
    for bad in ("a.b", "a[0]", "lambda: 1", "open('x')", "a ** 2", "[1]", "True"):
        with pytest.raises(ExprError):
            compile_expr(bad)
