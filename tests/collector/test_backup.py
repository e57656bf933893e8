"""``weibao backup`` while ingest runs, ``weibao restore`` into an empty directory, on SQLite and PostgreSQL.

The real collector takes batches in a loop while the backup is made. Batch k carries one sample for each of
SERIES interfaces, at its own 5-minute bucket, with the value k: a restored snapshot is consistent when the
rollups and raw samples it holds are exactly those of the batch ids it holds. The ticket, the tokens and the
rollups of the restored copy must equal the original's, and a collector started on the copy must accept the
old tokens, answer the ticket as the original does and know the old batch ids.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.peers import postgres
from tests.peers.collector import run_collector, weibao

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

AGENT = "site-bk"
SERIES = 50
MAX_BATCHES = 2000          # the loop's bounds: batches and seconds
MAX_LOOP_S = 120.0
CONTRACT = {"sweep_interval_s": 0.5}


def registration() -> dict[str, Any]:
    return {"site": "lab", "agent": AGENT, "devices": [
        {"name": n, "address": "127.0.0.1", "kind": k, "category": "backbone", "schedule": {"icmp_s": 60}}
        for n, k in (("core-sw-1", "switch"), ("ups-1", "ups"))]}


@dataclass
class Loop:
    """Batches sent one after another until stopped; ``acked`` maps batch id -> k for every 200 answer."""

    client: httpx.Client
    base: datetime
    acked: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def body(self, k: int) -> dict[str, Any]:
        ts = (self.base + timedelta(minutes=5 * k)).isoformat()
        return {"batch_id": str(uuid.uuid4()), "agent": AGENT, "events": [], "samples": [
            {"device": "ups-1", "metric": "if.in_bps", "value": float(k), "ts": ts, "labels": {"ifName": f"ge{j}"}}
            for j in range(SERIES)]}

    def run(self) -> None:
        deadline = time.monotonic() + MAX_LOOP_S
        for k in range(MAX_BATCHES):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            body = self.body(k)
            r = self.client.post("/api/v1/ingest", json=body)
            if r.status_code != 200:
                self.errors.append(f"{r.status_code} {r.text}")
                return
            self.bodies[body["batch_id"]] = body
            self.acked[body["batch_id"]] = k

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n and not self.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.errors, self.errors
        assert len(self.acked) >= n, f"only {len(self.acked)} batches in {timeout} s"


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Backend:
    name: str
    state_url: str | None            # None: SQLite in the data directory
    restored_url: str | None

    def url(self, data_dir: Path, restored: bool = False) -> str:
        url = self.restored_url if restored else self.state_url
        return url or sqlite_url(data_dir / "state.db")

    def samples_url(self, data_dir: Path) -> str:
        return sqlite_url(data_dir / ("state.db" if self.state_url is None else "samples.db"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", None, None)
        return
    if not postgres.available():
        pytest.fail("PostgreSQL 15 is not installed (./dev installs the Debian package postgresql)")
    with postgres.run_postgres() as pg:
        admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE weibao"))
            conn.execute(text("CREATE DATABASE restored"))
        admin.dispose()
        base = pg.url.rsplit("/", 1)[0]
        yield Backend("postgresql", f"{base}/weibao", f"{base}/restored")


def ticket_view(t: dict[str, Any]) -> dict[str, Any]:
    """What a restore must keep of a ticket (clocks are computed as of the request)."""
    keep = ("id", "device", "rule", "level", "state", "opened_at", "accepted_at", "restored_at", "reported_at",
            "closed_at", "affected")
    return {**{k: t[k] for k in keep}, "events": t["events"],
            "deadlines": {n: c["deadline"] for n, c in t["clocks"].items()}}


def test_backup_while_ingesting_then_restore(tmp_path: Path, backend: Backend) -> None:
    work = tmp_path / "orig"
    work.mkdir()
    site = tmp_path / "etc"
    weibao("init", str(site), "--data", str(work / "data"))
    config = {"contract": CONTRACT, **({"state_url": backend.state_url} if backend.state_url else {})}
    with run_collector(work, config) as peer:
        agent_token, eng_token = peer.token(AGENT), peer.token("wang", "engineer")
        with peer.client(agent_token) as agent, peer.client(eng_token) as eng:
            assert agent.put("/api/v1/inventory", json=registration()).status_code == 200
            ticket, fault_batches = open_and_accept_a_ticket(agent, eng)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            loop = Loop(agent, now - timedelta(days=5, minutes=now.minute % 5))
            sender = threading.Thread(target=loop.run, name="ingest-loop")
            sender.start()
            try:
                loop.wait_for(20)
                archive = tmp_path / "weibao.tar.gz"
                out = weibao("backup", "--config", str(peer.config_path), "--include", str(site),
                             "--out", str(archive), check=False)
                at_end = len(loop.acked)
                loop.wait_for(at_end + 10)  # ingest goes on after the copy
            finally:
                loop.stop.set()
                sender.join(30)
            assert out.returncode == 0, out.stderr
            source_ticket = ticket_view(eng.get(f"/api/v1/tickets/{ticket}").json())
        source_tokens = rows(backend.url(peer.data_dir), "SELECT name, role, token_hash, created_ms, revoked_ms "
                                                         "FROM tokens ORDER BY id")
        source_tickets = ticket_rows(backend.url(peer.data_dir))
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "MANIFEST.json"
    assert f"files{site}/secrets.yaml" in names and f"files{peer.config_path}" in names
    assert not any(n.startswith("data/run/") or n.endswith(("-wal", "-shm")) for n in names), names

    # restore into an empty directory (it may exist); the configuration under a root of its own
    target = tmp_path / "new"
    (target / "data").mkdir(parents=True)
    restore = ["restore", str(archive), "--data", str(target / "data"), "--files-root", str(tmp_path / "root")]
    if backend.restored_url:
        restore += ["--state-url", backend.restored_url]
    r = weibao(*restore, check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "root" / str(site).lstrip("/") / "secrets.yaml").stat().st_mode & 0o777 == 0o600

    restored = backend.url(target / "data", restored=True)
    state_batches = {b for (b,) in rows(restored, "SELECT batch_id FROM batches")}
    in_copy = {k for b, k in loop.acked.items() if b in state_batches}
    assert 20 <= len(in_copy) < len(loop.acked), (len(in_copy), len(loop.acked))
    print(f"{backend.name}: {len(in_copy)} of {len(loop.acked)} batches sent during the test are in the copy")
    assert state_batches - set(loop.acked) == fault_batches  # nothing but what was sent
    expect_rollups(restored, loop, in_copy)
    expect_raw(backend.samples_url(target / "data"), loop, in_copy)
    assert rows(restored, "SELECT name, role, token_hash, created_ms, revoked_ms FROM tokens ORDER BY id") \
        == source_tokens
    assert ticket_rows(restored) == source_tickets

    # a collector on the copy: the old tokens work, the ticket reads the same, the old batch ids are known
    config = {"contract": CONTRACT, **({"state_url": backend.restored_url} if backend.restored_url else {})}
    with run_collector(target, config) as copy, copy.client(eng_token) as eng, copy.client(agent_token) as agent:
        assert ticket_view(eng.get(f"/api/v1/tickets/{ticket}").json()) == source_ticket
        again = next(b for b, k in loop.acked.items() if k == min(in_copy))
        answer = agent.post("/api/v1/ingest", json=loop.bodies[again])
        assert answer.status_code == 200 and answer.json()["duplicate"] is True, answer.text
        late = next(b for b, k in loop.acked.items() if k == max(loop.acked.values()))
        answer = agent.post("/api/v1/ingest", json=loop.bodies[late])  # sent after the copy: new to it
        assert answer.status_code == 200 and answer.json()["duplicate"] is False, answer.text


def open_and_accept_a_ticket(agent: httpx.Client, eng: httpx.Client) -> tuple[str, set[str]]:
    """core-sw-1 goes down: its ticket, accepted by an engineer; and the ids of the batches sent."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    ups = [{"device": d, "metric": "up", "value": 1.0, "ts": (t0 + timedelta(minutes=i)).isoformat()}
           for i in range(15) for d in ("core-sw-1", "ups-1")]
    down = [{"device": "core-sw-1", "metric": "up", "value": 0.0, "ts": (t0 + timedelta(minutes=15)).isoformat()}]
    sent = set()
    for samples in (ups, down):
        bid = str(uuid.uuid4())
        sent.add(bid)
        r = agent.post("/api/v1/ingest", json={"batch_id": bid, "agent": AGENT, "samples": samples,
                                               "events": []})
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = eng.get("/api/v1/tickets").json()["tickets"]
        if found:
            break
        time.sleep(0.1)
    assert len(found) == 1, found
    r = eng.post(f"/api/v1/tickets/{found[0]['id']}/accept", json={"note": "on site in 30 min"})
    assert r.status_code == 200, r.text
    return str(found[0]["id"]), sent


