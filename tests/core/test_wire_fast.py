"""The fast parse of an ingest body agrees with pydantic: same batch, or it steps aside (None)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from weibao.core import wire
from weibao.core.wire import IngestBatch, parse_batch_fast

BID = "8a91ac79-ccfc-45f7-b458-8aa348c908fc"


def _body(samples: list[Any], **top: Any) -> bytes:
    doc = {"batch_id": BID, "agent": "site-a", "samples": samples, **top}
    return json.dumps(doc).encode()


def _sample(**over: Any) -> dict[str, Any]:
    s = {"device": "core-sw-1", "metric": "if.in_bps", "value": 1.5, "ts": "2026-11-25T08:00:00.250+08:00",
         "labels": {"ifName": "Gi0/1"}}
    s.update(over)
    return {k: v for k, v in s.items() if v is not _DROP}


_DROP = object()


@pytest.fixture(autouse=True, params=["installed", "stdlib"])
def _decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both JSON decoders the module may use (orjson when installed, else the standard library)."""
    if request.param == "stdlib":
        monkeypatch.setattr(wire, "_loads", json.loads)


def _pydantic(body: bytes) -> IngestBatch | None:
    try:
        return IngestBatch.model_validate_json(body)
    except ValueError:
        return None


def _same(body: bytes, *, fast_path: bool) -> None:
    """The fast path takes the body when ``fast_path`` (the usual shape of a valid batch) and steps aside
    otherwise; whatever it takes, pydantic accepts with equal values, and the times agree."""
    fast = parse_batch_fast(body)
    slow = _pydantic(body)
    if not fast_path:
        assert fast is None, "the fast path took a body it should leave to pydantic"
        return
    assert fast is not None, "the fast path stepped aside from the usual shape of a valid batch"
    assert slow is not None, "fast path accepted what pydantic refuses"
    batch, ts_ms = fast
    assert batch.batch_id == slow.batch_id and batch.agent == slow.agent
    assert batch.samples == slow.samples
    assert batch.events == slow.events
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert ts_ms == [(s["ts"] - epoch) // timedelta(milliseconds=1) for s in slow.samples]
    for s in batch.samples:
        assert s["ts"].utcoffset() is not None and isinstance(s["value"], float)


# each case: the sample, and whether the fast path takes it (worked out from what it promises: RFC 3339
# times with an offset of at most 18 h, numbers that are JSON numbers and exact as floats, valid names)
CASES: list[tuple[Any, bool]] = [
    (_sample(), True),
    (_sample(labels=_DROP), True),
    (_sample(labels={}), True),
    (_sample(value=3), True),
    (_sample(value=2**60), False),
    (_sample(value=True), False),
    (_sample(value="1.5"), False),
    (_sample(value=None), False),
    (_sample(ts="2026-11-25T08:00:00Z"), True),
    (_sample(ts="2026-11-25T08:00:00"), False),  # naive
    (_sample(ts="2026-11-25 08:00:00+00:00"), False),
    (_sample(ts="2026-11-25T08:00:00.1234567+00:00"), False),
    (_sample(ts="2026-11-25T08:00:60+00:00"), False),
    (_sample(ts="2026-13-25T08:00:00+00:00"), False),
    (_sample(ts="2026-11-25T08:00:00+23:59"), False),
    (_sample(ts="0001-01-01T00:00:00+01:00"), True),
    (_sample(ts=1795000000), False),
    (_sample(device=""), False),
    (_sample(device="x" * 128), True),
    (_sample(device="x" * 129), False),
    (_sample(device="\ud800"), False),
    (_sample(device=5), False),
    (_sample(metric="Bad.metric"), False),
    (_sample(metric="cpu.util_pct\n"), False),
    (_sample(metric="a" * 129), False),
    (_sample(labels={"if-name": "x"}), False),
    (_sample(labels={"ifName": "x" * 256}), True),
    (_sample(labels={"ifName": "x" * 257}), False),
    (_sample(labels={"ifName": 3}), False),
    (_sample(labels={"k" * 65: "x"}), False),
    (_sample(labels=[]), False),
    (_sample(labels=None), False),
    (_sample(extra=1), False),
    ({"device": "d", "metric": "up", "ts": "2026-11-25T08:00:00Z"}, False),
    ("not a sample", False),
]


@pytest.mark.parametrize(("sample", "fast_path"), CASES, ids=range(len(CASES)))
def test_fast_path_never_accepts_more_than_pydantic(sample: Any, fast_path: bool) -> None:
    _same(_body([sample, _sample()]), fast_path=fast_path)


@pytest.mark.parametrize(("top", "fast_path"), [
    ({"agent": "bad agent"}, False),
    ({"batch_id": "8a91ac79ccfc45f7b4588aa348c908fc"}, False),  # a UUID pydantic reads, without dashes
    ({"batch_id": BID.upper()}, True),
    ({"extra": 1}, False),
    ({"samples": {}}, False),
    ({"events": [{"device": "ups-1", "kind": "trap", "ts": "2026-11-25T08:00:00Z"}]}, True)])
def test_top_level_fields(top: dict[str, Any], fast_path: bool) -> None:
    doc = {"batch_id": BID, "agent": "site-a", "samples": [_sample()]}
    doc.update(top)
    _same(json.dumps(doc).encode(), fast_path=fast_path)


def _dumps_deep(value: Any) -> str:
    """JSON of nested one-key dicts at any depth (json.dumps recurses)."""
    depth = 0
    while isinstance(value, dict) and list(value) == ["a"]:
        value, depth = value["a"], depth + 1
    return '{"a":' * depth + json.dumps(value) + "}" * depth


def _nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth - 1):
        data = {"a": data}
    return data


