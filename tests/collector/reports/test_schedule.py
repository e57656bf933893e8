"""The report scheduler against a real SMTP server (aiosmtpd on loopback) and a real state store: what is due
when, catch-up after a restart, the fault draft of a level 2 ticket, failures logged, retried and counted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector.scenarios.replay import at
from tests.peers.smtp import SmtpPeer, spare_port
from weibao.collector.config import ContractConfig, ReportsConfig
from weibao.collector.engine.setup import load_files
from weibao.collector.notify.config import EmailChannel, NotifyConfig
from weibao.collector.reports.build import Sources
from weibao.collector.reports.metrics import ReportMetrics
from weibao.collector.reports.schedule import ReportScheduler
from weibao.collector.reports.service import ReportService
from weibao.collector.reports.store import ReportStore
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.storage.sqlite import SqliteSampleStore
from weibao.collector.tickets import machine
from weibao.collector.tickets.ops import TicketOps
from weibao.collector.tickets.store import TicketStore
from weibao.core.inspection.rules import load_inspection_rules
from weibao.core.packaged import PACKAGED_RULES

CLIENT = "it-dept@client.example"


def mail_channel(port: int) -> EmailChannel:
    return EmailChannel.model_validate({"type": "email", "host": "127.0.0.1", "port": port, "starttls": False,
                                        "sender": "weibao@example.net", "to": ["noc@example.net"], "timeout_s": 5})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ReportService]:
    path = tmp_path / "state.db"
    engine = create_state_engine(f"sqlite:///{path}")
    migrate(engine)
    files = load_files(ContractConfig())
    samples = SqliteSampleStore(path, shared=True)
    yield ReportService(Sources(engine=engine, samples=samples, tickets=TicketStore(engine),
                                reports=ReportStore(engine, tmp_path), rules=files.rules, calendar=files.calendar,
                                inspection=load_inspection_rules(PACKAGED_RULES / "inspection.yaml")))
    samples.close()
    engine.dispose()


def scheduler(service: ReportService, port: int, metrics: ReportMetrics, **cfg: object) -> ReportScheduler:
    config = ReportsConfig.model_validate({"channel": "mail", "to": [CLIENT], "formats": ["json", "xlsx"],
                                           "retry_s": 60, "max_attempts": 3, **cfg})
    return ReportScheduler(service, config, NotifyConfig(channels={"mail": mail_channel(port)}), metrics)


def test_weekly_on_friday_monthly_caught_up_and_a_fault_draft(service: ReportService) -> None:
    metrics = ReportMetrics()
    with SmtpPeer() as smtp:
        s = scheduler(service, smtp.port, metrics, jobs=["weekly", "monthly", "fault"])
        # the first start: nothing before it is made up
        assert s.tick(at("2026-11-27 09:00")) == 0
        # a level 2 fault restored at 12:00 (promoted at 11:00)
        ops = TicketOps(service.sources.tickets)
        t = ops.open(device="core-1", rule="down", at=at("2026-11-27 10:00"), episode=None)
        ops.change(t.id, lambda x: machine.promote(x, level=2, at=at("2026-11-27 11:00")))
        ops.change(t.id, lambda x: machine.restore(x, at=at("2026-11-27 12:00")))
        # Friday 16:59: the week's report is due at 17:00, only the fault draft is due
        assert s.tick(at("2026-11-27 16:59")) == 1
        assert [m.message["Subject"] for m in smtp.messages()] == [f"故障处理分析报告 {t.id}"]
        assert s.tick(at("2026-11-27 17:00")) == 1
        sent = smtp.messages()[-1]
        assert sent.message["Subject"] == "运维周报 2026-W48"
        assert sent.rcpt_tos == (CLIENT,)
        names = sorted(str(p.get_filename()) for p in sent.message.iter_attachments())
        assert names == ["weekly-2026-W48.json", "weekly-2026-W48.xlsx"]
        assert s.tick(at("2026-11-27 17:05")) == 0  # done once
        # the collector was down over 12-01 08:00: a new process makes the November report up at 09:30
        again = scheduler(service, smtp.port, metrics, jobs=["weekly", "monthly", "fault"])
        assert again.tick(at("2026-12-01 09:30")) == 1
        assert smtp.messages()[-1].message["Subject"] == "月度运行报告 2026-11"
        assert len(smtp.messages()) == 3
    assert (metrics.value("generated", "weekly"), metrics.value("generated", "monthly"),
            metrics.value("generated", "fault")) == (1, 1, 1)
    assert metrics.value("mailed", "weekly") == 1
    kinds = {(g.kind, g.period) for g in service.store.list()}
    assert kinds == {("weekly", "2026-W48"), ("monthly", "2026-11"), ("fault", t.id)}


def test_a_failed_mail_is_logged_retried_later_and_counted(service: ReportService,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    metrics = ReportMetrics()
    dead = spare_port()  # nothing listens there: connection refused
    s = scheduler(service, dead, metrics, jobs=["weekly"])
    s.tick(at("2026-12-04 09:00"))
    assert s.tick(at("2026-12-04 17:00")) == 1
    run = service.store.run("weekly", "2026-W49")
    assert run is not None and (run.status, run.attempts) == ("failed", 1)
    assert run.next_at == at("2026-12-04 17:01")  # retry_s 60 after the first failure
    assert "ConnectionRefusedError" in run.last_error
    assert "report weekly 2026-W49: attempt 1 failed" in caplog.text
    assert s.tick(at("2026-12-04 17:00:30")) == 0  # not before its time
    assert 'weibao_reports_failed_total{kind="weekly"} 1' in metrics.render()
    with SmtpPeer() as smtp:
        live = scheduler(service, smtp.port, metrics, jobs=["weekly"])
        assert live.tick(at("2026-12-04 17:01")) == 1
        assert [m.message["Subject"] for m in smtp.messages()] == ["运维周报 2026-W49"]
    run = service.store.run("weekly", "2026-W49")
    assert run is not None and (run.status, run.attempts) == ("done", 2)
    assert metrics.value("mailed", "weekly") == 1


def test_after_the_last_attempt_it_gives_up(service: ReportService) -> None:
    metrics = ReportMetrics()
    s = scheduler(service, spare_port(), metrics, jobs=["weekly"], max_attempts=2)
    s.tick(at("2026-12-04 09:00"))
    assert s.tick(at("2026-12-04 17:00")) == 1
    assert s.tick(at("2026-12-04 17:01")) == 1  # second and last attempt (after 60 s)
    assert s.tick(at("2026-12-04 18:00")) == 0
    assert metrics.value("gave_up", "weekly") == 1
    assert metrics.value("failed", "weekly") == 2


def test_the_daily_inspection_at_eight(service: ReportService) -> None:
    metrics = ReportMetrics()
    with SmtpPeer() as smtp:
        s = scheduler(service, smtp.port, metrics, jobs=["daily"], formats=["json", "html"])
        assert s.tick(at("2026-12-04 07:00")) == 0
        assert s.tick(at("2026-12-04 07:59")) == 0
        assert s.tick(at("2026-12-04 08:00")) == 1
        sent = smtp.messages()
        assert [m.message["Subject"] for m in sent] == ["设备日常巡检报告 2026-12-04"]
        names = sorted(str(p.get_filename()) for p in sent[0].message.iter_attachments())
        assert names == ["inspection-2026-12-04.html", "inspection-2026-12-04.json"]
        assert s.tick(at("2026-12-05 07:59")) == 0
        assert s.tick(at("2026-12-05 08:01")) == 1
    assert metrics.value("mailed", "daily") == 2
