"""The collector application: ``create_app(config)`` opens the stores, migrates, and wires the routes."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine

from weibao.collector.config import CollectorConfig
from weibao.collector.engine.wiring import build_contract
from weibao.collector.http import api, api_tickets
from weibao.collector.ingest import Ingestor
from weibao.collector.locks import FileLock, run_dir
from weibao.collector.metrics import IngestMetrics
from weibao.collector.registry import Registry
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.storage import SampleStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What the routes need; one per application."""

    config: CollectorConfig
    engine: Engine
    store: SampleStore
    registry: Registry
    ingestor: Ingestor
    metrics: IngestMetrics
    schema: str | None


def _sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite") and "///" in url:
        return Path(url.split("///", 1)[1]).resolve()
    return None


def make_store(config: CollectorConfig) -> SampleStore:
    """The raw-sample backend the configuration names."""
    if config.tsdb.backend == "influxdb":
        from weibao.collector.storage.influx import InfluxSampleStore

        assert config.tsdb.influxdb is not None  # the config model refuses influxdb without its section
        return InfluxSampleStore(config.tsdb.influxdb)
    from weibao.collector.storage.sqlite import SqliteSampleStore

    state_file = _sqlite_file(config.resolved_state_url())
    path = (config.tsdb.path or state_file or config.data_dir / "samples.db").resolve()
    return SqliteSampleStore(path, shared=path == state_file)


def _pruner(ctx: Context, stop: threading.Event) -> None:
    r = ctx.config.retention
    wait = min(r.prune_interval_s, 60.0)
    while not stop.wait(wait):
        wait = r.prune_interval_s
        try:
            done = ctx.ingestor.prune(raw_days=r.raw_days, batch_days=r.raw_days,
                                      rollup_days={300: r.rollup_300_days, 3600: r.rollup_3600_days})
            log.info("retention: removed %s", done)
        except Exception:  # the next round tries again; ingest must not stop over this
            log.exception("retention round failed")


def create_app(config: CollectorConfig) -> FastAPI:
    """A ready application: the state store is migrated before the first request."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    run = run_dir(config.data_dir)
    engine = create_state_engine(config.resolved_state_url())
    with FileLock(run / "migrate.lock").held():  # workers start together
        schema = migrate(engine)
        store = make_store(config)
    registry = Registry(engine)
    metrics = IngestMetrics(run if config.workers > 1 else None)
    write_lock = FileLock(run / "write.lock") if engine.dialect.name == "sqlite" else None
    ingestor = Ingestor(engine, store, registry, config.limits, metrics, write_lock)
    ctx = Context(config, engine, store, registry, ingestor, metrics, schema)
    retention = FileLock(run / "retention.lock")
    contract = build_contract(config, engine, store)  # rule files are checked here, before serving
    if contract.engine is not None:
        ingestor.subscribe(contract.engine.submit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if retention.try_keep():  # one process prunes, whatever the number of workers
            thread = threading.Thread(target=_pruner, args=(ctx, stop), name="retention", daemon=True)
            thread.start()
        contract.start()
        try:
            yield
        finally:
            contract.stop()
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
            retention.close()
            store.close()
            engine.dispose()

    app = FastAPI(title="weibao collector", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.contract = contract
    app.include_router(api.router)
    app.include_router(api_tickets.router)
    return app