@pytest.mark.parametrize(("event", "field"), [
    ({"device": "ups-1", "kind": "nope", "ts": "2026-11-25T08:00:00Z"}, "events.0.kind"),
    ({"device": "ups 1", "kind": "trap", "ts": "2026-11-25T08:00:00Z"}, "events.0.device"),
    ({"device": "ups-1", "kind": "trap", "ts": "2026-11-25T08:00:00Z", "data": _nested(9)}, "events.0.data"),
    ({"device": "ups-1", "kind": "trap", "ts": "2026-11-25T08:00:00Z", "data": _nested(500)}, "events.0.data"),
    ({"device": "ups-1", "kind": "trap", "ts": "2026-11-25T08:00:00Z", "data": {"d": "x" * 1_100_000}},
     "events.0.data")])
def test_an_invalid_event_is_named_by_the_model(event: dict[str, Any], field: str) -> None:
    """Events are few: the model validates them, and its error names the event, at any nesting depth."""
    event = dict(event)  # the parameters are shared by both decoders
    data = event.pop("data", None)
    doc = json.dumps({"batch_id": BID, "agent": "site-a", "samples": [_sample()], "events": [event]})
    body = doc.encode() if data is None else doc.replace('"}]}', f'", "data": {_dumps_deep(data)}}}]}}').encode()
    with pytest.raises(ValidationError) as err:
        parse_batch_fast(body)
    assert [".".join(map(str, e["loc"])) for e in err.value.errors()] == [field]
    if len(body) < 100_000:  # pydantic alone agrees (its own JSON parser stops near 200 levels)
        assert _pydantic(body) is None


def test_data_within_bounds_is_kept() -> None:
    data = {"trap": "linkDown", "varbinds": {"1.3.6.1.2.1.2.2.1.1.3": 3}, "nested": _nested(6)}
    assert wire.event_data_problem(data) is None
    assert wire.event_data_problem(_nested(8)) is None and wire.event_data_problem(_nested(9)) is not None


def test_common_batch_takes_the_fast_path() -> None:
    body = _body([_sample(), _sample(labels=_DROP, metric="up", value=1), _sample(ts="2026-11-25T00:00:00Z")])
    fast = parse_batch_fast(body)
    assert fast is not None
    morning = datetime(2026, 11, 25, 0, 0, tzinfo=UTC).timestamp() * 1000  # 08:00 at +08:00
    assert fast[1] == [morning + 250, morning + 250, morning]
    _same(body, fast_path=True)


def test_not_json_or_not_finite_steps_aside() -> None:
    assert parse_batch_fast(b"{not json") is None
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = _body([_sample()]).replace(b"1.5", literal)
        assert parse_batch_fast(body) is None
        assert _pydantic(body) is None  # refused: a NaN never reaches a store


def test_a_value_beyond_the_bound_is_refused_by_both_paths() -> None:
    # 1.7e308 twice in a rollup bucket would sum to infinity; 1e30 is the largest magnitude a value may have
    for literal in (b"1.7e308", b"-1.7e308", b"1e31", b"-1.0000001e30"):
        body = _body([_sample()]).replace(b"1.5", literal)
        assert parse_batch_fast(body) is None
        assert _pydantic(body) is None
    for literal in (b"1e30", b"-1e30", b"18446744073709551615.0"):  # the bound itself, a 64-bit counter's top
        body = _body([_sample()]).replace(b"1.5", literal)
        _same(body, fast_path=True)
