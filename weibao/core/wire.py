"""The agent -> collector wire format (DESIGN.md "Wire format"): pydantic models and conversions.

Both sides use this module: the agent encodes samples and events with :func:`sample_json` /
:func:`event_json` and whole bodies with :func:`batch_body` (or :func:`encode_batch`); the collector
validates request bodies with :func:`parse_batch_fast` (the usual shape of a valid batch, faster) and, for
any body that one steps aside from, :meth:`IngestBatch.model_validate_json`.
Timestamps always carry an offset; a naive timestamp is refused on both sides.
"""

from __future__ import annotations

import email.utils
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from weibao.core.inventory import DEVICE_NAME, Category, Kind
from weibao.core.model import Event, EventKind, Sample
from weibao.core.timeutil import to_ms

_loads: Callable[[bytes], Any]
try:  # optional (PyPI orjson): faster than the standard library on a batch body
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - depends on what is installed
    _loads = json.loads

INGEST_PATH = "/api/v1/ingest"
INVENTORY_PATH = "/api/v1/inventory"
# agent and collector compare clocks through the HTTP Date headers of each request and answer; dates
# have whole seconds and a request takes a little, so only a larger difference is worth a warning
CLOCK_WARN_S = 30.0


def http_date(value: str | None) -> float | None:
    """An HTTP Date header as epoch seconds; None when absent or unreadable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None

# the inventory loader's rule (core.inventory): no control character, no space, nothing a terminal misreads
DeviceName = Annotated[str, StringConstraints(pattern=DEVICE_NAME.pattern)]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=128)]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
LabelValue = Annotated[str, StringConstraints(max_length=256)]
AgentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]

# what a key's name holds, once lower-cased with everything but letters and digits taken out, when it would
# mean a credential travelled in an inventory registration (authKey, snmp_community, pass-word, api-token...)
_SECRET_WORDS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "community", "credential",
                 "authkey", "privkey", "privatekey", "apikey")


def _secret_key(key: object) -> bool:
    name = "".join(c for c in str(key).lower() if c.isalnum())
    # a credential's name (``credential_name``: which entry of the secrets file) is no credential
    return name != "credentialname" and any(w in name for w in _SECRET_WORDS)


_EDGE = ConfigDict(extra="forbid", allow_inf_nan=False)

# the largest magnitude a sample's value may have: far above any reading (a 64-bit counter is below 2e19),
# far enough below the float range that no rollup sum or report figure can overflow to infinity
MAX_ABS_VALUE = 1e30


def _a_number(value: Any) -> Any:
    # JSON's true and "1" are no readings (pydantic's lax mode would take them as 1.0)
    if isinstance(value, bool | str):
        raise ValueError("a number is expected")
    return value


def _iso_text(value: Any) -> Any:
    # a wire time is ISO 8601 text with its offset; a bare number (seconds since 1970?) is refused
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_START.match(value)):
        return value
    raise ValueError("an ISO 8601 time with an offset is expected, e.g. 2026-11-25T08:00:00+08:00")


_ISO_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
SampleValue = Annotated[float, BeforeValidator(_a_number), Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
WireTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]

# an event's ``data`` (trap varbinds, a configuration diff): bounded so that no body can exhaust the
# collector's stack or memory; the agent's own events stay well inside (a diff is cut to DIFF_MAX_CHARS)
EVENT_DATA_MAX_DEPTH = 8
EVENT_DATA_MAX_BYTES = 1024 * 1024
DIFF_MAX_CHARS = 512 * 1024


def event_data_problem(data: Any) -> str | None:
    """Why ``data`` cannot be an event's data (nested deeper than EVENT_DATA_MAX_DEPTH containers, or larger
    than EVENT_DATA_MAX_BYTES as JSON), else None. Iterative: any depth is measured without recursion."""
    size = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > EVENT_DATA_MAX_DEPTH:
                return f"nested deeper than {EVENT_DATA_MAX_DEPTH} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, inner in items:
                size += len(key) + 4 if isinstance(key, str) else 1
                stack.append((inner, depth + 1))
            size += 2
        elif isinstance(value, str):
            size += len(value) + 2
        else:
            size += 8
        if size > EVENT_DATA_MAX_BYTES:
            return f"larger than {EVENT_DATA_MAX_BYTES} bytes"
    return None


def _bounded_data(data: dict[str, Any]) -> dict[str, Any]:
    problem = event_data_problem(data)
    if problem is not None:
        raise ValueError(problem)
    return data


EventData = Annotated[dict[str, Any], AfterValidator(_bounded_data)]


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


# Samples and events are TypedDicts validated by pydantic: the same checks as a model, but a batch of
# 10,000 samples validates in about half the time because no model object is built per sample.
@with_config(_EDGE)
class WireSample(TypedDict):
    device: DeviceName
    metric: MetricName
    value: SampleValue
    ts: WireTime
    labels: NotRequired[dict[LabelKey, LabelValue]]


@with_config(_EDGE)
class WireEvent(TypedDict):
    device: DeviceName
    kind: EventKind
    ts: WireTime
    data: NotRequired[EventData]


class IngestBatch(_Edge):
    """One POST /api/v1/ingest body: applied whole or not at all, once per ``batch_id``."""

    batch_id: uuid.UUID
    agent: AgentName
    samples: list[WireSample] = Field(default_factory=list)
    events: list[WireEvent] = Field(default_factory=list)


class RegisteredDevice(_Edge):
    """A device as the collector learns it: ``Device.public()``, which carries no credential."""

    name: DeviceName
    address: str
    kind: Kind
    category: Category
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    depends_on: DeviceName | None = None
    snmp: dict[str, Any] | None = None
    ssh: dict[str, Any] | None = None
    icmp: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    asset: dict[str, Any] = Field(default_factory=dict)

    @field_validator("snmp", "ssh", "icmp", "schedule", "asset")
    @classmethod
    def _no_credentials(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            found = sorted(_secret_paths(v))
            if found:
                raise ValueError(f"must not carry credentials (found {', '.join(found)})")
        return v


def _secret_paths(value: Any, prefix: str = "") -> list[str]:
    """Where a credential-like key sits in ``value``, at any depth and in any spelling (Community, auth-key)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}{key}"
            if _secret_key(key):
                found.append(path)
            else:
                found += _secret_paths(inner, path + ".")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _secret_paths(inner, f"{prefix}{i}.")
    return found


