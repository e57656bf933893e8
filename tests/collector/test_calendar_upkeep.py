"""Calendar upkeep: ``weibao calendar add-year`` on a site file (validated, comments kept, nothing written on a
problem), and the collector's warning when the holiday data runs out (log once a day, /metrics, contract API)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.collector.contract.notices import NOTICE_2027
from tests.peers.collector import run_collector, weibao
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.engine.calendar_watch import CalendarWatch

CST = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    weibao("init", str(tmp_path / "etc"), "--data", str(tmp_path / "data"))
    (tmp_path / "notice-2027.txt").write_text(NOTICE_2027, encoding="utf-8")
    return tmp_path / "etc"


def test_add_year_to_the_skeleton_calendar(site: Path) -> None:
    cal, notice = site / "calendar.yaml", site.parent / "notice-2027.txt"
    before = cal.read_text(encoding="utf-8")
    out = weibao("calendar", "add-year", str(cal), "--notice", str(notice), "--config", str(site / "collector.yaml"))
    assert "wrote" in out.stdout and "warning" not in out.stderr  # the skeleton's config lists the file
    after = cal.read_text(encoding="utf-8")
    comments = [line for line in before.splitlines() if line.startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)

    c = load_calendar(cal)
    assert 2027 in c.covered_years
    assert not c.is_working_day(date(2027, 2, 8))      # Monday inside the Spring Festival
    assert c.is_working_day(date(2027, 2, 20))         # a make-up Saturday
    assert c.is_working_day(date(2026, 12, 26))        # the make-up Saturday of the year before
    assert c.is_working_day(date(2027, 10, 8))         # an ordinary Friday after the holiday
    assert not c.is_working_day(date(2027, 10, 10))    # an ordinary Sunday
    assert c.holiday_name(date(2027, 10, 3)) == "National Day / Mid-autumn Festival"
    assert c.covered_until(date(2026, 12, 4)) == date(2027, 12, 31)
    show = weibao("calendar", "show", "--config", str(site / "collector.yaml"), "--year", "2027").stdout
    assert "holiday data for 2004-2027" in show
    assert "  2027-02-20 Sat  working Spring Festival" in show.splitlines()
    assert "  2027-02-08 Mon  off     Spring Festival" in show.splitlines()
    check = weibao("collector", "--check", "--config", str(site / "collector.yaml"), check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    again = weibao("calendar", "add-year", str(cal), "--notice", str(notice), check=False)
    assert again.returncode == 1 and "years.2027: 2027 is in this file already" in again.stderr
    assert cal.read_text(encoding="utf-8") == after


def test_a_bad_notice_or_a_dry_run_writes_nothing(site: Path, tmp_path: Path) -> None:
    cal = site / "calendar.yaml"
    before = cal.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_text(NOTICE_2027.replace("2月20日（周六）上班", "2月20日（周日）上班"), encoding="utf-8")
    out = weibao("calendar", "add-year", str(cal), "--notice", str(bad), check=False)
    assert out.returncode == 1
    assert f"{bad}:3: 春节: 2月20日（周日）: 2027-02-20 is a 周六, the notice says 周日" in out.stderr
    dry = weibao("calendar", "add-year", str(cal), "--notice", str(tmp_path / "notice-2027.txt"), "--dry-run")
    assert "Spring Festival" in dry.stdout and "not written" in dry.stdout
    assert cal.read_bytes() == before
    shipped = weibao("calendar", "add-year", str(cal), "--notice", str(bad), "--year", "2026", check=False)
    assert shipped.returncode == 1 and "notice for 2027, not 2026" in shipped.stderr


def test_add_year_creates_a_missing_file_and_warns_when_the_collector_does_not_read_it(site: Path) -> None:
    new = site / "more" / "holidays.yaml"
    out = weibao("calendar", "add-year", str(new), "--notice", str(site.parent / "notice-2027.txt"), "--config",
                 str(site / "collector.yaml"))
    assert f"{new} is not in contract.calendar" in out.stderr
    assert load_calendar(new).covered_until(date(2027, 3, 1)) == date(2027, 12, 31)


def test_the_watch_counts_days_and_logs_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    now = [datetime(2026, 12, 4, 9, 0, tzinfo=CST)]
    watch = CalendarWatch(load_calendar(), 60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="weibao.collector.engine.calendar_watch"):
        status = watch.check()
        watch.check()
        assert (status.covered_until, status.days_remaining) == (date(2026, 12, 31), 28)  # Dec 4..31
        assert len(caplog.records) == 1
        assert "ends 2026-12-31 (28 days from today): add 2027's holidays" in caplog.records[0].getMessage()
        now[0] += timedelta(days=1)
        watch.check()
        assert len(caplog.records) == 2 and "(27 days from today)" in caplog.records[1].getMessage()
        now[0] = datetime(2027, 1, 2, 9, 0, tzinfo=CST)
        assert watch.json() == {"covered_until": None, "days_remaining": 0, "warn_days": 60,
                                "warning": watch.status().message()}
        assert "no holiday data for 2027" in (watch.status().message() or "")
        now[0] = datetime(2026, 10, 1, 9, 0, tzinfo=CST)  # 92 days left: quiet
        assert watch.json()["warning"] is None and watch.metrics()[-1] == "weibao_calendar_days_remaining 92"


def expected_days(data_until: date) -> int:
    today = datetime.now(CST).date()
    return (data_until - today).days + 1 if today <= data_until else 0


def test_the_collector_warns_in_its_log_metrics_and_contract_api(tmp_path: Path, site: Path) -> None:
    work = tmp_path / "c"
    work.mkdir()
    with run_collector(work, {"contract": {"calendar_warn_days": 400}}) as peer:
        token = peer.token("wang", "engineer")
        with peer.client(token) as eng:
            for _ in range(3):
                body = eng.get("/api/v1/contract").json()
                metrics = httpx.get(f"{peer.url}/metrics").text
        days = expected_days(date(2026, 12, 31))
        assert body["calendar"]["days_remaining"] == days
        assert body["calendar"]["covered_until"] == ("2026-12-31" if days else None)
        assert "weibao calendar add-year" in body["calendar"]["warning"]
        assert f"\nweibao_calendar_days_remaining {days}\n" in metrics
        assert "# TYPE weibao_calendar_days_remaining gauge" in metrics
        assert peer.log().count("add 2027's holidays") == 1  # once at start, not per request

    weibao("calendar", "add-year", str(site / "calendar.yaml"), "--notice", str(site.parent / "notice-2027.txt"))
    work = tmp_path / "c2"
    work.mkdir()
    config = {"contract": {"calendar": [str(site / "calendar.yaml")], "calendar_warn_days": 1}}
    with run_collector(work, config) as peer, peer.client(peer.token("wang", "engineer")) as eng:
        cal = eng.get("/api/v1/contract").json()["calendar"]
        assert cal["days_remaining"] == expected_days(date(2027, 12, 31)) and cal["warning"] is None
        assert "add 2028's holidays" not in peer.log()
