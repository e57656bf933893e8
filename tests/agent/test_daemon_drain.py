"""SIGTERM in the middle of a poll round: the real ``weibao agent`` finishes the round, stores and ships it.

The device is a loopback address whose ICMP burst (7 echoes 0.5 s apart) keeps one round busy for about
3 s; the agent is stopped about 1 s into that round. What the collector holds is read from its own
SQLite file.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_daemon import agent_for, assert_exactly_once, collector_db, stored, wait_for
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(60)

COUNT, INTERVAL_MS = 7, 500
ROUND_S = (COUNT - 1) * INTERVAL_MS / 1000  # the last echo leaves this long after the first

SLOW_ROUND = f"""\
site: e2e
defaults:
  kind: server
  category: mis
  icmp: {{count: {COUNT}, interval_ms: {INTERVAL_MS}, timeout_ms: 300}}
  schedule: {{icmp_s: 300, timeout_s: 15}}
devices:
  - {{name: lo-7, address: 127.0.0.7}}
"""


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorPeer]:
    (tmp_path / "collector").mkdir()
    with run_collector(tmp_path / "collector") as peer:
        yield peer


def test_sigterm_mid_round_drains_stores_and_ships_the_round(collector: CollectorPeer, tmp_path: Path) -> None:
    launched = time.time()
    with agent_for(collector, tmp_path, "--drain-s", "8", inventory=SLOW_ROUND) as agent:
        # the first round starts as the scheduler starts, right after this line
        wait_for("the agent to start", lambda: " started: " in agent.log(), timeout=20)
        time.sleep(1.0)
        assert stored(collector) == {}  # the round is still polling: nothing stored or shipped yet
        term = time.time()
        agent.signal(signal.SIGTERM)
        assert agent.proc is not None
        code = agent.proc.wait(30)
        stopped = time.time()
    assert code == 0, agent.log()
    have = assert_exactly_once(collector, agent)
    mine = {(m, ts) for (d, m, ts) in have if d == "lo-7"}
    metrics = {m for m, _ in mine}
    assert {"up", "icmp.loss_pct", "icmp.rtt_ms"} <= metrics
    assert len(mine) == len(metrics)  # one round, one sample per metric
    round_start = min(ts for _, ts in mine) / 1000
    # every sample is from the one round that began after launch and before the SIGTERM ...
    assert all(launched * 1000 <= ts <= term * 1000 for _, ts in mine)
    # ... and that round was still sending echoes when the SIGTERM came: it was drained, not cut
    assert term < round_start + ROUND_S
    assert stopped >= round_start + ROUND_S
    assert loss_pct(collector, "lo-7") == 0.0  # all seven echoes went out and were answered
    assert "stopped: 0 runs cancelled" in agent.log()


def loss_pct(peer: CollectorPeer, device: str) -> float:
    """The one ICMP loss value the collector stored for ``device``."""
    db = collector_db(peer)
    try:
        (value,), = db.execute("SELECT t.value FROM ts_samples t JOIN ts_series s ON s.id = t.series_id "
                               "WHERE s.device = ? AND s.metric = 'icmp.loss_pct'", (device,)).fetchall()
    finally:
        db.close()
    return float(value)