class InventoryRegistration(_Edge):
    """One PUT /api/v1/inventory body: every device an agent polls (the agent's whole set). Each name once;
    no device behind itself, directly or around a circle of ``depends_on`` (an upstream may be another
    agent's device, which the collector checks against what it knows)."""

    site: str = Field(min_length=1, max_length=128)
    agent: AgentName
    devices: list[RegisteredDevice]

    @model_validator(mode="after")
    def _names_and_dependencies(self) -> InventoryRegistration:
        seen: set[str] = set()
        for d in self.devices:
            if d.name in seen:
                raise ValueError(f"device {d.name!r} is listed twice")
            seen.add(d.name)
        circle = dependency_circle({d.name: d.depends_on for d in self.devices})
        if circle:
            raise ValueError("depends_on goes round in a circle: " + " -> ".join(circle))
        return self


def dependency_circle(upstream: Mapping[str, str | None]) -> list[str] | None:
    """A circle of ``depends_on`` among ``upstream`` (device -> its upstream), written from its first device
    back to it (``a -> b -> a``; ``a -> a`` for a device behind itself), or None when there is none."""
    done: set[str] = set()
    for start in upstream:
        path: list[str] = []
        on_path: set[str] = set()
        d: str | None = start
        while d is not None and d not in done:
            if d in on_path:
                return [*path[path.index(d):], d]
            path.append(d)
            on_path.add(d)
            d = upstream.get(d)
        done.update(path)
    return None


