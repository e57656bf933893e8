"""``weibao run``: the agent and the collector in one process, the embedded default for a single site.

The agent is the ordinary ``AgentDaemon`` (schedules, durable spool, traps, graceful drain); only its
transport changes: ``LocalSink`` hands each spooled batch to the collector's ``Ingestor`` in a worker
thread instead of POSTing it. Validation, the batch-id dedupe and the refusals are the collector's own,
with the same HTTP statuses, so the shipper keeps, retries or dead-letters exactly as it would over
HTTP, and a kill at any moment loses nothing and duplicates nothing (the spool re-sends an
unacknowledged batch; the collector answers "duplicate" to one it already committed).

The collector's HTTP API (devices, series, tickets, metrics) is served by uvicorn in the same event
loop, from ``create_app``, so whatever its lifespan starts (retention, the contract engine) runs here
too. The agent starts after that lifespan, so no batch is ingested before its listeners are subscribed,
and the server stops after the agent's last shipment.

Data directory layout: the collector's state (``state.db``, ``run/``) at its top, the agent's spool and
per-device memory under ``agent/``, so ``weibao token issue --data DIR`` and ``weibao agent status
--data DIR/agent`` work on it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import uvicorn
from fastapi import FastAPI

from weibao.agent.daemon import AgentConfig, AgentDaemon, default_agent_name
from weibao.agent.inventory import Inventory, load_inventory
from weibao.agent.shipper import SendResult
from weibao.agent.spool import SpoolLimits
from weibao.collector.auth import Principal, Role
from weibao.collector.config import DATA_FILES, CollectorConfig
from weibao.collector.errors import Refused
from weibao.collector.http.app import create_app
from weibao.collector.http.context import Context
from weibao.collector.http.server import check_tls, uvicorn_options
from weibao.collector.validate import parse
from weibao.core.files import private_dir
from weibao.core.wire import InventoryRegistration

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("127.0.0.1", 8480)
AGENT_DIR = "agent"
SERVER_START_S = 60.0


def agent_name_for(site: str) -> str:
    """The in-process agent's name, from the site name reduced to what the wire format accepts.

    A site named only in Chinese keeps nothing: then the host name stands in.
    """
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "-" for c in site.strip())
    while "--" in name:
        name = name.replace("--", "-")
    name = name.strip("_.-")[:128]
    return name if any(c.isalnum() for c in name) else default_agent_name()


class LocalSink:
    """The shipper's transport to a collector in this process: the Ingestor called in a thread."""

    def __init__(self, ctx: Context, agent: str) -> None:
        self._ctx = ctx
        # no token in-process: the agent is this principal, held to the same checks as a token holder
        self.principal = Principal(name=agent, role=Role.AGENT)

    async def send(self, batch_id: str, body: bytes) -> SendResult:
        ctx = self._ctx
        started = time.perf_counter()
        try:
            outcome = await asyncio.to_thread(ctx.ingestor.ingest, self.principal, body)
        except Refused as exc:
            ctx.metrics.refuse(exc.reason)
            return SendResult(exc.status, json.dumps(exc.body(), ensure_ascii=False)[:2000])
        except Exception as exc:  # a store failure: like a 500 over HTTP, the batch is kept and retried
            log.exception("ingest of batch %s failed", batch_id)
            return SendResult(500, f"{type(exc).__name__} in the collector")
        finally:
            ctx.metrics.observe(time.perf_counter() - started)
        return SendResult(200, "", outcome.duplicate)

    async def register(self, body: bytes) -> SendResult:
        try:
            reg: InventoryRegistration = parse(body, InventoryRegistration)
            if reg.agent != self.principal.name:
                raise Refused(403, "wrong_agent", f"this agent may not register devices for agent {reg.agent!r}")
            await asyncio.to_thread(self._ctx.registry.register, reg)
        except Refused as exc:
            return SendResult(exc.status, json.dumps(exc.body(), ensure_ascii=False)[:2000])
        except Exception as exc:  # kept and retried, as a 500 would be
            log.exception("inventory registration failed")
            return SendResult(500, f"{type(exc).__name__} in the collector")
        return SendResult(200)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    inventory: Path
    data: Path
    listen: tuple[str, int] = DEFAULT_LISTEN
    traps: tuple[str, int] | None = ("0.0.0.0", 162)  # noqa: S104 - traps come from every device network
    agent_name: str | None = None     # default: from the inventory's site name
    collector_config: Path | None = None
    tls: dict[str, Path] | None = None  # keys of the collector config's tls section, from flags
    max_parallel: int = 4
    batch_items: int = 5_000
    drain_s: float = 10.0
    final_ship_s: float = 5.0
    backoff_max_s: float = 30.0


