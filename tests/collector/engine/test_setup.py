"""The contract section of the collector config, rule-file discovery, and the maintenance file."""

from __future__ import annotations

from pathlib import Path

import pytest

from weibao.collector.config import load_config
from weibao.collector.engine.setup import find_rules, load_maintenance_file
from weibao.core.errors import ConfigError
from weibao.core.packaged import PACKAGED_RULES


def test_engine_runs_only_with_one_worker(tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text("workers: 1\n")
    assert load_config(one).contract_enabled
    two = tmp_path / "two.yaml"
    two.write_text("workers: 2\n")
    assert not load_config(two).contract_enabled
    assert not load_config(two).leader_work_here  # nor the scheduled reports
    # replicas on PostgreSQL: whichever worker process leads runs them, however many workers
    ha = tmp_path / "ha.yaml"
    ha.write_text("workers: 2\nstate_url: postgresql://weibao@127.0.0.1:5432/weibao\n")
    assert load_config(ha).ha_enabled and load_config(ha).leader_work_here
    forced = tmp_path / "forced.yaml"
    forced.write_text("workers: 2\ncontract:\n  enabled: true\n")
    with pytest.raises(ConfigError, match="workers: 1"):
        load_config(forced)
    typo = tmp_path / "typo.yaml"
    typo.write_text("contract:\n  sweep_interval: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(typo)
    assert err.value.problems[0].line == 2


def test_rules_found_from_env_then_cwd_then_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEIBAO_RULES", raising=False)
    assert find_rules(None, "contract.yaml") == PACKAGED_RULES / "contract.yaml"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "contract.yaml").write_text("x: 1\n")
    assert find_rules(None, "contract.yaml") == Path("rules") / "contract.yaml"
    site = tmp_path / "site"
    site.mkdir()
    (site / "contract.yaml").write_text("x: 1\n")
    monkeypatch.setenv("WEIBAO_RULES", str(site))
    assert find_rules(None, "contract.yaml") == site / "contract.yaml"
    with pytest.raises(ConfigError, match="no such file"):
        find_rules(tmp_path / "missing.yaml", "contract.yaml")


def test_maintenance_file(tmp_path: Path) -> None:
    f = tmp_path / "maintenance.yaml"
    f.write_text("windows:\n  - devices: [core-1]\n    start: 2026-11-28 22:00:00\n"
                 "    end: 2026-11-29T02:00:00+08:00\n    reason: firmware\n")
    (w,) = load_maintenance_file(f)
    assert w.devices == frozenset({"core-1"}) and w.reason == "firmware"
    assert w.start.utcoffset() is not None and (w.end - w.start).total_seconds() == 4 * 3600
    f.write_text("windows:\n  - devices: [core-1]\n    start: 2026-11-29T02:00:00+08:00\n"
                 "    end: 2026-11-28T22:00:00+08:00\n")
    with pytest.raises(ConfigError) as err:
        load_maintenance_file(f)
    assert "after it starts" in str(err.value)