# --- conversions: the one encoder of samples, events and batch bodies -------------------------------


def _aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what}: naive timestamp {ts.isoformat()} (an offset is required)")
    return ts


def sample_json(s: Sample) -> dict[str, Any]:
    """A sample as the wire carries it. Refuses (ValueError) what the collector would refuse for sure: a naive
    timestamp, a NaN or infinite value."""
    if not -MAX_ABS_VALUE <= s.value <= MAX_ABS_VALUE:  # NaN too
        raise ValueError(f"{s.device} {s.metric}: value {s.value} is not finite or beyond ±{MAX_ABS_VALUE:g}")
    return {"device": s.device, "metric": s.metric, "value": float(s.value),
            "ts": _aware(s.ts, s.device).isoformat(), "labels": dict(s.labels)}


def event_json(e: Event) -> dict[str, Any]:
    """An event as the wire carries it (a naive timestamp is refused)."""
    return {"device": e.device, "kind": str(e.kind), "ts": _aware(e.ts, e.device).isoformat(),
            "data": dict(e.data)}


def batch_body(batch_id: uuid.UUID | str, agent: str, samples: list[dict[str, Any]],
               events: list[dict[str, Any]]) -> bytes:
    """The JSON body of POST /api/v1/ingest from samples and events already in wire form."""
    doc = {"batch_id": str(batch_id), "agent": agent, "samples": samples, "events": events}
    # allow_nan=False: NaN is not JSON, and the collector refuses a whole batch for one
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()


def encode_batch(agent: str, samples: Iterable[Sample], events: Iterable[Event] = (),
                 batch_id: uuid.UUID | str | None = None) -> bytes:
    """The JSON body of a batch of samples and events (ValueError on what ``sample_json`` refuses)."""
    return batch_body(batch_id or uuid.uuid4(), agent, [sample_json(s) for s in samples],
                      [event_json(e) for e in events])


def wire_to_sample(w: WireSample) -> Sample:
    return Sample(device=w["device"], metric=w["metric"], value=w["value"], ts=w["ts"],
                  labels=dict(w.get("labels") or {}))


def wire_to_event(w: WireEvent) -> Event:
    return Event(device=w["device"], kind=w["kind"], ts=w["ts"], data=dict(w.get("data") or {}))


# --- fast path of the collector's parse ------------------------------------------------------

# Each pattern accepts a subset of what the pydantic type above accepts; anything else, valid or not,
# is left to pydantic, which stays the validator of record and names the field of every problem.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}").fullmatch
_AGENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}").fullmatch
_DEVICE = re.compile(DEVICE_NAME.pattern).match
_METRIC = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*").fullmatch
_LABEL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").fullmatch
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                 r"(?:Z|[+-](?:0[0-9]|1[0-8]):[0-5][0-9])").fullmatch
_TOP_KEYS = frozenset({"batch_id", "agent", "samples", "events"})
_SAMPLE_KEYS = frozenset({"device", "metric", "value", "ts", "labels"})
_SAMPLE_REQUIRED = frozenset({"device", "metric", "value", "ts"})
_EXACT_INT = 2**53
_CACHE_MAX = 100_000


class _Known:
    """Names and timestamps already found valid: a batch repeats the same few thousand strings."""

    def __init__(self) -> None:
        self.devices: set[str] = set()
        self.metrics: set[str] = set()
        self.label_keys: set[str] = set()
        self.label_values: set[str] = set()
        self.times: dict[str, tuple[datetime, int]] = {}

    def trim(self) -> None:
        for cache in (self.devices, self.metrics, self.label_keys, self.label_values, self.times):
            if len(cache) > _CACHE_MAX:
                cache.clear()


_known = _Known()


