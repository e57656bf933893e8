"""The collector application: ``create_app(config)`` opens the stores, migrates, and wires the routes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from weibao.collector import console
from weibao.collector.access import sessions, throttle
from weibao.collector.config import DATA_FILES, CollectorConfig
from weibao.collector.engine.wiring import ContractServices, build_contract
from weibao.collector.ha.runtime import HaRuntime, writer
from weibao.collector.http import deps
from weibao.collector.http.context import Context
from weibao.collector.http.guard import install_accept_log
from weibao.collector.http.nul import RefuseNul
from weibao.collector.http.routers import ROUTERS
from weibao.collector.ingest import Ingestor
from weibao.collector.locks import FileLock, run_dir
from weibao.collector.metrics import IngestMetrics
from weibao.collector.registry import Registry
from weibao.collector.reports.wiring import build_reports
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.storage import open_store
from weibao.core.files import private_dir
from weibao.core.timeutil import now_ms

log = logging.getLogger(__name__)


def _pruner(ctx: Context, stop: threading.Event) -> None:
    r = ctx.config.retention
    wait = min(r.prune_interval_s, 60.0)
    while not stop.wait(wait):
        wait = r.prune_interval_s
        ha = ctx.contract.ha
        if ha is not None and not ha.leading:  # of several replicas, the leader prunes
            continue
        try:
            done = ctx.ingestor.prune(raw_days=r.raw_days, batch_days=r.raw_days,
                                      rollup_days={300: r.rollup_300_days, 3600: r.rollup_3600_days})
            at = now_ms()
            done["login_counts"] = throttle.prune(ctx.engine, at)
            done["console_sessions"] = sessions.prune(ctx.engine, at)
            log.info("retention: removed %s", done)
        except Exception:  # the next round tries again; ingest must not stop over this
            log.exception("retention round failed")


async def _watch_calendar(contract: ContractServices) -> None:
    """The calendar warning of the housekeeping process: at start, then checked every hour (logged daily)."""
    while True:
        contract.calendar_watch.check()
        await asyncio.sleep(3600)


def create_app(config: CollectorConfig) -> FastAPI:
    """A ready application: the state store is migrated before the first request."""
    private_dir(config.data_dir, owned=DATA_FILES)
    run = run_dir(config.data_dir)
    engine = create_state_engine(config.resolved_state_url())
    with FileLock(run / "migrate.lock").held():  # workers start together
        schema = migrate(engine)
        store = open_store(config)
    registry = Registry(engine)
    metrics = IngestMetrics(run if config.workers > 1 else None)
    write_lock = FileLock(run / "write.lock") if engine.dialect.name == "sqlite" else None
    ingestor = Ingestor(engine, store, registry, config.limits, metrics, write_lock,
                        raw_days=config.retention.raw_days)
    contract = build_contract(config, engine, store,  # rule files are checked here, before serving
                              write_lock=write_lock.held if write_lock is not None else None)
    reports = build_reports(config, engine, store, contract)  # a bad reports.channel fails here
    ctx = Context(config, engine, store, registry, ingestor, metrics, schema, contract, reports)
    retention = FileLock(run / "retention.lock")
    if config.ha_enabled:
        ha = HaRuntime(config, engine, store, contract)
        ha.jobs.append(reports)  # the scheduled reports run on the leader, while it leads
        contract.ha = ha
        ingestor.feed = writer(contract)
    elif contract.engine is not None:
        ingestor.subscribe(contract.engine.submit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        install_accept_log(asyncio.get_running_loop())
        stop = threading.Event()
        thread = None
        watch = None
        if retention.try_keep():  # one process prunes and warns, whatever the number of workers
            thread = threading.Thread(target=_pruner, args=(ctx, stop), name="retention", daemon=True)
            thread.start()
            watch = asyncio.create_task(_watch_calendar(contract))
        contract.start()
        if contract.ha is None:
            reports.start()
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
            reports.stop()
            contract.stop()
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
            retention.close()
            store.close()
            engine.dispose()

    # no API description served: it would tell anyone on the network, without a token, every route there is
    app = FastAPI(title="weibao collector", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.ctx = ctx
    app.add_middleware(RefuseNul)
    deps.install(app)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)  # after the API: the console's catch-all paths never shadow /api/v1
    return app
