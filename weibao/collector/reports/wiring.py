"""The report services of one collector process: the service every route uses, and the scheduler.

The scheduler runs only where the contract engine runs (``CollectorConfig.leader_work_here``: the one
process, or the replica that leads, several workers or not), so that a report is generated and mailed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from weibao.collector.config import CollectorConfig
from weibao.collector.engine.wiring import ContractServices
from weibao.collector.reports.build import Sources
from weibao.collector.reports.metrics import ReportMetrics
from weibao.collector.reports.schedule import ReportScheduler
from weibao.collector.reports.service import ReportService
from weibao.collector.reports.store import ReportStore
from weibao.collector.storage import SampleStore
from weibao.core.inspection.rules import load_inspection_rules


@dataclass
class ReportServices:
    service: ReportService
    metrics: ReportMetrics
    scheduler: ReportScheduler | None

    def start(self) -> None:
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()


def sources_for(engine: Engine, samples: SampleStore, contract: ContractServices, config: CollectorConfig) -> Sources:
    files = contract.files
    inspection = files.sources.get("inspection")
    return Sources(engine=engine, samples=samples, tickets=contract.store,
                   reports=ReportStore(engine, config.data_dir), rules=files.rules, calendar=files.calendar,
                   file_windows=files.windows, danger_checks=tuple(c.id for c in files.danger_checks),
                   inspection=load_inspection_rules(Path(inspection)) if inspection else None,
                   daily_at=config.reports.daily_at)


def build_reports(config: CollectorConfig, engine: Engine, samples: SampleStore,
                  contract: ContractServices) -> ReportServices:
    service = ReportService(sources_for(engine, samples, contract, config))
    metrics = ReportMetrics()
    scheduler = None
    if config.leader_work_here and config.reports.enabled:
        scheduler = ReportScheduler(service, config.reports, contract.files.notify, metrics)
    return ReportServices(service, metrics, scheduler)