def _time(text: Any) -> tuple[datetime, int] | None:
    """(aware datetime, ms since the epoch) of an RFC 3339 timestamp; None for anything else."""
    if type(text) is not str or _TS(text) is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
        found = _known.times[text] = (ts, to_ms(ts))
    except (ValueError, OverflowError):
        return None
    return found


def _text_ok(text: str) -> bool:
    """False for text that UTF-8 cannot carry (a lone surrogate from an escape)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _labels_ok(labels: Any) -> bool:
    if type(labels) is not dict:
        return False
    keys, values = _known.label_keys, _known.label_values
    for k, v in labels.items():
        if k not in keys:
            if type(k) is not str or len(k) > 64 or _LABEL_KEY(k) is None:
                return False
            keys.add(k)
        if type(v) is not str:
            return False
        if v not in values:
            if len(v) > 256 or not _text_ok(v):
                return False
            values.add(v)
    return True


def parse_batch_fast(body: bytes) -> tuple[IngestBatch, list[int]] | None:
    """The batch of ``body`` and each sample's time in ms since the epoch, for the common shape of a
    valid batch only (RFC 3339 times, numeric values...); None means "ask pydantic", which accepts or
    refuses it with the field named. Samples are the same dicts as pydantic's: ``ts`` an aware datetime
    (one object per distinct time text, shared), ``value`` a float. Events are validated by the model:
    an invalid one raises its ValidationError (``events.N...``)."""
    try:
        doc = _loads(body)
    except (ValueError, RecursionError):
        return None
    if type(doc) is not dict or not doc.keys() <= _TOP_KEYS:
        return None
    bid, agent = doc.get("batch_id"), doc.get("agent")
    samples, events = doc.get("samples", []), doc.get("events", [])
    if (type(bid) is not str or _UUID(bid) is None or type(agent) is not str or _AGENT(agent) is None
            or type(samples) is not list or type(events) is not list):
        return None
    known = _known
    known.trim()
    devices, metrics, times = known.devices, known.metrics, known.times
    label_keys, label_values = known.label_keys, known.label_values
    full, required = _SAMPLE_KEYS, _SAMPLE_REQUIRED
    ts_ms: list[int] = []
    add = ts_ms.append
    for s in samples:
        if type(s) is not dict:
            return None
        keys = s.keys()
        if len(keys) == 5:
            if keys != full:
                return None
            labels = s["labels"]
            if labels != {}:
                if type(labels) is not dict:
                    return None
                for k, v in labels.items():
                    # type first: a list or object is unhashable, and never a label value
                    if type(v) is not str or k not in label_keys or v not in label_values:
                        if not _labels_ok(labels):
                            return None
                        break
        elif keys != required:
            return None
        device, metric, value = s["device"], s["metric"], s["value"]
        if type(device) is not str or type(metric) is not str:
            return None
        if device not in devices:
            if _DEVICE(device) is None:
                return None
            devices.add(device)
        if metric not in metrics:
            if len(metric) > 128 or _METRIC(metric) is None:
                return None
            metrics.add(metric)
        if type(value) is not float:
            if type(value) is not int or not -_EXACT_INT <= value <= _EXACT_INT:
                return None
            s["value"] = float(value)
        elif not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN and infinities too
            return None
        tstext = s["ts"]
        found = times.get(tstext) if type(tstext) is str else None
        if found is None:
            found = _time(tstext)
            if found is None:
                return None
        s["ts"] = found[0]
        add(found[1])
    if events:
        # rare and few: the model itself validates them (every value here came from JSON, so Python mode
        # reads them as JSON mode would); an invalid event raises pydantic's own ValidationError, naming
        # it: its data may be nested too deeply for pydantic's JSON parser to reach the depth check
        events = IngestBatch.model_validate({"batch_id": bid, "agent": agent, "events": events}).events
    batch = IngestBatch.model_construct(batch_id=uuid.UUID(bid), agent=agent, samples=samples, events=events)
    return batch, ts_ms