def ticket_rows(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (rows(url, "SELECT * FROM tickets ORDER BY id"),
            rows(url, "SELECT * FROM ticket_events ORDER BY ticket_id, seq"))


def expect_rollups(url: str, loop: Loop, in_copy: set[int]) -> None:
    """One rollup row per interface and resolution for every batch in the copy, none for the others."""
    found = rows(url, "SELECT r.resolution, r.bucket_ms, s.labels, r.min, r.max, r.sum, r.count, r.last "
                      "FROM rollups r JOIN series s ON s.id = r.series_id "
                      "WHERE s.device = 'ups-1' AND s.metric = 'if.in_bps' AND r.resolution = 300")
    expected = set()
    for k in in_copy:
        bucket = int((loop.base + timedelta(minutes=5 * k)).timestamp() * 1000)
        for j in range(SERIES):
            expected.add((300, bucket, f'{{"ifName":"ge{j}"}}', float(k), float(k), float(k), 1, float(k)))
    assert set(found) == expected
    assert len(found) == len(expected)


def expect_raw(url: str, loop: Loop, in_copy: set[int]) -> None:
    found = rows(url, "SELECT t.ts_ms, t.value FROM ts_samples t JOIN ts_series s ON s.id = t.series_id "
                      "WHERE s.device = 'ups-1' AND s.metric = 'if.in_bps'")
    by_ts: dict[int, list[float]] = {}
    for ts, value in found:
        by_ts.setdefault(ts, []).append(value)
    expected = {int((loop.base + timedelta(minutes=5 * k)).timestamp() * 1000): [float(k)] * SERIES
                for k in in_copy}
    if url.endswith("samples.db"):
        # raw samples beside a PostgreSQL state are written before the state commits (idempotently): the
        # copy holds at least those of every batch it holds
        assert all(by_ts.get(ts) == v for ts, v in expected.items())
    else:
        assert by_ts == expected


def test_restore_refuses_a_damaged_archive_and_a_non_empty_target(tmp_path: Path) -> None:
    work = tmp_path / "orig"
    work.mkdir()
    with run_collector(work) as peer:
        peer.token(AGENT)
        archive = tmp_path / "b.tar.gz"
        weibao("backup", "--config", str(peer.config_path), "--out", str(archive))
        again = weibao("backup", "--config", str(peer.config_path), "--out", str(archive), check=False)
        assert again.returncode == 2 and "exists" in again.stderr
    assert weibao("restore", str(archive), "--verify").returncode == 0

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    r = weibao("restore", str(archive), "--data", str(full), "--skip-files", check=False)
    assert r.returncode == 2 and "is not empty" in r.stderr
    assert [p.name for p in full.iterdir()] == ["keep.txt"]

    # one byte changed in the middle of the state copy: the gzip check or the checksum catches it
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(raw))
    # the same members re-packed with one of them altered: only the manifest's checksum catches it
    altered = tmp_path / "altered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(altered, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "data/state.db":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(m, io.BytesIO(data))
    for bad, reason in ((damaged, "damaged archive"), (altered, "data/state.db: checksum differs")):
        target = tmp_path / f"into-{bad.stem}"
        r = weibao("restore", str(bad), "--data", str(target), "--skip-files", check=False)
        assert r.returncode == 2 and reason in r.stderr, r.stderr
        assert not target.exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".weibao-")) == []


