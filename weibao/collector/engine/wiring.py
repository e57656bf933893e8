"""The contract services of one collector process: files, ticket store, notifications, and the engine.

Built by ``weibao.collector.http.app.create_app``. The files are loaded (and validated) whether or not the engine
runs, because the tickets API needs the calendar and clock limits. The engine and the notification
worker run only when ``CollectorConfig.contract_enabled`` (one worker process): with several workers
each process would see only its own batches, so the rules would see part of the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from weibao.collector.config import CollectorConfig
from weibao.collector.contract import Clocks
from weibao.collector.engine.calendar_watch import CalendarWatch
from weibao.collector.engine.service import ContractEngine
from weibao.collector.engine.setup import ContractFiles, load_files
from weibao.collector.notify.dispatcher import Dispatcher
from weibao.collector.notify.outbox import SqlOutbox
from weibao.collector.storage import SampleStore
from weibao.collector.tickets.model import Ticket
from weibao.collector.tickets.ops import TicketOps
from weibao.collector.tickets.store import TicketStore
from weibao.collector.tickets.views import ticket_clocks

log = logging.getLogger(__name__)


class Replicas(Protocol):
    """This collector as one replica of several (``weibao.collector.ha.runtime.HaRuntime``)."""

    replica: str

    @property
    def leading(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def signal_maintenance(self) -> None: ...

    def leader(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def metrics(self) -> list[str]: ...


@dataclass
class ContractServices:
    files: ContractFiles
    store: TicketStore
    ops: TicketOps
    dispatcher: Dispatcher
    engine: ContractEngine | None
    calendar_watch: CalendarWatch
    # several replicas (``ha``): the elector sets ``engine`` while this replica leads, None otherwise
    ha: Replicas | None = None

    def clocks(self, ticket: Ticket, now: datetime) -> Clocks:
        return ticket_clocks(ticket, calendar=self.files.calendar, limits=self.files.rules.clocks, now=now)

    def reload_maintenance(self) -> None:
        """The maintenance windows changed: tell the engine, wherever it runs."""
        if self.ha is not None:
            self.ha.signal_maintenance()
        elif self.engine is not None:
            self.engine.reload_maintenance()

    def start(self) -> None:
        if self.ha is not None:
            self.ha.start()
        elif self.engine is not None:
            self.dispatcher.start()
            self.engine.start()

    def stop(self) -> None:
        if self.ha is not None:
            self.ha.stop()
        elif self.engine is not None:
            self.engine.stop()
            self.dispatcher.stop()


def build_contract(config: CollectorConfig, engine: Engine, samples: SampleStore, *,
                   write_lock: Callable[[], AbstractContextManager[object]] | None = None) -> ContractServices:
    """Load the files (ConfigError on any problem) and build the services; nothing runs until ``start``.
    ``write_lock``: what ingest holds while it writes to the same SQLite file (``TicketStore``)."""
    files = load_files(config.contract)
    store = TicketStore(engine, write_lock=write_lock)
    dispatcher = Dispatcher(files.notify, outbox=SqlOutbox(engine, writing=store.writing),
                            ticket_url=config.console.ticket_url, extra_recipients=files.calendar.extra_recipients)
    ops = TicketOps(store, dispatcher.submit, transactional=True, after_commit=dispatcher.wake)
    runner = None
    if config.ha_enabled:
        log.info("replica of several (ha): the contract engine runs while this collector leads")
    elif config.contract_enabled:
        runner = ContractEngine(config.contract, files, ops, samples)
    elif config.workers > 1:
        log.warning("contract engine off: %d worker processes each see only their own batches; run the "
                    "collector with workers: 1 for live tickets (the tickets API still answers)", config.workers)
    else:
        log.info("contract engine off (contract.enabled: false)")
    watch = CalendarWatch(files.calendar, config.contract.calendar_warn_days)
    return ContractServices(files, store, ops, dispatcher, runner, watch)
