"""Ship the spool to the collector: oldest batch first, retried with backoff, deleted only when acknowledged.

Outcomes of one POST /api/v1/ingest:

    2xx                         acknowledged (also {"duplicate": true}): the rows leave the spool
    network error, 5xx          kept, retried with exponential backoff and jitter (bounded delay);
                                a refused connection (nothing listens: the collector is down or
                                restarting) costs nothing to retry, so its delay is capped low
                                (``reconnect_max_s``) and the backlog ships seconds after it is back
    401, 403, 404, 408, 429     kept and retried; 401/403/404 are a configuration problem
                                (token, URL) that a person must fix, logged as errors, never a
                                reason to throw the client's data away
    any other 4xx               the collector refuses this batch for good: dead-letter table,
                                with the status and the collector's reason

Before the first batch (and after every inventory reload) the agent registers its devices with
PUT /api/v1/inventory, because the collector refuses samples of devices it does not know.

Clocks: samples carry the agent's own time, so a wrong agent clock puts every sample at the wrong time.
Each request carries an HTTP ``Date`` header and every collector answer has one; the shipper compares it
with its own clock (to the second), logs a warning when they differ by more than ``CLOCK_WARN_S`` and
``weibao agent status`` and the agent's /metrics show the difference.

Several collectors (replicas sharing one PostgreSQL): ``url`` may list base URLs separated by commas. The
sink sends to the one that answered last; when it cannot be reached or answers 502/503/504, the same request
goes to the next, each at most once per request. A batch still leaves the spool only when a collector
acknowledged it; a batch that reached the first collector before it failed is answered ``duplicate`` by the
next (they share the batch ids), so nothing is stored twice.

Transport security: over ``https://`` the collector's certificate is verified (a CA file or the system's
trust store; mutual TLS with a client certificate when the collector asks for one); a certificate that
is not trusted is logged as an error, never skipped. Plain ``http://`` carries the token only to this
machine unless the operator allows more (``weibao.core.transport``).

The transport is a ``Sink``: ``HttpSink`` (the default) posts to the collector's API; a collector in the
same process (``weibao run``) provides its own sink that answers with the same statuses, so the outcomes
above hold for both.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import httpx

from weibao.agent.inventory import Inventory
from weibao.agent.spool import Batch, Spool
from weibao.core.wire import (
    CLOCK_WARN_S,
    INGEST_PATH,
    INVENTORY_PATH,
    InventoryRegistration,
    RegisteredDevice,
    batch_body,
    http_date,
)

log = logging.getLogger(__name__)

CLOCK_WARN_EVERY_S = 3600.0
FAILOVER_STATUSES = frozenset({502, 503, 504})  # the next collector is tried (several URLs)
RETRY_4XX = frozenset({401, 403, 404, 408, 429})
ALERT_4XX = frozenset({401, 403, 404})


class Outcome(StrEnum):
    ACKED = "acked"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    url: str                       # the collector's base URL, e.g. http://127.0.0.1:8080
    agent: str                     # this agent's name in every batch
    batch_items: int = 5_000
    batch_bytes: int = 4_000_000
    request_timeout_s: float = 30.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    reconnect_max_s: float = 5.0   # the cap while the connection is refused outright
    idle_s: float = 1.0            # how long to wait for new rows when the spool is empty


@dataclass(slots=True)
class ShipReport:
    """The last attempt's result, as ``weibao agent status`` shows it."""

    at: float = 0.0
    outcome: str = ""
    status: int | None = None
    detail: str = ""
    batch_id: str = ""
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    clock_offset_s: float | None = None  # this agent's clock minus the collector's

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "outcome": self.outcome, "status": self.status, "detail": self.detail,
                "batch_id": self.batch_id, "rows": self.rows, "clock_offset_s": self.clock_offset_s}


