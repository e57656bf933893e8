"""The fast parse of an ingest body agrees with pydantic: same batch, or it steps aside (None)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

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


def _same(body: bytes) -> None:
    """Whatever the fast path accepts, pydantic accepts with equal values; the times agree."""
    fast = parse_batch_fast(body)
    slow = _pydantic(body)
    if fast is None:
        return
    assert slow is not None, "fast path accepted what pydantic refuses"
    batch, ts_ms = fast
    assert batch.batch_id == slow.batch_id and batch.agent == slow.agent
    assert batch.samples == slow.samples
    assert batch.events == slow.events
    assert ts_ms == [round(s["ts"].timestamp() * 1000) for s in slow.samples]
    for s in batch.samples:
        assert s["ts"].utcoffset() is not None and isinstance(s["value"], float)


CASES: list[Any] = [
    _sample(),
    _sample(labels=_DROP),
    _sample(labels={}),
    _sample(value=3),
    _sample(value=2**60),
    _sample(value=True),
    _sample(value="1.5"),
    _sample(value=None),
    _sample(ts="2026-11-25T08:00:00Z"),
    _sample(ts="2026-11-25T08:00:00"),  # naive
    _sample(ts="2026-11-25 08:00:00+00:00"),
    _sample(ts="2026-11-25T08:00:00.1234567+00:00"),
    _sample(ts="2026-11-25T08:00:60+00:00"),
    _sample(ts="2026-13-25T08:00:00+00:00"),
    _sample(ts="2026-11-25T08:00:00+23:59"),
    _sample(ts="0001-01-01T00:00:00+01:00"),
    _sample(ts=1795000000),
    _sample(device=""),
    _sample(device="x" * 128),
    _sample(device="x" * 129),
    _sample(device="\ud800"),
    _sample(device=5),
    _sample(metric="Bad.metric"),
    _sample(metric="cpu.util_pct\n"),
    _sample(metric="a" * 129),
    _sample(labels={"if-name": "x"}),
    _sample(labels={"ifName": "x" * 256}),
    _sample(labels={"ifName": "x" * 257}),
    _sample(labels={"ifName": 3}),
    _sample(labels={"k" * 65: "x"}),
    _sample(labels=[]),
    _sample(labels=None),
    _sample(extra=1),
    {"device": "d", "metric": "up", "ts": "2026-11-25T08:00:00Z"},
    "not a sample",
]


@pytest.mark.parametrize("sample", CASES, ids=range(len(CASES)))
def test_fast_path_never_accepts_more_than_pydantic(sample: Any) -> None:
    _same(_body([sample, _sample()]))


@pytest.mark.parametrize("top", [{"agent": "bad agent"}, {"batch_id": "8a91ac79ccfc45f7b4588aa348c908fc"},
                                 {"batch_id": BID.upper()}, {"extra": 1}, {"samples": {}},
                                 {"events": [{"device": "ups-1", "kind": "trap", "ts": "2026-11-25T08:00:00Z"}]},
                                 {"events": [{"device": "ups-1", "kind": "nope", "ts": "2026-11-25T08:00:00Z"}]}])
def test_top_level_fields(top: dict[str, Any]) -> None:
    doc = {"batch_id": BID, "agent": "site-a", "samples": [_sample()]}
    doc.update(top)
    _same(json.dumps(doc).encode())


def test_common_batch_takes_the_fast_path() -> None:
    body = _body([_sample(), _sample(labels=_DROP, metric="up", value=1), _sample(ts="2026-11-25T00:00:00Z")])
    fast = parse_batch_fast(body)
    assert fast is not None
    morning = datetime(2026, 11, 25, 0, 0, tzinfo=UTC).timestamp() * 1000  # 08:00 at +08:00
    assert fast[1] == [morning + 250, morning + 250, morning]
    _same(body)


def test_not_json_or_not_finite_steps_aside() -> None:
    assert parse_batch_fast(b"{not json") is None
    assert parse_batch_fast(_body([_sample()]).replace(b"1.5", b"NaN")) is None
    assert math.isfinite(1.5)
