"""The wire format: what the agent may send and what the collector refuses, without a server."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from weibao.agent.inventory.loader import load_inventory
from weibao.agent.shipper import registration
from weibao.core.model import Event, EventKind, Sample
from weibao.core.timeutil import from_ms, to_ms
from weibao.core.wire import (
    IngestBatch,
    InventoryRegistration,
    encode_batch,
    wire_to_event,
    wire_to_sample,
)

REPO = Path(__file__).resolve().parents[2]
CST = timezone(timedelta(hours=8))


def _doc(**over: object) -> dict[str, object]:
    s = {"device": "sw", "metric": "icmp.loss_pct", "value": 0.0, "ts": "2026-11-25T08:00:00+08:00", "labels": {}}
    s.update(over)
    return {"batch_id": str(uuid.uuid4()), "agent": "site-a", "samples": [s], "events": []}


def test_round_trip_keeps_values_and_instant() -> None:
    ts = datetime(2026, 11, 25, 8, 0, 0, 123000, tzinfo=CST)
    s = Sample("sw", "if.in_bps", 1.5, ts, {"ifName": "Gi0/1"})
    e = Event("ups-1", EventKind.TRAP, ts, {"oid": "1.3.6.1.2.1.33.2.0.1"})
    body = encode_batch("site-a", [s], [e])
    parsed = IngestBatch.model_validate_json(body)
    assert wire_to_sample(parsed.samples[0]) == Sample("sw", "if.in_bps", 1.5, ts, {"ifName": "Gi0/1"})
    assert wire_to_event(parsed.events[0]).data == {"oid": "1.3.6.1.2.1.33.2.0.1"}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert to_ms(parsed.samples[0]["ts"]) == (ts - epoch) // timedelta(milliseconds=1)
    assert parsed.samples[0]["labels"] == {"ifName": "Gi0/1"}


def test_to_ms_is_exact_for_whole_milliseconds() -> None:
    for ms in (1795564800123, 1795564800001, 1795564800999):
        ts = datetime.fromtimestamp(ms / 1000, UTC).astimezone(CST)
        assert to_ms(ts) == ms
        assert from_ms(ms) == ts


@pytest.mark.parametrize(("field", "value", "where"), [
    ("ts", "2026-11-25T08:00:00", "samples.0.ts"),
    ("value", "high", "samples.0.value"),
    ("metric", "Bad Metric", "samples.0.metric"),
    ("labels", {"ifName": 3}, "samples.0.labels.ifName"),
    ("colour", "red", "samples.0.colour"),
])
def test_refusals_name_the_field(field: str, value: object, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        IngestBatch.model_validate_json(json.dumps(_doc(**{field: value})))
    assert where in {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        IngestBatch.model_validate_json(json.dumps(_doc(value=math.inf)))
    with pytest.raises(ValueError, match="not finite"):
        encode_batch("a", [Sample("sw", "up", math.nan, datetime.now(UTC))])


def test_naive_timestamp_refused_on_the_agent_side_too() -> None:
    with pytest.raises(ValueError, match="naive"):
        encode_batch("a", [Sample("sw", "up", 1.0, datetime(2026, 11, 25, 8, 0))])


def test_registration_of_the_example_inventory_carries_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIBAO_SNMP_COMMUNITY", "community-that-must-not-travel")
    inv = load_inventory(REPO / "inventory.yaml")
    reg = registration(inv, "site-a")
    text = reg.model_dump_json()
    assert len(reg.devices) == len(inv.devices)
    assert "community-that-must-not-travel" not in text
    secrets_file = (REPO / "secrets.example.yaml")
    if secrets_file.exists():
        for line in secrets_file.read_text().splitlines():
            _, sep, secret = line.partition(":")
            if sep and len(secret.strip()) >= 8:
                assert secret.strip().strip("'\"") not in text
    with pytest.raises(ValidationError):
        InventoryRegistration.model_validate({"site": "s", "agent": "a", "devices": [
            {"name": "x", "address": "127.0.0.1", "kind": "switch", "category": "mis",
             "snmp": {"community": "public"}}]})
