"""``weibao collector --check`` validates the ``reports:`` section: strict keys, and a channel that mails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.collector.test_collector_check import check, line_of, write_config

pytestmark = pytest.mark.timeout(120)


def test_reports_section_mailing_through_an_email_channel_passes(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra="reports:\n  channel: mail\n  to: [it-dept@client.example]\n"
                                       "  weekly_at: '16:30'\n  formats: [pdf, xlsx]\n")
    run = check("--config", str(cfg))
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_channel_that_is_not_email_is_located(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra="reports:\n  channel: ding\n")
    run = check("--config", str(cfg))
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert f"{cfg}:{line_of(cfg, 'channel: ding')}: reports.channel: 'ding' is not an e-mail channel" in out


def test_an_unknown_key_and_a_bad_day_are_located(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra="reports:\n  weekly_day: friday\n  mail_to: [x@example.net]\n")
    run = check("--config", str(cfg))
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert f"{cfg}:{line_of(cfg, 'weekly_day')}: reports.weekly_day:" in out
    assert f"{cfg}:{line_of(cfg, 'mail_to')}: reports.mail_to:" in out


def test_a_channel_without_a_notify_file_is_a_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nreports:\n  channel: mail\n")
    run = check("--config", str(cfg))
    assert run.returncode == 1
    assert "reports.channel: names channel 'mail', but contract.notify" in run.stdout + run.stderr
