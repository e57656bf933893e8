"""The monthly and weekly reports of a hand-made October 2026 (history.py), every figure worked by hand.

Contract time is Asia/Shanghai. October 2026 has 31 days = 2,678,400 s per device. Its working days are
10-08, 10-09, 10-10 (a Saturday made a working day), 10-12..16, 10-19..23, 10-26..30 = 18 days of 9 h
(08:30-17:30) = 583,200 s per device; 10-01..07 is the National Day holiday. Week 2026-W41 is 10-05
(Mon) .. 10-11 (Sun): 604,800 s, its working days 10-08, 10-09, 10-10: 3 x 32,400 = 97,200 s.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from tests.collector.reports.history import AGENT, DEVICES, replay_october
from tests.collector.scenarios.conftest import SCENARIO_CONFIG, issue_token
from tests.collector.scenarios.replay import register
from tests.peers.collector import REPO, CollectorPeer, run_collector
from weibao.collector.auth import Role

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

MONTH_S = 31 * 86400  # 2,678,400
MONTH_W = 18 * 9 * 3600  # 583,200
WEEK_S = 7 * 86400  # 604,800
WEEK_W = 3 * 9 * 3600  # 97,200


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorPeer, httpx.Client, dict[str, str], Path]]:
    work = tmp_path_factory.mktemp("reports")
    with run_collector(work, SCENARIO_CONFIG) as peer:
        token = issue_token(peer, "eng-li", Role.ENGINEER)
        token_file = work / "engineer.token"
        token_file.write_text(token)
        token_file.chmod(0o600)  # the CLI refuses a token file others can read
        with peer.client(issue_token(peer, AGENT, Role.AGENT)) as agent, peer.client(token) as engineer:
            register(agent, AGENT, DEVICES)
            ids = replay_october(agent, engineer, peer.data_dir)
            yield peer, engineer, ids, token_file


@pytest.fixture(scope="module")
def monthly(lab: tuple[CollectorPeer, httpx.Client, dict[str, str], Path]) -> dict[str, Any]:
    r = lab[1].get("/api/v1/reports/monthly", params={"period": "2026-10"})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


@pytest.fixture(scope="module")
def weekly(lab: tuple[CollectorPeer, httpx.Client, dict[str, str], Path]) -> dict[str, Any]:
    r = lab[1].put("/api/v1/reports/weekly/2026-W41/notes",
                   json={"work_done": "巡检核心路由器；处理 rp-core 中断", "plan_next_week": "更换 rp-biz 电源"})
    assert r.status_code == 200, r.text
    r = lab[1].get("/api/v1/reports/weekly", params={"period": "2026-W41"})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in rows}


def close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-5  # the document keeps 6 decimals


# --- monthly ---------------------------------------------------------------------------------------------

# per device: (down_s, planned_s, unknown_s, down_working_s, planned_working_s, unknown_working_s)
MONTH_DEVICES = {
    # 09:00-09:40 on a holiday (2,400) + 16:30-18:00 (5,400; 16:30-17:30 working: 3,600) + Sat 02:00-03:00 (3,600)
    "rp-biz": (2400 + 5400 + 3600, 0, 0, 3600, 0, 0),
    # make-up Saturday 09:00-09:30 (1,800, working) + Thu 20:00-22:30 (9,000); window Sun 01:00-03:00 (7,200)
    "rp-core": (1800 + 9000, 7200, 0, 1800, 0, 0),
    # Sat 10:00-11:00 (3,600); no data Wed 12:00-16:00 (14,400, all working time)
    "rp-mis": (3600, 0, 14400, 0, 0, 14400),
}


def test_monthly_availability_of_every_device(monthly: dict[str, Any]) -> None:
    assert monthly["kind"] == "monthly"
    assert monthly["period"]["from"] == "2026-10-01T00:00:00+08:00"
    assert monthly["period"]["to"] == "2026-11-01T00:00:00+08:00"
    assert monthly["period"]["seconds"] == MONTH_S
    assert monthly["period"]["working_seconds"] == MONTH_W
    assert monthly["has_data"] is True
    devices = by(monthly["devices"], "device")
    assert set(devices) == {"rp-biz", "rp-core", "rp-mis"}
    for name, (down, planned, unknown, down_w, planned_w, unknown_w) in MONTH_DEVICES.items():
        d = devices[name]
        assert (d["period_s"], d["down_s"], d["planned_s"], d["unknown_s"]) == (MONTH_S, down, planned, unknown), name
        assert (d["period_working_s"], d["down_working_s"], d["planned_working_s"], d["unknown_working_s"]) == (
            MONTH_W, down_w, planned_w, unknown_w), name
        assert d["down_non_working_s"] == down - down_w
    assert devices["rp-biz"]["category"] == "business"
    # 100 * (1 - down / (period - planned - unknown)), and the same on working time
    assert close(devices["rp-biz"]["availability_pct"], 100 * (1 - 11400 / 2678400))           # 99.5744
    assert close(devices["rp-biz"]["availability_working_pct"], 100 * (1 - 3600 / 583200))     # 99.3827
    assert close(devices["rp-core"]["availability_pct"], 100 * (1 - 10800 / (2678400 - 7200)))  # 99.5957
    assert close(devices["rp-core"]["availability_working_pct"], 100 * (1 - 1800 / 583200))    # 99.6914
    assert close(devices["rp-mis"]["availability_pct"], 100 * (1 - 3600 / (2678400 - 14400)))  # 99.8649
    assert close(devices["rp-mis"]["availability_working_pct"], 100.0)  # 0 down of 583,200 - 14,400 known


def test_monthly_categories_overall_worst_and_downtime(monthly: dict[str, Any]) -> None:
    cats = by(monthly["categories"], "category")
    assert set(cats) == {"business", "backbone", "mis"}  # one device each: the device's figures
    assert cats["backbone"]["devices"] == 1
    assert (cats["backbone"]["down_s"], cats["backbone"]["planned_s"]) == (10800, 7200)
    assert close(cats["mis"]["availability_pct"], 100 * (1 - 3600 / (2678400 - 14400)))
    o = monthly["overall"]
    # three devices: 3 x 2,678,400 = 8,035,200 s; down 11,400 + 10,800 + 3,600 = 25,800
    assert (o["period_s"], o["down_s"], o["planned_s"], o["unknown_s"]) == (8035200, 25800, 7200, 14400)
    assert (o["period_working_s"], o["down_working_s"], o["unknown_working_s"]) == (3 * 583200, 3600 + 1800, 14400)
    assert close(o["availability_pct"], 100 * (1 - 25800 / (8035200 - 7200 - 14400)))           # 99.6781
    assert close(o["availability_working_pct"], 100 * (1 - 5400 / (1749600 - 14400)))          # 99.6888
    # least available first: rp-biz 99.574, rp-core 99.596, rp-mis 99.865
    assert [w["device"] for w in monthly["worst_devices"]] == ["rp-biz", "rp-core", "rp-mis"]
    # working 3,600 (rp-biz) + 1,800 (rp-core); the rest outside working hours
    assert monthly["downtime"] == {"down_s": 25800, "working_s": 5400, "non_working_s": 20400}


def test_monthly_tickets_by_level_and_rule(monthly: dict[str, Any], lab: Any) -> None:
    ids: dict[str, str] = lab[2]
    tk = monthly["tickets"]
    # opened: T0, T2, T4, T5, G at level 3; T1 level 2; T3 level 1
    assert tk["opened_by_level"] == {"1": 1, "2": 1, "3": 5}
    assert tk["restored_by_level"] == {"1": 1, "2": 1, "3": 5}
    # closed two weeks after their last change, inside October: T0 (10-19), T5 (10-24), T1 (10-27),
    # G (10-28), T2 (10-31 03:00); T3 (10-22) and T4 (10-31) are not
    assert tk["closed_by_level"] == {"1": 0, "2": 1, "3": 4}
    rules = by(tk["by_rule"], "rule")
    assert rules["down"] == {"rule": "down", "total": 6, "level_1": 1, "level_2": 1, "level_3": 4}
    assert rules["agent_gap"] == {"rule": "agent_gap", "total": 1, "level_1": 0, "level_2": 0, "level_3": 1}
    items = by(tk["items"], "id")
    assert set(items) == set(ids.values())
    t1 = items[ids["T1"]]
    assert (t1["device"], t1["rule"], t1["level"]) == ("rp-biz", "down", 2)
    assert (t1["opened_at"], t1["restored_at"]) == ("2026-10-13T16:30:00+08:00", "2026-10-13T18:00:00+08:00")
    assert items[ids["T3"]]["level"] == 1
    assert items[ids["G"]]["device"] == AGENT
    assert items[ids["T4"]]["state"] == "restored"
    assert tk["still_open"] == []


def test_monthly_clock_compliance(monthly: dict[str, Any], lab: Any) -> None:
    ids: dict[str, str] = lab[2]
    c = monthly["clocks"]
    # response (level 3: 20 min, level 2: 10 min, level 1: 5 min from the fault's start):
    #   met: T1 accepted 16:34 < 16:40, T3 accepted 20:03 < 20:05
    #   breached: T0, G, T4 never accepted; T2 accepted 02:30 >= 02:20; T5 accepted 09:50 >= 09:20
    assert {k: c["response"][k] for k in ("met", "breached", "pending")} == {"met": 2, "breached": 5, "pending": 0}
    # restoration: every fault ended well inside its limit (level 3: 9 working hours from the response)
    assert {k: c["restoration"][k] for k in ("met", "breached", "pending")} == {"met": 7, "breached": 0,
                                                                               "pending": 0}
    # report: met T1 (17:00, same day), T5 (10:00 < end of 10-11), T3 (accepted 20:03 at level 3: due at the
    # end of the next day, 10-24 00:00; level 2 at 21:00: the earlier of that and the end of the day, 10-23
    # 00:00; level 1 at 22:00: the earlier of that and 22:00 + 2 h, still 10-23 00:00; reported 22:20: met,
    # contract.md's promotion rule); breached T0, G, T2 (never, next day passed); pending T4 (not accepted:
    # from 10:20, next day ends 11-02 00:00)
    assert {k: c["report"][k] for k in ("met", "breached", "pending")} == {"met": 3, "breached": 3, "pending": 1}
    worst = c["response"]["worst"]
    # T0 was due 10-05 09:20 and is still not accepted at 11-01 00:00: 26 d 14 h 40 min over
    assert worst[0]["id"] == ids["T0"]
    assert worst[0]["overrun_s"] == 26 * 86400 + 14 * 3600 + 40 * 60
    assert worst[-1]["id"] == ids["T2"] and worst[-1]["overrun_s"] == 600  # 02:30 - 02:20
    report_worst = by(c["report"]["worst"], "id")
    assert set(report_worst) == {ids["T0"], ids["G"], ids["T2"]}


def test_monthly_resources_changes_maintenance_gaps_and_trend(monthly: dict[str, Any]) -> None:
    cpu = monthly["resources"]["metrics"]["cpu.util_pct"]
    assert cpu["series"] == 1
    # 744 hourly averages: 742 hours of 20, 16:00 (six 20s, six 90s) = 55, 17:00 = 90; the 95th percentile
    # by nearest rank is the 707th smallest value (ceil(0.95 x 744)) = 20; the peak 90
    assert cpu["top"] == [{"device": "rp-biz", "labels": {}, "peak": 90.0, "p95": 20.0, "buckets": 744}]
    changes = monthly["config_changes"]
    assert changes["total"] == 1
    assert changes["items"] == [{"device": "rp-core", "at": "2026-10-09T14:00:00+08:00", "added": 3, "removed": 1}]
    assert [(w["devices"], w["in_period_s"], w["reason"]) for w in monthly["maintenance"]] == [
        (["rp-core"], 7200, "core router firmware upgrade")]
    gaps = monthly["gaps"]
    assert gaps["devices"] == [{"device": "rp-mis", "unknown_s": 14400, "stretches": 1}]
    assert gaps["longest"] == [{"device": "rp-mis", "from": "2026-10-14T12:00:00+08:00",
                                "to": "2026-10-14T16:00:00+08:00", "seconds": 14400}]
    assert monthly["ups"] == []
    daily = by(monthly["daily"], "date")
    assert len(daily) == 31
    # 10-13: 5,400 s down of 3 x 86,400 device-seconds
    assert close(daily["2026-10-13"]["availability_pct"], 100 * (1 - 5400 / (3 * 86400)))
    assert daily["2026-10-13"]["tickets_opened"] == 1
    assert daily["2026-10-14"]["availability_pct"] == 100.0  # unknown time is not down
    assert daily["2026-10-22"]["down_s"] == 9000
    assert sum(d["tickets_opened"] for d in monthly["daily"]) == 7


# --- weekly ----------------------------------------------------------------------------------------------

def test_weekly_figures(weekly: dict[str, Any], lab: Any) -> None:
    ids: dict[str, str] = lab[2]
    assert weekly["kind"] == "weekly"
    assert (weekly["period"]["from"], weekly["period"]["to"]) == ("2026-10-05T00:00:00+08:00",
                                                                  "2026-10-12T00:00:00+08:00")
    assert weekly["period"]["working_seconds"] == WEEK_W
    d = by(weekly["devices"], "device")
    # rp-biz: 09:00-09:40 on the holiday (2,400, not working time)
    assert (d["rp-biz"]["down_s"], d["rp-biz"]["down_working_s"]) == (2400, 0)
    assert close(d["rp-biz"]["availability_pct"], 100 * (1 - 2400 / 604800))
    assert d["rp-biz"]["availability_working_pct"] == 100.0
    # rp-core: 09:00-09:30 on the make-up Saturday: working time
    assert (d["rp-core"]["down_s"], d["rp-core"]["down_working_s"]) == (1800, 1800)
    assert close(d["rp-core"]["availability_working_pct"], 100 * (1 - 1800 / 97200))
    assert (d["rp-mis"]["down_s"], d["rp-mis"]["unknown_s"], d["rp-mis"]["availability_pct"]) == (0, 0, 100.0)
    o = weekly["overall"]
    assert (o["period_s"], o["down_s"], o["down_working_s"]) == (3 * WEEK_S, 4200, 1800)
    assert close(o["availability_pct"], 100 * (1 - 4200 / 1814400))
    assert close(o["availability_working_pct"], 100 * (1 - 1800 / 291600))
    tk = weekly["tickets"]
    assert tk["opened_by_level"] == {"1": 0, "2": 0, "3": 2}  # T0, T5
    assert tk["restored_by_level"] == {"1": 0, "2": 0, "3": 2}
    assert tk["closed_by_level"] == {"1": 0, "2": 0, "3": 0}  # closed on 10-19 and 10-24, after the week
    assert sorted(i["id"] for i in tk["items"]) == sorted([ids["T0"], ids["T5"]])
    assert tk["still_open"] == []
    c = weekly["clocks"]
    assert {k: c["response"][k] for k in ("met", "breached", "pending")} == {"met": 0, "breached": 2, "pending": 0}
    assert {k: c["restoration"][k] for k in ("met", "breached", "pending")} == {"met": 2, "breached": 0,
                                                                               "pending": 0}
    # T5 reported 10:00, due at the end of the next day (10-11 24:00); T0 never reported, due 10-07 00:00
    assert {k: c["report"][k] for k in ("met", "breached", "pending")} == {"met": 1, "breached": 1, "pending": 0}
    assert weekly["config_changes"]["total"] == 1
    assert weekly["maintenance"] == []
    assert weekly["findings"] == []
    assert weekly["notes"]["work_done"] == "巡检核心路由器；处理 rp-core 中断"
    assert weekly["notes"]["plan_next_week"] == "更换 rp-biz 电源"
    assert weekly["notes"]["updated_by"] == "eng-li"


# --- formats ---------------------------------------------------------------------------------------------

def hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def test_pdf_carries_the_chinese_headings_and_the_figures(lab: Any, monthly: dict[str, Any], tmp_path: Path) -> None:
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext (poppler-utils) is needed"
    r = lab[1].get("/api/v1/reports/monthly", params={"period": "2026-10", "format": "pdf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "m.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for heading in ("月度运行报告", "分类可用率", "设备可用率", "可用率最低的设备", "工单统计", "服务时限达标情况",
                    "资源使用", "配置变更", "维护作业", "监控中断"):
        assert heading in text, heading
    # the JSON's figures, as the page prints them: availability with 3 decimals, durations H:MM:SS
    assert f"{100 * (1 - 11400 / 2678400):.3f}%" in text   # rp-biz 99.574%
    assert f"{100 * (1 - 10800 / 2671200):.3f}%" in text   # rp-core 99.596%
    assert f"{100 * (1 - 25800 / 8013600):.3f}%" in text   # overall 99.678%
    assert hms(11400) in text and hms(14400) in text and hms(7200) in text  # 3:10:00, 4:00:00, 2:00:00
    # the print stylesheet holds nothing the PDF renderer ignores with a warning in the collector's log
    assert [line for line in lab[0].log().splitlines() if "weasyprint" in line] == []


def test_xlsx_keeps_text_as_text_whatever_people_and_devices_wrote(monthly: dict[str, Any]) -> None:
    # every text of October's report replaced by one that begins like a formula and holds control
    # characters (a note, an interface's name): the workbook is written, each cell is text, none a formula
    from weibao.collector.reports.xlsx import render_xlsx

    evil = '=HYPERLINK("http://203.0.113.9/x","open")\x01\x1b[2J'

    def poison(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: poison(v) for k, v in value.items()}
        if isinstance(value, list):
            return [poison(v) for v in value]
        if isinstance(value, str) and not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):  # times stay
            return evil
        return value

    wb = load_workbook(BytesIO(render_xlsx(poison(monthly))))
    texts = [c for ws in wb.worksheets for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert texts
    for c in texts:
        assert c.data_type == "s", (c.coordinate, c.value)
        assert "\x01" not in c.value and "\x1b" not in c.value
    assert any(c.value.startswith("=HYPERLINK") for c in texts)


def test_xlsx_numbers_equal_the_json(lab: Any, monthly: dict[str, Any]) -> None:
    r = lab[1].get("/api/v1/reports/monthly", params={"period": "2026-10", "format": "xlsx"})
    assert r.status_code == 200, r.text
    wb = load_workbook(BytesIO(r.content))
    ws = wb["设备可用率"]
    head = [c.value for c in ws[1]]
    rows = {row[0]: dict(zip(head, row, strict=True)) for row in ws.iter_rows(min_row=2, values_only=True)}
    devices = by(monthly["devices"], "device")
    assert set(rows) == set(devices)
    for name, d in devices.items():
        for key in ("period_s", "down_s", "planned_s", "unknown_s", "availability_pct", "down_working_s",
                    "availability_working_pct"):
            col = next(h for h in head if str(h).endswith(f"({key})"))
            cell = rows[name][col]
            assert isinstance(cell, int | float) and cell == d[key], (name, key, cell)
    assert rows["rp-biz"][next(h for h in head if str(h).endswith("(down_s)"))] == 11400  # by hand, too
    tickets = wb["工单明细"]
    opened = [row[5] for row in tickets.iter_rows(min_row=2, values_only=True)]
    assert all(hasattr(v, "year") for v in opened)  # dates as dates
    levels = wb["工单统计"]
    assert [row for row in levels.iter_rows(min_row=2, values_only=True)] == [(1, 1, 1, 0), (2, 1, 1, 1),
                                                                               (3, 5, 5, 4)]


def test_html_is_self_contained_and_english_on_request(lab: Any) -> None:
    r = lab[1].get("/api/v1/reports/weekly", params={"period": "2026-W41", "format": "html", "lang": "en"})
    assert r.status_code == 200, r.text
    html = r.text
    assert "Weekly Maintenance Report" in html and "Work done this week" in html
    assert "更换 rp-biz 电源" in html  # the engineers' text as written
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<script" not in html
    assert "data:image/svg+xml;base64," in html  # the trend charts


# --- the CLI, fault reports, refusals --------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weibao", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_every_format_and_the_same_json(lab: Any, monthly: dict[str, Any], tmp_path: Path) -> None:
    peer, _, _, token_file = lab
    out = tmp_path / "out"
    done = cli("report", "monthly", "--period", "2026-10", "--format", "json,xlsx,html", "--out", str(out),
               "--collector", peer.url, "--token-file", str(token_file))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["monthly-2026-10.html", "monthly-2026-10.json",
                                                      "monthly-2026-10.xlsx"]
    doc = json.loads((out / "monthly-2026-10.json").read_text())
    for key in ("devices", "categories", "overall", "tickets", "clocks"):
        assert doc[key] == monthly[key], key
    assert (out / "monthly-2026-10.json").stat().st_mode & 0o777 == 0o640
    listed = cli("report", "list", "--json", "--collector", peer.url, "--token-file", str(token_file))
    assert listed.returncode == 0, listed.stderr
    kinds = {(g["kind"], g["period"]) for g in json.loads(listed.stdout)["reports"]}
    assert {("monthly", "2026-10"), ("weekly", "2026-W41")} <= kinds


def test_fault_report_of_the_level_1_fault(lab: Any) -> None:
    _, engineer, ids, _ = lab
    r = engineer.get("/api/v1/reports/fault", params={"ticket": ids["T3"]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["ticket"]["level"] == 1 and doc["draft"] is True
    kinds = [e["kind"] for e in doc["timeline"]]
    assert kinds[:2] == ["open", "accept"] and "promote" in kinds and "restore" in kinds and "report" in kinds
    assert [e["to_level"] for e in doc["timeline"] if e["kind"] == "promote"] == [2, 1]
    up = next(s for s in doc["samples"]["series"] if s["metric"] == "up")
    # 5-minute buckets from 18:00 to 00:30 (restored 22:30 + 2 h): 78 buckets, down 20:00-22:30 = 30 of them
    assert len(up["points"]) == 78 and sum(1 for _, v in up["points"] if v == 0) == 30
    r = engineer.put(f"/api/v1/reports/fault/{ids['T3']}/notes", json={"cause": "光模块故障", "measures": "更换光模块"})
    assert r.status_code == 200, r.text
    doc = engineer.get("/api/v1/reports/fault", params={"ticket": ids["T3"]}).json()
    assert doc["draft"] is False and doc["analysis"]["cause"] == "光模块故障"


def test_refusals_write_nothing(lab: Any) -> None:
    peer, engineer, _, _ = lab
    before = engineer.get("/api/v1/reports").json()["reports"]
    files = sorted(p for p in (peer.data_dir / "reports").rglob("*") if p.is_file())
    r = engineer.get("/api/v1/reports/monthly", params={"period": "2026-13"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "period", r.text
    r = engineer.get("/api/v1/reports/weekly", params={"period": "2026-11"})
    assert r.status_code == 422 and "2026-W48" in r.json()["error"], r.text
    r = engineer.get("/api/v1/reports/monthly", params={"period": "2026-10", "format": "docx"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "format", r.text
    # periods at the ends of the calendar, and digits that are not ASCII or text around the period
    for kind, period in [("annual", "0001"), ("annual", "9999"), ("monthly", "9999-12"), ("daily", "0001-01-01"),
                         ("weekly", "9999-W52"), ("quarterly", "0001-Q1"), ("monthly", "２０２６-１０"),
                         ("monthly", " 2026-10"), ("monthly", "2026-10\n")]:
        r = engineer.get(f"/api/v1/reports/{kind}", params={"period": period})
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "period", (period, r.text)
    r = engineer.get("/api/v1/reports/fault", params={"ticket": "20261099-0001"})
    assert r.status_code == 404, r.text
    r = engineer.get("/api/v1/reports/daily-ish", params={"period": "2026"})
    assert r.status_code == 404, r.text
    r = engineer.put("/api/v1/reports/weekly/2026-W41/notes", json={"work": "x"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "work", r.text
    r = httpx.get(f"{peer.url}/api/v1/reports", timeout=10)
    assert r.status_code == 401
    assert engineer.get("/api/v1/reports").json()["reports"] == before
    assert sorted(p for p in (peer.data_dir / "reports").rglob("*") if p.is_file()) == files


def test_a_period_without_data_says_so(lab: Any) -> None:
    engineer = lab[1]
    doc = engineer.get("/api/v1/reports/monthly", params={"period": "2026-08"}).json()
    assert doc["has_data"] is False
    assert doc["tickets"]["opened_by_level"] == {"1": 0, "2": 0, "3": 0}
    # no sample in August: every device's whole month is unknown, and no availability is claimed
    for d in doc["devices"]:
        assert (d["unknown_s"], d["availability_pct"]) == (MONTH_S, None)
    html = engineer.get("/api/v1/reports/monthly", params={"period": "2026-08", "format": "html"}).text
    assert "本报告期内没有任何采集数据、工单或事件。" in html


def test_quarterly_and_annual_by_month_with_the_archive(lab: Any, monthly: dict[str, Any]) -> None:
    import hashlib
    import zipfile

    _, engineer, ids, _ = lab
    q = engineer.get("/api/v1/reports/quarterly", params={"period": "2026-Q4"}).json()
    assert [m["month"] for m in q["months"]] == ["2026-10", "2026-11", "2026-12"]
    october = q["months"][0]
    assert (october["down_s"], october["planned_s"], october["unknown_s"]) == (25800, 7200, 14400)
    assert close(october["availability_pct"], 100 * (1 - 25800 / (8035200 - 7200 - 14400)))
    assert october["opened_by_level"] == {"1": 1, "2": 1, "3": 5}
    assert october["clocks"]["report"] == {"met": 3, "breached": 3, "pending": 1}  # as the monthly
    assert q["months"][1]["tickets_opened"] == 0 and q["months"][1]["availability_pct"] is None  # no data
    year = engineer.get("/api/v1/reports/annual", params={"period": "2026"}).json()
    assert len(year["months"]) == 12 and year["months"][9]["down_s"] == 25800
    assert year["tickets"]["opened_by_level"] == {"1": 1, "2": 1, "3": 5}
    r = engineer.get("/api/v1/reports/quarterly", params={"period": "2026-Q4", "format": "zip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    z = zipfile.ZipFile(BytesIO(r.content))
    names = set(z.namelist())
    assert {f"tickets/{i}.json" for i in ids.values()} <= names
    assert "reports/monthly/2026-10/monthly-2026-10.json" in names
    assert "reports/weekly/2026-W41/weekly-2026-W41.json" in names
    manifest = z.read("MANIFEST.sha256").decode().splitlines()
    assert len(manifest) == len(names) - 1
    for line in manifest:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
    ticket = json.loads(z.read(f"tickets/{ids['T3']}.json"))
    assert ticket["level"] == 1 and ticket["events"][0]["kind"] == "open"


@pytest.mark.parametrize("kind,key", [("weekly", "2026-W41"), ("quarterly", "2026-Q4"), ("annual", "2026"),
                                      ("fault", "T3"), ("daily", "2026-10-22")])
def test_every_kind_renders_in_every_format(lab: Any, kind: str, key: str) -> None:
    _, engineer, ids, _ = lab
    params = {"ticket": ids[key]} if kind == "fault" else {"period": key}
    for fmt, magic in (("json", b"{"), ("html", b"<!DOCTYPE html>"), ("pdf", b"%PDF"), ("xlsx", b"PK")):
        if kind == "daily" and fmt == "xlsx":
            continue
        for lang in ("zh", "en"):
            r = engineer.get(f"/api/v1/reports/{kind}", params={**params, "format": fmt, "lang": lang})
            assert r.status_code == 200, (kind, fmt, lang, r.text[:300])
            assert r.content.startswith(magic), (kind, fmt, lang)
