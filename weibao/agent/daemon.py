"""The ``weibao agent`` process: inventory, schedules, pollers, spool, shipper, traps, signals and status.

    SIGHUP           reload the inventory; an invalid one is refused (every problem logged) and the
                     running one kept; a valid one is registered with the collector again
    SIGTERM, SIGINT  stop starting runs, let running ones finish (``drain_s``), store what they found,
                     one last shipment bounded by ``final_ship_s``, exit 0

Every poll round is in the spool before anything is shipped; the shipper is the only reader. State
for ``weibao agent status`` (job counters, trap counters, last reload) is written into the spool's
``meta`` table every few seconds, so a second process can read it while the agent runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weibao.agent.inventory import Inventory, load_inventory
from weibao.agent.runner import poll_once
from weibao.agent.scheduler import Job, Scheduler, plan_jobs
from weibao.agent.shipper import Shipper, ShipperConfig, Sink, collector_urls
from weibao.agent.spool import SPOOL_FILE, Spool, SpoolLimits, SpoolStats
from weibao.agent.state import StateStore
from weibao.agent.traps import TrapReceiver
from weibao.core.errors import ConfigError, Problem
from weibao.core.files import read_token_file
from weibao.core.model import Event, Sample
from weibao.core.transport import check_collector_url, client_tls

log = logging.getLogger(__name__)

STATUS_EVERY_S = 2.0
TRAP_QUEUE_MAX = 10_000
V3_ENGINES_META = "v3_engines"
V3_ENGINES_MAX = 10_000  # (engine ID, user) pairs kept across restarts


@dataclass(frozen=True, slots=True)
class AgentConfig:
    inventory: Path
    collector: str
    token_file: Path
    data: Path
    agent_name: str
    traps: tuple[str, int] | None = ("0.0.0.0", 162)  # noqa: S104 - traps come from every device network
    metrics_port: int | None = None
    spool_limits: SpoolLimits = field(default_factory=SpoolLimits)
    batch_items: int = 5_000
    max_parallel: int = 4
    drain_s: float = 10.0
    final_ship_s: float = 5.0
    backoff_max_s: float = 60.0
    request_timeout_s: float = 30.0
    # https://: the collector's certificate is verified against ca_file (else the system's trust store);
    # client_cert/client_key for mutual TLS. http:// beyond loopback only with allow_insecure_http.
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    allow_insecure_http: bool = False

    def tls(self) -> ssl.SSLContext | None:
        """The client TLS context for an https:// collector (None for http://); ConfigError when the URL
        may not carry the token or a TLS file cannot be used."""
        try:
            urls = collector_urls(self.collector)
        except ValueError as exc:
            raise ConfigError([Problem("<command line>", None, "--collector", str(exc))]) from exc
        for url in urls:  # several replicas: each URL must be fit to carry the token
            check_collector_url(url, allow_insecure_http=self.allow_insecure_http)
        if not any(url.lower().startswith("https://") for url in urls):
            if self.ca_file or self.client_cert or self.client_key:
                log.warning("--ca-file, --client-cert and --client-key apply to an https:// collector only")
            return None
        return client_tls(ca_file=self.ca_file, cert_file=self.client_cert, key_file=self.client_key)


def default_agent_name() -> str:
    """The host name, reduced to what the wire format accepts as an agent name."""
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:128]
    return name.lstrip("_.-") or "agent"


class AgentDaemon:
    """One running agent; ``run()`` returns the process exit code.

    ``sink`` replaces the HTTP transport to the collector (a collector in the same process); the
    spool, retries and dead letters stay the same.
    """

    def __init__(self, config: AgentConfig, inventory: Inventory, token: str, *, sink: Sink | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.inventory = inventory
        config.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool = Spool(config.data / SPOOL_FILE, config.spool_limits)
        self.state = StateStore.in_dir(config.data)
        self.shipper = Shipper(self.spool, ShipperConfig(
            url=config.collector, agent=config.agent_name, batch_items=config.batch_items,
            backoff_max_s=config.backoff_max_s, request_timeout_s=config.request_timeout_s), token, sink=sink,
            tls=tls)
        self.scheduler = Scheduler(self._run_job, max_parallel=config.max_parallel)
        self.traps: TrapReceiver | None = None
        self._trap_queue: asyncio.Queue[Event] = asyncio.Queue(TRAP_QUEUE_MAX)
        self._stop = asyncio.Event()
        self._started = time.time()
        self._last_reload: dict[str, Any] = {"at": None, "ok": True, "problems": []}
        self._metrics_server: asyncio.Server | None = None

    # --- one run -----------------------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        devices = [self.inventory.devices[n] for n in job.devices if n in self.inventory.devices]
        if not devices:
            return
        results = await poll_once(devices, {job.protocol}, self.state, self.config.data / "configs")
        samples: list[Sample] = [s for r in results for s in r.samples]
        events: list[Event] = [e for r in results for e in r.events]
        failed = [r for r in results if r.errors]
        if failed:
            log.info("job %s: %d of %d devices answered with errors (first: %s: %s)", job.name, len(failed),
                     len(results), failed[0].device, failed[0].errors[0].message)
        # shielded: a deadline that strikes now must not lose what was already polled
        await asyncio.shield(asyncio.to_thread(self._store, samples, events))
        self.shipper.wake()

    def _store(self, samples: list[Sample], events: list[Event]) -> None:
        self.spool.append(samples, events)
        self.state.save()

    # --- traps -------------------------------------------------------------------------------------

    def _learned_engines(self) -> list[tuple[bytes, str]]:
        """SNMPv3 engine IDs learned from traps in earlier runs (spool meta ``v3_engines``)."""
        kept = self.spool.stats().meta.get(V3_ENGINES_META) or []
        out = []
        for item in kept:
            try:
                out.append((bytes.fromhex(str(item[0])), str(item[1])))
            except (ValueError, IndexError, TypeError):
                continue
        return out

    def _keep_engine(self, engine_id: bytes, user: str) -> None:
        kept = [[e.hex(), u] for e, u in self._learned_engines()]
        if [engine_id.hex(), user] not in kept:
            self.spool.set_meta(V3_ENGINES_META, [*kept, [engine_id.hex(), user]][-V3_ENGINES_MAX:])

    def _on_trap(self, event: Event) -> None:
        try:
            self._trap_queue.put_nowait(event)
        except asyncio.QueueFull:
            self.spool.bump("traps_dropped_queue_full")
            log.error("trap queue full (%d): trap from %s dropped", TRAP_QUEUE_MAX, event.device)

    async def _trap_writer(self) -> None:
        while True:
            first = await self._trap_queue.get()
            events = [first]
            while not self._trap_queue.empty() and len(events) < 1000:
                events.append(self._trap_queue.get_nowait())
            await asyncio.shield(asyncio.to_thread(self.spool.append, (), events))
            self.shipper.wake()

    def _flush_traps(self) -> None:
        events: list[Event] = []
        while not self._trap_queue.empty():
            events.append(self._trap_queue.get_nowait())
        if events:
            self.spool.append((), events)

    # --- reload and status -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Load the inventory file again; keep the running one if the new one is invalid."""
        try:
            new = await asyncio.to_thread(load_inventory, self.config.inventory)
        except ConfigError as exc:
            for p in exc.problems:
                log.error("inventory reload refused: %s", p)
            log.error("inventory reload refused (%d problems): still polling the previous inventory",
                      len(exc.problems))
            self._last_reload = {"at": time.time(), "ok": False, "problems": [str(p) for p in exc.problems]}
            return False
        except OSError as exc:
            log.error("inventory reload refused: %s; still polling the previous inventory", exc)
            self._last_reload = {"at": time.time(), "ok": False, "problems": [str(exc)]}
            return False
        self.inventory = new
        self.shipper.set_inventory(new)  # registered before the next batch leaves
        self.scheduler.set_jobs(plan_jobs(new.devices.values()))
        if self.traps is not None:
            self.traps.set_devices(new.devices.values())
        self._last_reload = {"at": time.time(), "ok": True, "problems": []}
        log.info("inventory reloaded: %d devices", len(new.devices))
        return True

    def status_doc(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "started": self._started, "updated": time.time(), "running": not self._stop.is_set(),
            "agent": self.config.agent_name, "collector": self.config.collector,
            "inventory": str(self.config.inventory), "devices": len(self.inventory.devices),
            "jobs": {n: s.as_dict() for n, s in self.scheduler.stats().items()},
            "traps": None if self.traps is None else self.traps.snapshot(),
            "last_reload": self._last_reload,
        }

    async def _status_loop(self) -> None:
        while True:
            await self._write_status()
            await asyncio.sleep(STATUS_EVERY_S)

    async def _write_status(self) -> None:
        try:
            await asyncio.to_thread(self.spool.set_meta, "daemon", self.status_doc())
        except Exception:  # status is a courtesy; polling goes on without it
            log.debug("could not write the status", exc_info=True)

    async def _serve_metrics(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            stats = await asyncio.to_thread(self.spool.stats)
            body = render_metrics(stats, self.status_doc()).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # --- lifecycle ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self.config.traps is not None:
            host, port = self.config.traps
            self.traps = TrapReceiver(self.inventory.devices.values(), self._on_trap, host=host, port=port,
                                      learned=self._learned_engines(), on_learn=self._keep_engine)
            try:
                self.traps.start()
            except OSError as exc:
                log.error("cannot receive traps on %s:%d: %s", host, port, exc.strerror)
                self.spool.close()
                return 2
        if self.config.metrics_port is not None:
            self._metrics_server = await asyncio.start_server(self._serve_metrics, "127.0.0.1",
                                                              self.config.metrics_port)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = asyncio.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        self.shipper.set_inventory(self.inventory)
        self.scheduler.set_jobs(plan_jobs(self.inventory.devices.values()))
        ship_stop = asyncio.Event()
        helpers = [asyncio.create_task(self._trap_writer()), asyncio.create_task(self._status_loop())]
        shipping = asyncio.create_task(self.shipper.run(ship_stop))
        log.info("agent %s started: %d devices, collector %s, data %s", self.config.agent_name,
                 len(self.inventory.devices), self.config.collector, self.config.data)
        try:
            await self.scheduler.run(self._stop)
        finally:
            await self._shutdown(ship_stop, shipping, helpers)
        return 0

    async def _shutdown(self, ship_stop: asyncio.Event, shipping: asyncio.Task[None],
                        helpers: list[asyncio.Task[None]]) -> None:
        cancelled = await self.scheduler.drain(self.config.drain_s)
        if self.traps is not None:
            self.traps.close()
        for h in helpers:
            h.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await asyncio.to_thread(self._flush_traps)
        ship_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(shipping), timeout=1.0)
        except TimeoutError:
            shipping.cancel()  # a send in flight: its batch stays assigned and is re-sent next start
            await asyncio.gather(shipping, return_exceptions=True)
        acked = await self.shipper.drain(self.config.final_ship_s)
        await self._write_status()
        if self._metrics_server is not None:
            self._metrics_server.close()
        await self.shipper.aclose()
        depth = self.spool.depth()
        self.spool.close()
        log.info("stopped: %d runs cancelled, %d batches shipped at the end, %d rows left in the spool",
                 cancelled, acked, depth)