@dataclass(frozen=True, slots=True)
class SendResult:
    """A sink's answer: an HTTP status (None when nothing is known to have arrived) and the reason."""

    status: int | None
    detail: str = ""
    duplicate: bool = False  # acknowledged, and the collector already had this batch
    refused: bool = False    # the connection was refused: nothing listens at the collector's address
    server_date: float | None = None  # the answer's Date header (epoch seconds), when it had one

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sink(Protocol):
    """Where batches go: the collector's ingest and inventory registration, with HTTP statuses."""

    async def send(self, batch_id: str, body: bytes) -> SendResult: ...

    async def register(self, body: bytes) -> SendResult: ...

    async def aclose(self) -> None: ...


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [initial/2, min(max, initial * 2**attempt)]."""
    r = rng or random
    cap = min(maximum, initial * (2 ** min(attempt, 30)))
    return max(initial / 2, r.uniform(initial / 2, cap))


def _refused(exc: httpx.HTTPError) -> bool:
    """Whether the collector's host answered that nothing listens (ECONNREFUSED), as opposed to silence."""
    if not isinstance(exc, httpx.ConnectError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "refused" in str(exc).lower()


def _untrusted(exc: httpx.HTTPError) -> bool:
    """Whether the TLS handshake failed on the collector's certificate (not a network failure)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return json.dumps(body["detail"], ensure_ascii=False)[:2000]
    return json.dumps(body, ensure_ascii=False)[:2000]


def collector_urls(url: str) -> list[str]:
    """The base URLs of ``url``: one, or several separated by commas (replicas, tried in order)."""
    urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
    if not urls:
        raise ValueError("no collector URL given")
    return urls


class HttpSink:
    """The collector's HTTP API: POST /api/v1/ingest and PUT /api/v1/inventory with a bearer token; with
    several base URLs, fails over to the next (see the module docstring)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0,
                 client: httpx.AsyncClient | None = None, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: the verifying context for an https:// collector (``weibao.core.transport.client_tls``)."""
        self.urls = collector_urls(url)
        self.current = 0  # index of the URL that answered last
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._client = client or httpx.AsyncClient(timeout=timeout_s, verify=tls if tls is not None else True)
        self._own_client = client is None

    async def _call(self, method: str, path: str, body: bytes) -> SendResult:
        n = len(self.urls)
        res = SendResult(None, "no collector URL")
        refused = True
        for k in range(n):
            i = (self.current + k) % n
            res = await self._call_one(self.urls[i], method, path, body)
            refused = refused and res.refused
            if res.status is not None and res.status not in FAILOVER_STATUSES:
                if i != self.current:
                    log.warning("collector %s answers (%s did not): shipping there", self.urls[i],
                                self.urls[self.current])
                    self.current = i
                return res
            if n > 1:
                log.info("collector %s: %s; trying the next", self.urls[i], res.detail or res.status)
        return replace(res, refused=refused)

    async def _call_one(self, base: str, method: str, path: str, body: bytes) -> SendResult:
        headers = {**self._headers, "Date": email.utils.formatdate(usegmt=True)}
        try:
            resp = await self._client.request(method, f"{base}{path}", content=body, headers=headers)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if _untrusted(exc):
                detail += " (the collector's certificate is not trusted here: check --ca-file and its name)"
            return SendResult(None, detail, refused=_refused(exc))
        date = http_date(resp.headers.get("date"))
        if not resp.is_success:
            return SendResult(resp.status_code, _reason(resp), server_date=date)
        dup = False
        try:
            answer = resp.json()
            dup = isinstance(answer, dict) and bool(answer.get("duplicate"))
        except ValueError:
            pass
        return SendResult(resp.status_code, "", dup, server_date=date)

    async def send(self, batch_id: str, body: bytes) -> SendResult:
        return await self._call("POST", INGEST_PATH, body)

    async def register(self, body: bytes) -> SendResult:
        return await self._call("PUT", INVENTORY_PATH, body)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


class Shipper:
    """Moves batches from the spool to the collector (``sink``, by default its HTTP API) until stopped."""

    def __init__(self, spool: Spool, config: ShipperConfig, token: str,
                 client: httpx.AsyncClient | None = None, *, sink: Sink | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.spool = spool
        self.config = config
        self.sink: Sink = sink or HttpSink(config.url, token, timeout_s=config.request_timeout_s, client=client,
                                           tls=tls)
        self._wake = asyncio.Event()
        self._registration: InventoryRegistration | None = None
        self._failures = 0
        self._refused = False  # the last failure was a refused connection
        self.clock_offset_s: float | None = None
        self._clock_warned = 0.0
        self.last = ShipReport()

    def wake(self) -> None:
        """New rows are in the spool: do not wait for the idle period."""
        self._wake.set()

    def set_inventory(self, inventory: Inventory) -> None:
        """The devices to register with the collector before shipping anything more."""
        try:
            self._registration = registration(inventory, self.config.agent)
        except ValueError as exc:
            log.error("the inventory cannot be registered with the collector: %s", exc)
            self._registration = None
        self._wake.set()

    async def aclose(self) -> None:
        await self.sink.aclose()

    # --- one step ----------------------------------------------------------------------------------

    async def register(self) -> Outcome:
        if self._registration is None:
            return Outcome.ACKED
        reg = self._registration
        res = await self.sink.register(reg.model_dump_json().encode())
        self._answered(res)
        if res.status is None:
            self._note("retry", None, f"inventory registration: {res.detail}", "", 0)
            return Outcome.RETRY
        if res.ok:
            log.info("registered %d devices with the collector", len(reg.devices))
            self._registration = None
            return Outcome.ACKED
        log.error("collector refused the inventory (status %d): %s", res.status, res.detail)
        self._note("retry", res.status, f"inventory registration: {res.detail}", "", 0)
        return Outcome.RETRY

    async def ship_one(self) -> Outcome | None:
        """Send the oldest batch once; None when the spool holds nothing to send."""
        if await self.register() is not Outcome.ACKED:
            return Outcome.RETRY
        batch = await asyncio.to_thread(self.spool.next_batch, self.config.batch_items, self.config.batch_bytes)
        if batch is None:
            return None
        return await self._send(batch)

    async def _send(self, batch: Batch) -> Outcome:
        body = batch_body(batch.batch_id, self.config.agent, batch.samples, batch.events)
        res = await self.sink.send(batch.batch_id, body)
        self._answered(res)
        status = res.status
        if status is None:
            await asyncio.to_thread(self.spool.record_attempt, batch.batch_id, res.detail)
            self._note("retry", None, res.detail, batch.batch_id, len(batch))
            return Outcome.RETRY
        if res.ok:
            await asyncio.to_thread(self.spool.ack, batch.batch_id)
            if res.duplicate:  # sent before a crash or a lost answer: the collector already had it
                await asyncio.to_thread(self.spool.bump, "duplicate_batches")
            self._note("duplicate" if res.duplicate else "acked", status, "", batch.batch_id, len(batch))
            log.debug("batch %s acknowledged (%d rows%s)", batch.batch_id, len(batch),
                      ", already had it" if res.duplicate else "")
            return Outcome.ACKED
        detail = res.detail
        if 400 <= status < 500 and status not in RETRY_4XX:
            await asyncio.to_thread(self.spool.dead_letter, batch, status, detail)
            await asyncio.to_thread(self.spool.bump, "dead_letters_new")
            self._note("dead", status, detail, batch.batch_id, len(batch))
            return Outcome.DEAD
        if status in ALERT_4XX:
            log.error("collector answers %d to batch %s: %s (the token or the collector URL needs fixing; "
                      "the batch is kept)", status, batch.batch_id, detail)
        await asyncio.to_thread(self.spool.record_attempt, batch.batch_id, f"{status}: {detail}")
        self._note("retry", status, detail, batch.batch_id, len(batch))
        return Outcome.RETRY

    def _answered(self, res: SendResult) -> None:
        self._refused = res.refused
        if res.server_date is None:
            return
        offset = round(time.time() - res.server_date)
        previous, self.clock_offset_s = self.clock_offset_s, float(offset)
        now = time.monotonic()
        if abs(offset) > CLOCK_WARN_S:
            if not self._clock_warned or now - self._clock_warned >= CLOCK_WARN_EVERY_S:
                self._clock_warned = now
                log.warning("this machine's clock is %d s %s the collector's: every sample is stamped with it; "
                            "fix its time synchronisation (NTP)", abs(offset), "ahead of" if offset > 0 else "behind")
        elif previous is not None and abs(previous) > CLOCK_WARN_S:
            self._clock_warned = 0.0
            log.info("this machine's clock agrees with the collector's again (%+d s)", offset)

    def _note(self, outcome: str, status: int | None, detail: str, batch_id: str, rows: int) -> None:
        self.last = ShipReport(time.time(), outcome, status, detail[:500], batch_id, rows,
                               clock_offset_s=self.clock_offset_s)
        try:
            self.spool.set_meta("last_ship", self.last.as_dict())
        except Exception:  # status is a courtesy; shipping goes on without it
            log.debug("could not record the last ship result", exc_info=True)

    # --- loops -------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until ``stop`` is set; never raises for a collector or network failure."""
        while not stop.is_set():
            try:
                outcome = await self.ship_one()
            except (OSError, RuntimeError, ValueError) as exc:  # spool trouble: log, wait, try again
                log.exception("shipping failed: %s", exc)
                outcome = Outcome.RETRY
            if outcome is None:
                self._failures = 0
                await self._wait(stop, self.config.idle_s)
            elif outcome is Outcome.RETRY:
                cap = self.config.backoff_max_s
                if self._refused:
                    cap = min(cap, max(self.config.reconnect_max_s, self.config.backoff_initial_s))
                delay = backoff_delay(self._failures, self.config.backoff_initial_s, cap)
                self._failures += 1
                if self._failures in (1, 5) or self._failures % 20 == 0:
                    # a certificate that is not trusted will not fix itself: a person must act
                    level = logging.ERROR if "certificate is not trusted" in self.last.detail else logging.WARNING
                    log.log(level, "collector unreachable or refusing (attempt %d): %s; next try in %.1f s",
                            self._failures, self.last.detail, delay)
                await self._wait(stop, delay, wakeable=False)
            else:
                if self._failures:
                    log.info("collector reachable again after %d failed attempts", self._failures)
                self._failures = 0

    async def _wait(self, stop: asyncio.Event, seconds: float, *, wakeable: bool = True) -> None:
        waiters = [asyncio.create_task(stop.wait())]
        if wakeable:
            waiters.append(asyncio.create_task(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self._wake.clear()

    async def drain(self, deadline_s: float) -> int:
        """Ship what fits in ``deadline_s`` (at shutdown); returns batches acknowledged. No retries."""
        acked = 0
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                outcome = await asyncio.wait_for(self.ship_one(), timeout=max(0.1, end - time.monotonic()))
            except TimeoutError:
                break
            if outcome is None or outcome is Outcome.RETRY:
                break
            acked += outcome is Outcome.ACKED
        return acked


def registration(inventory: Inventory, agent: str) -> InventoryRegistration:
    """The registration of every device of ``inventory`` (no credentials: ``Device.public()``)."""
    return InventoryRegistration(
        site=inventory.site, agent=agent,
        devices=[RegisteredDevice.model_validate(d.public()) for d in inventory.devices.values()])
