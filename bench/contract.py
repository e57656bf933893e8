"""Contract engine benchmark: rule-evaluation throughput and fault detection latency; one command:

    .venv/bin/python bench/contract.py [--devices 10000] [--rounds 10] [--trials 3] [--skip-http] [--skip-detect]
        [--backlog-devices 1000] [--skip-backlog]

(a) Throughput with ``--devices`` devices (every contract category, up + icmp.loss_pct + icmp.rtt_ms per
    device and round, one round a minute, some devices down or lossy):
    1. the pure Evaluator in this process (observe every sample, then level_of for every open episode
       once per round, as a live engine would);
    2. the whole collector (uvicorn subprocess, contract engine on): the same rounds POSTed to
       /api/v1/ingest; the clock stops when the engine has taken every batch (GET /api/v1/contract) and
       the tickets of the faults, those of the last round too, are visible through GET /api/v1/tickets.
(b) Detection latency: the real collector and the real agent daemon (``weibao agent``) polling one
    SNMP-only device simulated by snmpsim (a Huawei S5720 recording) every ``--probe-s`` seconds. The
    simulator is stopped; the time until the device's ticket is open in GET /api/v1/tickets is measured,
    ``--trials`` times (between trials the simulator is restarted and the ticket restored). Aim: within
    the probe interval + 2 s.
(c) Backlog (``--backlog-devices``, 1,000): one hour of history of that many devices, ICMP every 10 s (up,
    icmp.loss_pct, icmp.rtt_ms) and SNMP every 60 s (cpu.util_pct, mem.util_pct), as an agent whose link
    was down ships its spool: POSTed in time order as fast as ingest takes it. Some devices are down for
    15 minutes, some go down in the last 5 minutes, some are lossy for 10 minutes. The clock stops as in
    (a)2.

The faults are known in advance (see ``Fleet``), and before any rate is printed the benchmark checks that
exactly their tickets appeared: in (a)1 the evaluator's ``opened`` signals, in (a)2 the collector's
tickets (one per faulty device and kind of fault: reachability, loss), in (c) the same, and in (b) one
ticket per trial. Anything missing or unexpected stops it with a non-zero exit, naming the devices.

"ratio" is the tickets-visible rate over the ingest rate of the same run, i.e. the time of the last POST
over the time until the tickets are visible. The engine takes a batch once it is stored, so the ratio
stays below 1.0 by the time the engine spends on what is still queued when the last POST returns. When
the engine keeps pace that tail is one engine batch, the same however long the run (compare ``--rounds
10`` with ``--rounds 30``), and the ratio nears 1.0 as the run grows; when it does not, the tail grows
with the run and the ratio stays where it is.

Everything runs on 127.0.0.1 and stops by itself. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import markdown_table, median, require_complete, stop  # noqa: E402
from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402
from weibao.collector.auth import Role, issue  # noqa: E402
from weibao.collector.contract import DeviceSpec, Evaluator, level_of, load_calendar, load_contract_rules  # noqa: E402
from weibao.collector.contract.episodes import SignalKind  # noqa: E402
from weibao.collector.state.db import create_state_engine  # noqa: E402
from weibao.core.inventory import Category  # noqa: E402
from weibao.core.model import Sample  # noqa: E402
from weibao.embedded.simlab import SnmpSim  # noqa: E402

CST = ZoneInfo("Asia/Shanghai")
CATEGORIES = list(Category)
RECORDING = "network/router/huawei-s5720"
AGENT = "bench-contract"


@dataclass(frozen=True)
class Fleet:
    """Which devices misbehave in which rounds: a few restored faults early, new faults in the last round."""

    devices: int
    rounds: int

    def name(self, i: int) -> str:
        return f"dev-{i:05d}"

    def category(self, i: int) -> Category:
        return CATEGORIES[i % len(CATEGORIES)]

    def early_down(self, i: int, r: int) -> bool:  # 1 %: down in rounds 1-2, restored after
        return i % 100 == 7 and 1 <= r <= 2

    def late_down(self, i: int, r: int) -> bool:  # 2 %: down in the last round (tickets open last)
        return i % 50 == 3 and r == self.rounds - 1

    def lossy(self, i: int, r: int) -> bool:  # 1 %: 40 % loss in rounds 1-3 (backbone/provincial rows)
        return i % 100 == 11 and 1 <= r <= 3

    def samples(self, r: int) -> list[tuple[str, str, float]]:
        out: list[tuple[str, str, float]] = []
        for i in range(self.devices):
            name = self.name(i)
            down = self.early_down(i, r) or self.late_down(i, r)
            out.append((name, "up", 0.0 if down else 1.0))
            if not down:
                out.append((name, "icmp.loss_pct", 40.0 if self.lossy(i, r) else 0.0))
                out.append((name, "icmp.rtt_ms", 3.0))
        return out

    def expected(self) -> Counter[tuple[str, str]]:
        """The faults that open tickets, as (device, kind): every device down early or late
        (``reach``: ``down``, or ``cut_off`` where the category has that row instead), and every lossy
        device whose category has a loss row (backbone >= 30 %, provincial >= 15 %) (``loss``)."""
        out: Counter[tuple[str, str]] = Counter()
        for i in range(self.devices):
            if any(self.early_down(i, r) or self.late_down(i, r) for r in range(self.rounds)):
                out[(self.name(i), "reach")] += 1
            if any(self.lossy(i, r) for r in range(self.rounds)) and \
                    self.category(i) in (Category.BACKBONE, Category.PROVINCIAL):
                out[(self.name(i), "loss")] += 1
        return out


@dataclass(frozen=True)
class Backlog:
    """One hour of a site's history shipped at once: ICMP every 10 s, SNMP every 60 s; faults by device."""

    devices: int
    minutes: int = 60
    icmp_s: int = 10
    snmp_s: int = 60

    def name(self, i: int) -> str:
        return f"bl-{i:05d}"

    def category(self, i: int) -> Category:
        return CATEGORIES[i % len(CATEGORIES)]

    def down(self, i: int, minute: float) -> bool:
        early = i % 50 == 3 and 20 <= minute < 35  # 2 %: down for 15 minutes, restored
        late = i % 100 == 7 and minute >= self.minutes - 5  # 1 %: down in the last 5 minutes (tickets open)
        return early or late

    def lossy(self, i: int, minute: float) -> bool:  # 1 %: 40 % loss for 10 minutes
        return i % 100 == 11 and 10 <= minute < 20

    def rows(self, start: datetime) -> list[dict[str, Any]]:
        """Every sample, in time order (as an agent's spool ships them)."""
        out: list[dict[str, Any]] = []
        for k in range(self.minutes * 60 // self.icmp_s):
            at = k * self.icmp_s
            ts = (start + timedelta(seconds=at)).isoformat()
            snmp = at % self.snmp_s == 0
            for i in range(self.devices):
                name = self.name(i)
                if self.down(i, at / 60):
                    out.append({"device": name, "metric": "up", "value": 0.0, "ts": ts, "labels": {}})
                    continue
                loss = 40.0 if self.lossy(i, at / 60) else 0.0
                out.append({"device": name, "metric": "up", "value": 1.0, "ts": ts, "labels": {}})
                out.append({"device": name, "metric": "icmp.loss_pct", "value": loss, "ts": ts, "labels": {}})
                out.append({"device": name, "metric": "icmp.rtt_ms", "value": 3.0, "ts": ts, "labels": {}})
                if snmp:
                    out.append({"device": name, "metric": "cpu.util_pct", "value": 20.0, "ts": ts, "labels": {}})
                    out.append({"device": name, "metric": "mem.util_pct", "value": 40.0, "ts": ts, "labels": {}})
        return out

    def expected(self) -> Counter[tuple[str, str]]:
        """As ``Fleet.expected``: every device that goes down (``reach``), every lossy device whose
        category has a loss row (``loss``)."""
        out: Counter[tuple[str, str]] = Counter()
        minutes = [k * self.icmp_s / 60 for k in range(self.minutes * 60 // self.icmp_s)]
        for i in range(self.devices):
            if any(self.down(i, m) for m in minutes):
                out[(self.name(i), "reach")] += 1
            if any(self.lossy(i, m) for m in minutes) and \
                    self.category(i) in (Category.BACKBONE, Category.PROVINCIAL):
                out[(self.name(i), "loss")] += 1
        return out


def kind(condition: str) -> str:
    """A ticket rule or tracked condition (``down``, ``cut_off``, ``loss@30``, ``loss_or_latency``...) as a
    kind of fault: the backbone and provincial rows track loss as ``loss_or_latency`` (one condition)."""
    base = condition.split("@", 1)[0]
    return "reach" if base in ("down", "cut_off") else "loss" if base == "loss_or_latency" else base


def mismatch(label: str, want: Counter[tuple[str, str]], got: Counter[tuple[str, str]]) -> str | None:
    """One line on how the faults found differ from the faults made, or None when they are the same."""
    if got == want:
        return None
    lacking, extra = sorted((want - got).elements()), sorted((got - want).elements())

    def some(items: list[tuple[str, str]]) -> str:
        return ", ".join(f"{d} {k}" for d, k in items[:6]) + (" ..." if len(items) > 6 else "")

    return (f"{label}: {sum(got.values())} found, {sum(want.values())} expected; missing {len(lacking)}"
            f"{': ' + some(lacking) if lacking else ''}; unexpected {len(extra)}{': ' + some(extra) if extra else ''}")


@dataclass(frozen=True)
class Evaluated:
    samples: int
    build_s: float
    observe_s: float
    levels_s: float
    signals: int
    levels: int
    opened: Counter[tuple[str, str]]  # (device, kind) of every ``opened`` signal


def bench_evaluator(fleet: Fleet) -> Evaluated:
    rules = load_contract_rules(REPO / "rules" / "contract.yaml")
    calendar = load_calendar()
    specs = [DeviceSpec(fleet.name(i), fleet.category(i), None, timedelta(seconds=60)) for i in range(fleet.devices)]
    t0 = time.perf_counter()
    ev = Evaluator(rules, specs)
    build_s = time.perf_counter() - t0
    start = datetime.now(CST).replace(second=0, microsecond=0) - timedelta(minutes=fleet.rounds)
    rounds = [[Sample(d, m, v, start + timedelta(minutes=r)) for d, m, v in fleet.samples(r)]
              for r in range(fleet.rounds)]
    n = sum(len(x) for x in rounds)
    observe_s = levels_s = 0.0
    signals = levels = 0
    opened: Counter[tuple[str, str]] = Counter()
    for r, batch in enumerate(rounds):
        t = time.perf_counter()
        got = [sig for s in batch for sig in ev.observe(s)]
        observe_s += time.perf_counter() - t
        signals += len(got)
        opened.update((sig.device, kind(sig.key.condition.value)) for sig in got if sig.kind == SignalKind.OPENED)
        t = time.perf_counter()
        now = start + timedelta(minutes=r, seconds=59)
        for ep in ev.open_episodes(now):
            tracker = ev.tracker(ep.device, ep.key)
            level_of(ep, tracker.cumulative(now), rules.categories[fleet.category(int(ep.device[4:]))],
                     calendar, now)
            levels += 1
        levels_s += time.perf_counter() - t
    return Evaluated(n, build_s, observe_s, levels_s, signals, levels, opened)


def _issue(peer: CollectorPeer, name: str, role: Role) -> str:
    engine = create_state_engine(f"sqlite:///{(peer.data_dir / 'state.db').resolve()}")
    try:
        return issue(engine, name, role)
    finally:
        engine.dispose()


def _tickets(client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get("/api/v1/tickets", params={"limit": 10000})
    r.raise_for_status()
    body = r.json()
    return list(body["tickets"] if isinstance(body, dict) else body)


@dataclass(frozen=True)
class ThroughCollector:
    samples: int
    ingest_s: float
    tickets_s: float  # until the expected number of tickets was visible (or the wait ended)
    tickets: Counter[tuple[str, str]]  # (device, kind) of every ticket then listed, the agent's gaps aside


def bench_collector(fleet: Fleet, work: Path, batch: int, wait_s: float) -> ThroughCollector:
    work.mkdir(parents=True)
    cfg = {"limits": {"max_batch_bytes": 64 * 1024 * 1024, "max_batch_samples": 200_000},
           "contract": {"sweep_interval_s": 1.0}}
    with run_collector(work, cfg) as peer, peer.client(_issue(peer, AGENT, Role.AGENT)) as http, \
            peer.client(_issue(peer, "bench-eng", Role.ENGINEER)) as eng:
        devices = [{"name": fleet.name(i), "address": "127.0.0.1", "kind": "switch",
                    "category": str(fleet.category(i)), "tags": [], "asset": {}} for i in range(fleet.devices)]
        r = http.put("/api/v1/inventory", json={"site": "bench", "agent": AGENT, "devices": devices})
        r.raise_for_status()
        start = datetime.now(CST).replace(second=0, microsecond=0) - timedelta(minutes=fleet.rounds - 1)
        bodies: list[bytes] = []
        for rnd in range(fleet.rounds):
            ts = (start + timedelta(minutes=rnd)).isoformat()
            rows = [{"device": d, "metric": m, "value": v, "ts": ts, "labels": {}}
                    for d, m, v in fleet.samples(rnd)]
            for k in range(0, len(rows), batch):
                bodies.append(json.dumps({"batch_id": str(uuid.uuid4()), "agent": AGENT,
                                          "samples": rows[k:k + batch], "events": []}).encode())
        n = sum(len(json.loads(b)["samples"]) for b in bodies)
        return _drain(http, eng, bodies, n, sum(fleet.expected().values()), wait_s)


def _drain(http: httpx.Client, eng: httpx.Client, bodies: list[bytes], n: int, want: int,
           wait_s: float) -> ThroughCollector:
    """POST ``bodies`` as fast as ingest takes them; then wait until the engine has taken every batch
    (GET /api/v1/contract) and ``want`` tickets, the agent's gaps aside, are listed (or the wait ends)."""
    before = int(eng.get("/api/v1/contract").json()["batches_processed"])
    t0 = time.perf_counter()
    for b in bodies:
        resp = http.post("/api/v1/ingest", content=b, headers={"Content-Type": "application/json"})
        resp.raise_for_status()
    ingested = time.perf_counter() - t0
    seen: Counter[tuple[str, str]] = Counter()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        status = eng.get("/api/v1/contract").json()
        if int(status["batches_processed"]) - before >= len(bodies) and not status["queued"]:
            seen = Counter((str(t["device"]), kind(str(t["rule"]))) for t in _tickets(eng)
                           if "gap" not in str(t.get("rule", "")))
            if sum(seen.values()) >= want:
                break
        time.sleep(0.02)
    done = time.perf_counter() - t0
    return ThroughCollector(n, ingested, done, seen)


def bench_backlog(backlog: Backlog, work: Path, batch: int, wait_s: float) -> ThroughCollector:
    work.mkdir(parents=True)
    cfg = {"limits": {"max_batch_bytes": 64 * 1024 * 1024, "max_batch_samples": 200_000},
           "contract": {"sweep_interval_s": 1.0}}
    with run_collector(work, cfg) as peer, peer.client(_issue(peer, AGENT, Role.AGENT)) as http, \
            peer.client(_issue(peer, "bench-eng", Role.ENGINEER)) as eng:
        devices = [{"name": backlog.name(i), "address": "127.0.0.1", "kind": "switch",
                    "category": str(backlog.category(i)), "tags": [], "asset": {}, "icmp": {},
                    "snmp": {"version": "2c", "port": 161},
                    "schedule": {"icmp_s": backlog.icmp_s, "snmp_s": backlog.snmp_s}}
                   for i in range(backlog.devices)]
        r = http.put("/api/v1/inventory", json={"site": "bench", "agent": AGENT, "devices": devices})
        r.raise_for_status()
        # the hour that ends now, on the probe grid
        end = datetime.now(CST).replace(microsecond=0)
        end -= timedelta(seconds=end.second % backlog.icmp_s)
        rows = backlog.rows(end - timedelta(minutes=backlog.minutes) + timedelta(seconds=backlog.icmp_s))
        bodies = [json.dumps({"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": rows[k:k + batch],
                              "events": []}).encode() for k in range(0, len(rows), batch)]
        return _drain(http, eng, bodies, len(rows), sum(backlog.expected().values()), wait_s)


def _inventory(work: Path, sim: SnmpSim, probe_s: float) -> Path:
    secrets = work / "secrets.yaml"
    secrets.write_text(json.dumps({"community": sim.community_for("bench-sw-1")}))
    secrets.chmod(0o600)
    doc = {"site": "bench", "secrets_file": "secrets.yaml",
           "credentials": {"ro": {"type": "snmp", "version": "2c", "community": "${secret:community}"}},
           "devices": [{"name": "bench-sw-1", "address": sim.host, "kind": "switch", "category": "business",
                        "icmp": {"enabled": False},
                        "snmp": {"credential": "ro", "port": sim.port, "timeout_s": 1, "retries": 0},
                        "schedule": {"snmp_s": probe_s}}]}
    path = work / "inventory.yaml"
    path.write_text(json.dumps(doc))
    return path


def _device_ticket(client: httpx.Client, states: tuple[str, ...]) -> dict[str, Any] | None:
    for t in _tickets(client):
        if t.get("device") == "bench-sw-1" and "gap" not in str(t.get("rule", "")) and t.get("state") in states:
            return t
    return None


def _wait(what: Any, timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(step)
    return None


def bench_detection(work: Path, probe_s: float, trials: int) -> list[float]:
    work.mkdir(parents=True)
    cfg = {"contract": {"sweep_interval_s": 1.0}}
    sim = SnmpSim({"bench-sw-1": RECORDING}).start()
    port = sim.port
    latencies: list[float] = []
    agent: subprocess.Popen[bytes] | None = None
    try:
        with run_collector(work, cfg) as peer, peer.client(_issue(peer, "bench-eng", Role.ENGINEER)) as eng:
            token_file = work / "agent.token"
            token_file.write_text(_issue(peer, AGENT, Role.AGENT))
            token_file.chmod(0o600)
            inv = _inventory(work, sim, probe_s)
            log = (work / "agent.log").open("wb")
            agent = subprocess.Popen([sys.executable, "-m", "weibao", "agent", "--inventory", str(inv),
                                      "--collector", peer.url, "--token-file", str(token_file),
                                      "--data", str(work / "agent-data"), "--name", AGENT, "--no-traps"],
                                     cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
            for trial in range(trials):
                # the device is up and reported up before it stops answering
                up = _wait(lambda: any(d["name"] == "bench-sw-1" and d["up"] for d in
                                       eng.get("/api/v1/devices").json()["devices"]), 60, 0.2)
                if not up:
                    raise RuntimeError(f"the device never showed up:\n{(work / 'agent.log').read_text()[-2000:]}")
                # the previous trial's ticket restored (3 good samples) before the next fault
                if trial and not _wait(lambda: _device_ticket(eng, ("open", "accepted")) is None, 60, 0.2):
                    raise RuntimeError("the previous fault was not restored")
                time.sleep(probe_s * 0.37 * (trial + 1) % probe_s)  # stop at different phases of the probe
                sim.stop()
                t0 = time.monotonic()
                got = _wait(lambda: _device_ticket(eng, ("open", "accepted")), 60)
                if got is None:
                    raise RuntimeError("no ticket within 60 s")
                latencies.append(time.monotonic() - t0)
                sim = SnmpSim({"bench-sw-1": RECORDING}, port=port).start()
    finally:
        if agent is not None:
            stop(agent)
        sim.stop()
    return latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10_000, help="samples per POST in (a)2")
    ap.add_argument("--probe-s", type=float, default=5.0, help="SNMP poll interval of the device in (b)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--skip-http", action="store_true", help="skip (a)2, the whole collector")
    ap.add_argument("--skip-detect", action="store_true", help="skip (b)")
    ap.add_argument("--wait-s", type=float, default=120.0, help="at most this long for the tickets in (a)2, (c)")
    ap.add_argument("--backlog-devices", type=int, default=1_000, help="devices in the one-hour backlog (c)")
    ap.add_argument("--skip-backlog", action="store_true", help="skip (c)")
    args = ap.parse_args()
    if not 1 <= args.devices <= 100_000 or not 3 <= args.rounds <= 60 or not 1 <= args.trials <= 10 \
            or not 0 < args.wait_s <= 600 or not 100 <= args.backlog_devices <= 20_000:
        ap.error("--devices 1..100000, --rounds 3..60, --trials 1..10, --wait-s up to 600, "
                 "--backlog-devices 100..20000")
    fleet = Fleet(args.devices, args.rounds)
    want = fleet.expected()
    rows: list[list[str]] = []
    problems: list[str] = []

    ev = bench_evaluator(fleet)
    if p := mismatch("Evaluator: faults opened", want, ev.opened):
        problems.append(p)
    rows.append(["Evaluator.observe (in process)", f"{ev.samples:,}", f"{ev.observe_s:.2f} s",
                 f"{ev.samples / ev.observe_s:,.0f} samples/s",
                 f"{ev.signals} signals ({sum(ev.opened.values())} opened, as expected); build {ev.build_s:.2f} s"])
    rows.append(["Evaluator.observe + level_of per round", f"{ev.samples:,}",
                 f"{ev.observe_s + ev.levels_s:.2f} s",
                 f"{ev.samples / (ev.observe_s + ev.levels_s):,.0f} samples/s",
                 f"{ev.levels} level evaluations"])
    with tempfile.TemporaryDirectory(prefix="weibao-bench-contract-") as tmp:
        if not args.skip_http:
            c = bench_collector(fleet, Path(tmp) / "http", args.batch, args.wait_s)
            if p := mismatch(f"collector: tickets after {c.tickets_s:.0f} s", want, c.tickets):
                problems.append(p)
            rows.append(["collector: POST /ingest only", f"{c.samples:,}", f"{c.ingest_s:.2f} s",
                         f"{c.samples / c.ingest_s:,.0f} samples/s", "HTTP + storage + engine queue"])
            rows.append(["collector: until tickets visible", f"{c.samples:,}", f"{c.tickets_s:.2f} s",
                         f"{c.samples / c.tickets_s:,.0f} samples/s",
                         f"{sum(c.tickets.values())} of {sum(want.values())} tickets, each as expected"])
            rows.append(["collector: ratio tickets visible / ingest", "", "", f"{c.ingest_s / c.tickets_s:.2f}",
                         f"aim >= 1.0; tickets {c.tickets_s - c.ingest_s:.2f} s after the last POST"])
        if not args.skip_backlog:
            bl = Backlog(args.backlog_devices)
            bwant = bl.expected()
            b = bench_backlog(bl, Path(tmp) / "backlog", args.batch, args.wait_s)
            if p := mismatch(f"backlog: tickets after {b.tickets_s:.0f} s", bwant, b.tickets):
                problems.append(p)
            rows.append([f"backlog 1 h x {bl.devices:,} devices: POST /ingest", f"{b.samples:,}",
                         f"{b.ingest_s:.2f} s", f"{b.samples / b.ingest_s:,.0f} samples/s",
                         f"ICMP {bl.icmp_s} s, SNMP {bl.snmp_s} s, in time order"])
            rows.append(["backlog: drained, tickets visible", f"{b.samples:,}", f"{b.tickets_s:.2f} s",
                         f"{b.samples / b.tickets_s:,.0f} samples/s",
                         f"{sum(b.tickets.values())} of {sum(bwant.values())} tickets, each as expected"])
            rows.append(["backlog: ratio tickets visible / ingest", "", "", f"{b.ingest_s / b.tickets_s:.2f}",
                         f"aim >= 1.0; tickets {b.tickets_s - b.ingest_s:.2f} s after the last POST"])
        # the detection trials take a minute or more: not worth running when the above already failed
        require_complete("contract", problems)
        if not args.skip_detect:
            lat = bench_detection(Path(tmp) / "detect", args.probe_s, args.trials)
            if len(lat) != args.trials:
                problems.append(f"detection: {len(lat)} of {args.trials} trials gave a ticket")
            rows.append(["detection: snmpsim stopped -> ticket in API", f"{len(lat)} trials",
                         f"median {median(lat):.2f} s", f"max {max(lat):.2f} s",
                         f"probe {args.probe_s:g} s + 1 s SNMP timeout; aim <= {args.probe_s + 2:g} s; "
                         + ", ".join(f"{x:.2f}" for x in lat)])
    require_complete("contract", problems)
    print(f"\n{args.devices:,} devices x {args.rounds} rounds (1/min), every contract category; the faults made "
          f"and the tickets found were the same ({sum(want.values())}: "
          f"{sum(n for (_, k), n in want.items() if k == 'reach')} unreachable, "
          f"{sum(n for (_, k), n in want.items() if k == 'loss')} lossy)\n")
    print(markdown_table(["measure", "samples", "time", "rate", "notes"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
