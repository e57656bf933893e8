"""Ingest through the real collector under uvicorn: accepted, duplicate, refused, and nothing stored when
refused; rollups read back and checked against the samples sent."""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta

import httpx
import pytest

from tests.collector.conftest import AGENT, CST, batch, counts, dump, registration, sample
from tests.peers.collector import CollectorPeer

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=CST)  # 00:00 UTC: buckets start on the hour


def test_ingest_stores_samples_events_and_duplicate_adds_nothing(collector: CollectorPeer,
                                                                  http: httpx.Client) -> None:
    before = counts(collector)
    doc = batch([sample("core-sw-1", "icmp.rtt_ms", 1.0 + i, T0 + timedelta(seconds=10 * i)) for i in range(5)],
                [{"device": "ups-1", "kind": "trap", "ts": T0.isoformat(), "data": {"oid": "1.3.6.1.2.1.33.2.0.1"}}])
    r = http.post("/api/v1/ingest", content=dump(doc))
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    after = counts(collector)
    assert after["ts_samples"] - before["ts_samples"] == 5
    assert after["events"] - before["events"] == 1
    assert after["batches"] - before["batches"] == 1

    again = http.post("/api/v1/ingest", content=dump(doc))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert counts(collector) == after


@pytest.mark.parametrize(("body", "status", "needle"), [
    (b'{"batch_id": "x", "agent": ', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
])
def test_malformed_json_is_400(collector: CollectorPeer, http: httpx.Client, body: bytes, status: int,
                               needle: str) -> None:
    before = counts(collector)
    r = http.post("/api/v1/ingest", content=body)
    assert r.status_code == status
    assert needle in r.json()["error"]
    assert counts(collector) == before


@pytest.mark.parametrize(("change", "field"), [
    ({"value": "fast"}, "samples.1.value"),
    ({"ts": "2026-11-25T08:00:00"}, "samples.1.ts"),  # naive: no offset
    ({"labels": {"ifName": 7}}, "samples.1.labels.ifName"),
    ({"unit": "ms"}, "samples.1.unit"),
])
def test_wrong_fields_are_422_naming_the_field(collector: CollectorPeer, http: httpx.Client,
                                               change: dict[str, object], field: str) -> None:
    before = counts(collector)
    samples = [sample("core-sw-1", "up", 1.0, T0), sample("core-sw-1", "up", 1.0, T0 + timedelta(seconds=5))]
    samples[1].update(change)
    r = http.post("/api/v1/ingest", content=dump(batch(samples)))
    assert r.status_code == 422, r.text
    assert field in [p["field"] for p in r.json()["problems"]]
    assert counts(collector) == before  # the valid first sample was not stored either


def test_batch_id_must_be_a_uuid(http: httpx.Client) -> None:
    doc = batch([sample("core-sw-1", "up", 1.0, T0)])
    doc["batch_id"] = "not-a-uuid"
    r = http.post("/api/v1/ingest", content=dump(doc))
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["batch_id"]


def test_unknown_device_is_422_naming_it_and_nothing_is_stored(collector: CollectorPeer,
                                                              http: httpx.Client) -> None:
    before = counts(collector)
    doc = batch([sample("core-sw-1", "up", 1.0, T0), sample("ghost-router", "up", 0.0, T0)])
    r = http.post("/api/v1/ingest", content=dump(doc))
    assert r.status_code == 422
    assert "ghost-router" in r.json()["error"]
    assert "core-sw-1" not in r.json()["error"]
    assert counts(collector) == before


def test_unknown_and_revoked_tokens_are_401(collector: CollectorPeer) -> None:
    doc = batch([sample("core-sw-1", "up", 1.0, T0)])
    before = counts(collector)
    assert httpx.post(f"{collector.url}/api/v1/ingest", content=dump(doc)).status_code == 401
    bad = httpx.post(f"{collector.url}/api/v1/ingest", content=dump(doc),
                     headers={"Authorization": "Bearer wb_not-a-token"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"

    second = collector.token("site-b")
    reg = registration(agent="site-b", devices=("b-sw-1",))
    ok = httpx.put(f"{collector.url}/api/v1/inventory", json=reg, headers={"Authorization": f"Bearer {second}"})
    assert ok.status_code == 200
    collector.revoke("site-b")
    doc_b = batch([sample("b-sw-1", "up", 1.0, T0)], agent="site-b")
    r = httpx.post(f"{collector.url}/api/v1/ingest", content=dump(doc_b),
                   headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 401
    assert counts(collector) == before


def test_token_of_another_agent_is_refused(collector: CollectorPeer, http: httpx.Client) -> None:
    before = counts(collector)
    r = http.post("/api/v1/ingest", content=dump(batch([sample("core-sw-1", "up", 1.0, T0)], agent="site-z")))
    assert r.status_code == 403
    assert counts(collector) == before


def test_oversized_batch_is_413_and_nothing_stored(collector: CollectorPeer, http: httpx.Client) -> None:
    before = counts(collector)
    # the fixture's limit is 256 KiB: Content-Length alone refuses this one
    big = batch([sample("core-sw-1", "up", 1.0, T0 + timedelta(milliseconds=i), pad="x" * 200) for i in range(2000)])
    body = dump(big)
    assert len(body) > 256 * 1024
    r = http.post("/api/v1/ingest", content=body)
    assert r.status_code == 413
    # without Content-Length (chunked), the streamed count refuses it
    r = http.post("/api/v1/ingest", content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]))
    assert r.status_code == 413
    # small in bytes but over the sample limit (1000)
    many = batch([sample("core-sw-1", "up", 1.0, T0 + timedelta(milliseconds=i)) for i in range(1001)])
    assert len(dump(many)) < 256 * 1024
    r = http.post("/api/v1/ingest", content=dump(many))
    assert r.status_code == 413
    assert counts(collector) == before


def test_series_from_rollups_match_the_samples_sent(http: httpx.Client) -> None:
    base = T0 + timedelta(days=1)  # a day no other test writes
    values = [3.0, 9.5, -1.25, 7.0, 4.0, 12.0, 0.5, 6.0, 2.0, 8.0, 5.5, 1.0, 10.0]
    times = [base + timedelta(seconds=47 * i) for i in range(len(values))]  # spans two 5-minute buckets
    sent = [sample("acc-sw-1", "if.in_bps", v, t, ifName="Gi0/1") for v, t in zip(values, times, strict=True)]
    other = [sample("acc-sw-1", "if.in_bps", 99.0, t, ifName="Gi0/2") for t in times[:3]]
    # two batches, the second in reverse time order: rollups merge across batches and "last" follows time
    assert http.post("/api/v1/ingest", content=dump(batch(sent[:6] + other))).status_code == 200
    assert http.post("/api/v1/ingest", content=dump(batch(list(reversed(sent[6:]))))).status_code == 200

    def expected(width: int) -> list[dict[str, object]]:
        groups: dict[int, list[tuple[datetime, float]]] = {}
        for t, v in zip(times, values, strict=True):
            epoch = int(t.timestamp())
            groups.setdefault(epoch - epoch % width, []).append((t, v))
        return [{"t": datetime.fromtimestamp(b, CST).isoformat(), "min": min(v for _, v in g),
                 "avg": statistics.fmean(v for _, v in g), "max": max(v for _, v in g),
                 "last": max(g)[1], "count": len(g)} for b, g in sorted(groups.items())]

    for step in (300, 3600):
        r = http.get("/api/v1/series", params={"device": "acc-sw-1", "metric": "if.in_bps", "step": step,
                                               "label": "ifName=Gi0/1", "from": base.isoformat(),
                                               "to": (base + timedelta(hours=2)).isoformat()})
        assert r.status_code == 200, r.text
        series = r.json()["series"]
        assert [s["labels"] for s in series] == [{"ifName": "Gi0/1"}]
        got = series[0]["points"]
        want = expected(step)
        assert len(got) == len(want) == (2 if step == 300 else 1)
        for g, w in zip(got, want, strict=True):
            assert datetime.fromisoformat(g["t"]) == datetime.fromisoformat(str(w["t"]))
            for k in ("min", "max", "last", "count"):
                assert g[k] == w[k], (step, k)
            assert g["avg"] == pytest.approx(w["avg"])
    both = http.get("/api/v1/series", params={"device": "acc-sw-1", "metric": "if.in_bps", "step": 300,
                                              "from": base.isoformat(), "to": (base + timedelta(hours=2)).isoformat()})
    assert sorted(s["labels"]["ifName"] for s in both.json()["series"]) == ["Gi0/1", "Gi0/2"]
    bad_step: dict[str, str | int] = {"device": "acc-sw-1", "metric": "if.in_bps", "step": 60}
    assert http.get("/api/v1/series", params=bad_step).status_code == 422


def test_devices_show_latest_state(http: httpx.Client) -> None:
    t = T0 + timedelta(days=2)
    doc = batch([sample("ups-1", "up", 1.0, t), sample("ups-1", "ups.battery_charge_pct", 97.0, t),
                 sample("ups-1", "ups.battery_charge_pct", 95.0, t + timedelta(seconds=30))])
    assert http.post("/api/v1/ingest", content=dump(doc)).status_code == 200
    devices = {d["name"]: d for d in http.get("/api/v1/devices").json()["devices"]}
    assert set(devices) >= {"core-sw-1", "acc-sw-1", "ups-1"}
    ups = devices["ups-1"]
    assert ups["up"] is True
    assert ups["latest"]["ups.battery_charge_pct"] == 95.0
    assert datetime.fromisoformat(ups["last_seen"]) == t + timedelta(seconds=30)
    assert ups["kind"] == "ups"
    assert ups["asset"] == {"vendor": "Huawei"}
    assert "community" not in json.dumps(devices)


def test_reads_need_a_token(collector: CollectorPeer) -> None:
    assert httpx.get(f"{collector.url}/api/v1/devices").status_code == 401
    assert httpx.get(f"{collector.url}/api/v1/series", params={"device": "x", "metric": "up"}).status_code == 401


def test_metrics_count_what_happened(collector: CollectorPeer, http: httpx.Client) -> None:
    doc = batch([sample("core-sw-1", "up", 1.0, T0 + timedelta(days=3))])
    http.post("/api/v1/ingest", content=dump(doc))
    http.post("/api/v1/ingest", content=dump(doc))
    http.post("/api/v1/ingest", content=b"{")
    text = httpx.get(f"{collector.url}/metrics").text
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values["weibao_ingest_batches_total"] >= 1
    assert values["weibao_ingest_samples_total"] >= 1
    assert values["weibao_ingest_duplicates_total"] >= 1
    assert values['weibao_ingest_refused_total{reason="malformed_json"}'] >= 1
    assert values['weibao_ingest_duration_seconds_bucket{le="+Inf"}'] == values["weibao_ingest_duration_seconds_count"]
    assert values["weibao_ingest_duration_seconds_count"] >= 3


def test_token_list_shows_names_never_tokens(collector: CollectorPeer, token: str) -> None:
    from tests.peers.collector import weibao

    out = weibao("token", "list", "--config", str(collector.config_path)).stdout
    assert AGENT in out
    assert token not in out


def test_an_agent_clock_far_from_ours_is_shown_and_logged(collector: CollectorPeer, http: httpx.Client) -> None:
    import email.utils
    import time

    ahead = email.utils.formatdate(time.time() + 3600, usegmt=True)
    doc = batch([sample("core-sw-1", "up", 1.0, T0 + timedelta(days=4))])
    assert http.post("/api/v1/ingest", content=dump(doc), headers={"Date": ahead}).status_code == 200

    def offset() -> float:
        text = httpx.get(f"{collector.url}/metrics").text
        name = f'weibao_agent_clock_offset_seconds{{agent="{AGENT}"}}'
        (line,) = [x for x in text.splitlines() if x.startswith(name)]
        return float(line.split()[1])

    assert abs(offset() - 3600) <= 2
    log = collector.log_path.read_text(encoding="utf-8")
    assert f"agent {AGENT}: its clock is 3" in log and "ahead of ours" in log
    now = email.utils.formatdate(time.time(), usegmt=True)
    doc = batch([sample("core-sw-1", "up", 1.0, T0 + timedelta(days=4, seconds=10))])
    assert http.post("/api/v1/ingest", content=dump(doc), headers={"Date": now}).status_code == 200
    assert abs(offset()) <= 2
