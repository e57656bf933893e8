"""Deliver queued notifications in a background thread: routing, dedupe, rate limit, coalescing, retries.

``submit`` only routes and queues (no network), so the evaluation that calls it never waits for a mail
server. The worker thread, per channel:

- takes the due items of the outbox; when there are more than ``coalesce_after`` of them, or more than the
  channel's token bucket allows, they go out as ONE digest message (at most ``digest_max`` items each), so a
  burst of changes never becomes a storm of messages;
- a failed delivery is retried with exponential backoff (with jitter) up to ``max_attempts`` in all; then the
  items are marked failed, logged at ERROR, counted, and listed in ``stats().last_failures``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from weibao.collector.notify.config import EmailChannel, NotifyConfig, WebhookChannel
from weibao.collector.notify.email import EmailTransport
from weibao.collector.notify.errors import DeliveryError
from weibao.collector.notify.model import Message, Notification
from weibao.collector.notify.outbox import MemoryOutbox, Outbox, OutboxItem
from weibao.collector.notify.webhook import WebhookTransport
from weibao.core.model import utcnow

log = logging.getLogger(__name__)

LAST_FAILURES = 50


class Transport(Protocol):
    """Something that delivers one message on one channel, raising DeliveryError when it cannot."""

    def send(self, message: Message) -> None: ...


def make_transports(cfg: NotifyConfig) -> dict[str, Transport]:
    out: dict[str, Transport] = {}
    for name, ch in cfg.channels.items():
        if isinstance(ch, EmailChannel):
            out[name] = EmailTransport(name, ch)
        elif isinstance(ch, WebhookChannel):
            out[name] = WebhookTransport(name, ch)
    return out


@dataclass(frozen=True, slots=True)
class Failure:
    at: datetime
    channel: str
    tickets: tuple[str, ...]
    attempts: int
    error: str
    final: bool  # True: given up; False: will be retried


@dataclass(frozen=True, slots=True)
class DispatchStats:
    queued: int
    deduplicated: int
    unrouted: int
    messages_sent: int
    notifications_sent: int
    coalesced: int  # notifications that went out inside a digest
    attempts_failed: int
    given_up: int  # notifications abandoned after max_attempts (or a permanent error)
    pending: int
    last_failures: tuple[Failure, ...] = field(default=())


class TokenBucket:
    def __init__(self, per_minute: float, burst: int, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def available(self, now: float) -> int:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def take(self) -> None:
        self.tokens -= 1.0


class Dispatcher:
    """Routes notifications to channels and delivers them from a worker thread (``start`` / ``stop``)."""

    def __init__(self, cfg: NotifyConfig, *, outbox: Outbox | None = None,
                 transports: Mapping[str, Transport] | None = None,
                 clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic,
                 ticket_url: Callable[[str], str | None] | None = None,
                 extra_recipients: Callable[[str, datetime], tuple[str, ...]] | None = None) -> None:
        self.cfg = cfg
        # (channel, time) -> who else gets it: the protection periods of the working calendar
        self._extra = extra_recipients or (lambda _channel, _at: ())
        self._ticket_url = ticket_url  # the console page a message links to
        self.outbox: Outbox = outbox if outbox is not None else MemoryOutbox()
        self.transports = dict(transports) if transports is not None else make_transports(cfg)
        unknown = set(self.transports) - set(cfg.channels)
        if unknown:
            raise ValueError(f"transports for unconfigured channels: {sorted(unknown)}")
        self._clock = clock
        self._mono = monotonic
        self._buckets = {name: TokenBucket(ch.rate.per_minute, ch.rate.burst, monotonic())
                         for name, ch in cfg.channels.items()}
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("queued", "deduplicated", "unrouted", "messages_sent",
                                      "notifications_sent", "coalesced", "attempts_failed", "given_up"), 0)
        self._failures: deque[Failure] = deque(maxlen=LAST_FAILURES)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the evaluation side -----------------------------------------------------------------------------
    def submit(self, n: Notification) -> int:
        """Queue ``n`` on every channel whose routing takes it; returns how many channels queued it.

        Never touches the network; a change already queued on a channel is not queued again.
        """
        now = self._clock()
        if n.link is None and self._ticket_url is not None:
            n = replace(n, link=self._ticket_url(n.ticket_id))
        queued = 0
        routed = False
        for name, ch in self.cfg.channels.items():
            if name not in self.transports or not ch.routing.accepts(n.level, n.change):
                continue
            routed = True
            if self.outbox.put(name, n, self._extra(name, n.at), now):
                queued += 1
            else:
                self._count("deduplicated")
        self._count("queued", queued)
        if not routed:
            self._count("unrouted")
        if queued:
            self._wake.set()
        return queued

    def wake(self) -> None:
        """Look at the outbox now (rows committed by someone else's transaction: ``TicketOps``)."""
        self._wake.set()

    def submit_all(self, notifications: Iterable[Notification]) -> int:
        return sum(self.submit(n) for n in notifications)

    # -- the worker --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="weibao-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current delivery; what is still queued stays in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for t in self.transports.values():
            close = getattr(t, "close", None)
            if callable(close):
                close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.process_once()
            except Exception:  # the worker must survive a broken outbox or transport; the error is logged
                log.exception("notification worker pass failed")
            self._wake.wait(self.cfg.dispatch.poll_interval_s)
            self._wake.clear()

    def process_once(self) -> int:
        """One pass over every channel; returns the number of messages delivered."""
        sent = 0
        for name in self.transports:
            if self._stop.is_set():
                break
            sent += self._process_channel(name)
        return sent

    def _process_channel(self, name: str) -> int:
        d = self.cfg.dispatch
        bucket = self._buckets[name]
        tokens = bucket.available(self._mono())
        if tokens < 1:
            return 0
        items = self.outbox.due(name, self._clock(), limit=d.digest_max * tokens)
        if not items:
            return 0
        if len(items) <= min(tokens, d.coalesce_after):
            batches = [[i] for i in items]
        else:
            batches = [items[k:k + d.digest_max] for k in range(0, len(items), d.digest_max)][:tokens]
        sent = 0
        for batch in batches:
            bucket.take()
            if self._deliver(name, batch):
                sent += 1
        return sent

    def _deliver(self, name: str, batch: list[OutboxItem]) -> bool:
        extras: dict[str, None] = {}
        for item in batch:
            for r in item.extra_recipients:
                extras.setdefault(r, None)
        message = Message(items=tuple(i.notification for i in batch), extra_recipients=tuple(extras))
        ids = [i.id for i in batch]
        attempts = max(i.attempts for i in batch) + 1
        try:
            self.transports[name].send(message)
        except DeliveryError as exc:
            self._failed(name, batch, ids, attempts, exc)
            return False
        except Exception as exc:  # a bug in a transport is a failed delivery, not a dead worker
            log.exception("channel %s: unexpected error while sending", name)
            self._failed(name, batch, ids, attempts, DeliveryError(f"channel {name}: {type(exc).__name__}",
                                                                   retryable=True))
            return False
        self.outbox.mark_sent(ids, self._clock())
        self._count("messages_sent")
        self._count("notifications_sent", len(batch))
        if len(batch) > 1:
            self._count("coalesced", len(batch))
        return True

    def _failed(self, name: str, batch: list[OutboxItem], ids: list[int], attempts: int,
                exc: DeliveryError) -> None:
        d = self.cfg.dispatch
        error = str(exc)
        tickets = tuple(dict.fromkeys(i.notification.ticket_id for i in batch))
        final = not exc.retryable or attempts >= d.max_attempts
        self._count("attempts_failed")
        now = self._clock()
        if final:
            self.outbox.mark_failed(ids, attempts, error)
            self._count("given_up", len(batch))
            log.error("channel %s: giving up on %d notification(s) for tickets %s after %d attempt(s): %s",
                      name, len(batch), ", ".join(tickets), attempts, error)
        else:
            delay = min(d.backoff_max_s, d.backoff_initial_s * 2 ** (attempts - 1))
            delay *= random.uniform(0.8, 1.2)  # jitter: channels that failed together do not retry together
            self.outbox.mark_retry(ids, attempts, now + timedelta(seconds=delay), error)
            log.warning("channel %s: attempt %d/%d failed, retry in %.1f s: %s",
                        name, attempts, d.max_attempts, delay, error)
        with self._lock:
            self._failures.append(Failure(now, name, tickets, attempts, error, final))

    # -- visibility --------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> DispatchStats:
        with self._lock:
            c = dict(self._counts)
            failures = tuple(self._failures)
        return DispatchStats(pending=self.outbox.pending(), last_failures=failures, **c)