def test_backup_leaves_no_secret_in_its_output(tmp_path: Path) -> None:
    site = tmp_path / "etc"
    weibao("init", str(site), "--data", str(tmp_path / "data"))
    secret = "community-Zq81"
    (site / "secrets.yaml").write_text(f"snmp_community: {secret}\n")
    out = weibao("backup", "--config", str(site / "collector.yaml"), "--include", str(site), "--data",
                 str(tmp_path / "data"), "--out", str(tmp_path / "b.tar.gz"), check=False)
    # the data directory does not exist yet: refused, nothing written
    assert out.returncode == 2 and "no such data directory" in out.stderr
    (tmp_path / "data").mkdir()
    out = weibao("backup", "--config", str(site / "collector.yaml"), "--out", str(tmp_path / "b.tar.gz"), check=False)
    assert out.returncode == 2 and "no state database" in out.stderr  # and none was created by looking
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "b.tar.gz").exists()
    weibao("token", "issue", "a1", "--config", str(site / "collector.yaml"))
    out = weibao("backup", "--config", str(site / "collector.yaml"), "--include", str(site), "--out",
                 str(tmp_path / "b.tar.gz"))
    assert secret not in out.stdout + out.stderr
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert f"files{site}/secrets.yaml" in tar.getnames()


def test_out_dir_names_each_archive_and_keeps_the_newest(tmp_path: Path) -> None:
    site = tmp_path / "etc"
    weibao("init", str(site), "--data", str(tmp_path / "data"))
    weibao("token", "issue", "a1", "--config", str(site / "collector.yaml"))
    kept = tmp_path / "backups"
    kept.mkdir()
    made = []
    for _ in range(3):
        out = weibao("backup", "--config", str(site / "collector.yaml"), "--out-dir", str(kept), "--keep", "2")
        made.append(out.stdout.split(":", 1)[0])
        time.sleep(1.1)  # names are by the second
    assert sorted(str(p) for p in kept.iterdir()) == made[1:]
    assert all(re.fullmatch(r"weibao-\d{8}-\d{6}\.tar\.gz", Path(m).name) for m in made)
    assert "removed" in out.stdout
    bad = weibao("backup", "--config", str(site / "collector.yaml"), "--out", str(tmp_path / "x.tar.gz"), "--keep",
                 "2", check=False)
    assert bad.returncode == 2 and "--keep N (N >= 1) goes with --out-dir" in bad.stderr
