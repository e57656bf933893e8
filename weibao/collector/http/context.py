"""What the routes of one application need (``app.state.ctx``): configuration, stores, ingest, contract."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from weibao.collector.config import CollectorConfig
from weibao.collector.engine.wiring import ContractServices
from weibao.collector.ingest import Ingestor
from weibao.collector.metrics import IngestMetrics
from weibao.collector.registry import Registry
from weibao.collector.reports.wiring import ReportServices
from weibao.collector.storage import SampleStore


@dataclass(frozen=True)
class Context:
    """One per application."""

    config: CollectorConfig
    engine: Engine
    store: SampleStore
    registry: Registry
    ingestor: Ingestor
    metrics: IngestMetrics
    schema: str | None
    contract: ContractServices
    reports: ReportServices