class _Server(uvicorn.Server):
    """uvicorn inside a process that handles its own signals: the agent must drain before the API stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Embedded:
    """One site: inventory, collector application, API server and agent; ``await run()`` returns an exit code."""

    def __init__(self, config: EmbeddedConfig, inventory: Inventory, *,
                 collector: CollectorConfig | None = None) -> None:
        self.config = config
        self.inventory = inventory
        self.agent_name = config.agent_name or agent_name_for(inventory.site)
        self.collector_config = collector or CollectorConfig(data_dir=config.data)
        private_dir(config.data, owned=(*DATA_FILES, AGENT_DIR))
        private_dir(config.data / AGENT_DIR)  # the whole layout before the API answers, the spool's folder too
        self.app: FastAPI = create_app(self.collector_config)
        self.ctx: Context = self.app.state.ctx
        self.sink = LocalSink(self.ctx, self.agent_name)
        self.ready = asyncio.Event()
        self.host, self.port = config.listen
        self._stop = False
        self._daemon: AgentDaemon | None = None
        self._server: _Server | None = None

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.collector_config.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def daemon(self) -> AgentDaemon | None:
        return self._daemon

    def agent_config(self) -> AgentConfig:
        c = self.config
        return AgentConfig(
            inventory=c.inventory, collector=f"in-process ({self.api_url})", token_file=Path("/dev/null"),
            data=c.data / AGENT_DIR, agent_name=self.agent_name, traps=c.traps,
            spool_limits=SpoolLimits(), batch_items=c.batch_items, max_parallel=c.max_parallel,
            drain_s=c.drain_s, final_ship_s=c.final_ship_s, backoff_max_s=c.backoff_max_s)

    def request_stop(self) -> None:
        """Stop polling, drain, ship what is left, then stop the API (SIGTERM and SIGINT do this)."""
        self._stop = True
        if self._daemon is not None:
            self._daemon.request_stop()

    async def _serve(self, sock: socket.socket) -> int:
        assert self._server is not None
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits when the application's lifespan fails to start
            log.error("the collector API did not start (lifespan failed)")
            return int(exc.code) if isinstance(exc.code, int) else 1
        return 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            sock = _bind(self.host, self.port)
        except OSError as exc:
            log.error("cannot serve the API on %s:%d: %s", self.host, self.port, exc.strerror)
            return 2
        self.port = int(sock.getsockname()[1])
        self._server = _Server(uvicorn.Config(self.app, log_config=None, lifespan="on",
                                              **uvicorn_options(self.collector_config)))
        serving = asyncio.create_task(self._serve(sock))
        deadline = time.monotonic() + SERVER_START_S
        while not self._server.started and not serving.done() and not self._stop:
            if time.monotonic() > deadline:
                log.error("the collector API did not start within %g s", SERVER_START_S)
                self._stop = True
                break
            await asyncio.sleep(0.05)
        code = 0
        if self._server.started and not self._stop:
            code = await self._run_agent(serving)
        self._stop = True
        self._server.should_exit = True
        served = await serving
        sock.close()
        return code or served

    async def _run_agent(self, serving: asyncio.Task[int]) -> int:
        daemon = self._daemon = AgentDaemon(self.agent_config(), self.inventory, "", sink=self.sink)

        def server_ended(_task: asyncio.Task[int]) -> None:
            if not self._stop:
                log.error("the collector API stopped unexpectedly; stopping the agent")
                self.request_stop()

        serving.add_done_callback(server_ended)
        self.ready.set()
        return await daemon.run()


def banner(emb: Embedded, out: TextIO = sys.stderr) -> None:
    """What runs where, and how an engineer gets into the API."""
    c = emb.config
    traps = "off" if c.traps is None else f"{c.traps[0]}:{c.traps[1]}"
    lines = [
        f"weibao run: site {emb.inventory.site!r}, {len(emb.inventory.devices)} devices, agent "
        f"{emb.agent_name!r} in this process (no token needed between them)",
        f"  console: {emb.api_url}/  (first admin: weibao user add NAME --role admin --data {c.data})",
        f"  API:    {emb.api_url}  (/healthz, /api/v1/devices, /api/v1/series, /api/v1/tickets, /metrics)",
        f"  data:   {c.data.resolve()}  (agent spool and state in {(c.data / AGENT_DIR).resolve()})",
        f"  traps:  {traps}",
        *api_help(emb.api_url, c.data),
    ]
    print("\n".join(lines), file=out, flush=True)


def api_help(api_url: str, data: Path) -> list[str]:
    return [
        "  API access needs an engineer token (shown once):",
        f"    weibao token issue NAME --role engineer --data {data}",
        f"    curl -H \"Authorization: Bearer $TOKEN\" {api_url}/api/v1/tickets",
    ]


def prepare(config: EmbeddedConfig) -> Embedded:
    """Load and validate everything before anything starts; raises ConfigError naming every problem."""
    from weibao.collector.config import load_config

    inventory = load_inventory(config.inventory)
    # the API's address is the command line's; a listen address in the file is for ``weibao collector``
    collector = load_config(config.collector_config, data_dir=config.data, tls=config.tls)
    check_tls(collector)
    if collector.workers != 1:
        log.warning("weibao run serves the API in one process: workers=%d ignored", collector.workers)
        collector = collector.model_copy(update={"workers": 1})
    return Embedded(config, inventory, collector=collector)