def render_metrics(stats: SpoolStats, status: dict[str, Any]) -> str:
    """Prometheus text exposition of the agent's own health."""
    lines: list[str] = []

    def metric(name: str, kind: str, value: float, labels: str = "", help_text: str = "") -> None:
        if help_text:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value:g}")

    now = time.time()
    metric("weibao_agent_spool_rows", "gauge", stats.rows, help_text="rows waiting in the spool")
    metric("weibao_agent_spool_bytes", "gauge", stats.payload_bytes, help_text="payload bytes in the spool")
    metric("weibao_agent_spool_oldest_age_seconds", "gauge",
           0 if stats.oldest_created is None else max(0.0, now - stats.oldest_created),
           help_text="age of the oldest unsent row")
    metric("weibao_agent_dead_letter_batches", "gauge", len(stats.dead), help_text="batches refused for good")
    for key in ("dropped_full", "refused_invalid", "shipped_rows", "shipped_batches"):
        metric(f"weibao_agent_{key}_total", "counter", stats.counters.get(key, 0), help_text=key.replace("_", " "))
    first = True
    for job, js in status.get("jobs", {}).items():
        for k in ("runs", "skipped", "timeouts", "failures"):
            metric(f"weibao_agent_job_{k}_total", "counter", js[k], f'{{job="{job}"}}',
                   help_text=f"job {k}" if first else "")
        first = False
    for k, v in (status.get("traps") or {}).items():
        metric(f"weibao_agent_{k}_total", "counter", v, help_text=k.replace("_", " "))
    last = stats.meta.get("last_ship") or {}
    metric("weibao_agent_last_ship_ok", "gauge", 1 if last.get("outcome") in ("acked", "duplicate") else 0,
           help_text="1 when the last shipment was acknowledged")
    if last.get("clock_offset_s") is not None:
        metric("weibao_agent_clock_offset_seconds", "gauge", last["clock_offset_s"],
               help_text="this machine's clock minus the collector's (HTTP Date of the last answer)")
    return "\n".join(lines) + "\n"


def run_daemon(config: AgentConfig, *, on_ready: Callable[[AgentDaemon], None] | None = None) -> int:
    """Load the inventory and token, then run the agent until SIGTERM; returns the exit code."""
    try:
        tls = config.tls()
        inventory = load_inventory(config.inventory)
        token = read_token_file(config.token_file)
    except ConfigError as exc:
        for p in exc.problems:
            log.error("%s", p)
        return 2

    async def main() -> int:
        daemon = AgentDaemon(config, inventory, token, tls=tls)
        if on_ready is not None:
            on_ready(daemon)
        return await daemon.run()

    return asyncio.run(main())
