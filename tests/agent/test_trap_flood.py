"""A flood of garbage at the real agent's trap port (issue item 7): counted, not logged per packet.

The trap port is unauthenticated UDP. A 32-byte datagram of noise from an address outside the inventory
used to cost a 2.2 KB asyncio traceback (``TypeError: ConstructedAsn1Type.clone()`` from pysnmp): 1,000
packets/s for 10 s wrote 21.8 MB. Now every undecodable packet is counted in the agent's /metrics
(``weibao_agent_traps_malformed_total``), a readable trap from a stranger in ``..._unknown_source_total``,
each source is logged at most once a minute, the log grows by little, and real traps still arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.agent.test_daemon import agent_for, collector_db, wait_for
from tests.agent.test_traps import COMMUNITY, V3
from tests.peers.collector import REPO, CollectorPeer, free_port, run_collector

pytestmark = pytest.mark.timeout(120)

SNMPTRAP = shutil.which("snmptrap")
# noise that pysnmp's decoder raises on (TypeError) for a receiver with SNMPv3 users, as the issue saw
NOISE = "b04fff7b29b80c14fc9988ec67083cbd9858d34074a66b250efaeaa308cd7e55"
STRANGER = "127.0.0.9"

INVENTORY = f"""\
site: trap-lab
secrets_file: secrets.yaml
credentials:
  ro: {{type: snmp, version: 2c, community: "${{secret:community}}"}}
  v3: {{type: snmp, version: "3", user: {V3["user"]}, auth_protocol: SHA-256, auth_key: "${{secret:auth}}",
        priv_protocol: AES-128, priv_key: "${{secret:priv}}"}}
defaults:
  kind: switch
  category: mis
  icmp: {{count: 1, interval_ms: 10, timeout_ms: 300}}
  schedule: {{icmp_s: 3600, snmp_s: 3600, timeout_s: 5}}
devices:
  - {{name: core-sw-1, address: 127.0.0.1, snmp: {{credential: ro}}}}
  - {{name: ups-v3, address: 127.0.0.4, kind: ups, snmp: {{credential: v3}}}}
"""


def events(peer: CollectorPeer) -> list[tuple[str, str]]:
    db = collector_db(peer)
    try:
        return [(d, json.loads(data).get("trap", "")) for d, data in db.execute("SELECT device, data FROM events")]
    finally:
        db.close()


def snmptrap(source: str, port: int, trap_oid: str) -> None:
    assert SNMPTRAP is not None, "net-snmp's snmptrap is needed (Debian package snmp)"
    subprocess.run([SNMPTRAP, "-v", "2c", "-c", COMMUNITY, f"--clientaddr={source}", f"127.0.0.1:{port}", "",
                    trap_oid], env={"MIBS": "", "PATH": os.environ.get("PATH", "/usr/bin")}, check=True,
                   capture_output=True, timeout=30)


def test_garbage_flood_is_counted_and_logged_once_per_source(tmp_path: Path) -> None:
    (tmp_path / "collector").mkdir()
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"community: {COMMUNITY}\nauth: {V3['auth_key']}\npriv: {V3['priv_key']}\n")
    secrets.chmod(0o600)
    trap_port, metrics_port = free_port(), free_port()
    with run_collector(tmp_path / "collector") as peer, \
            agent_for(peer, tmp_path, "--traps", f"127.0.0.1:{trap_port}", "--metrics-port", str(metrics_port),
                      inventory=INVENTORY) as agent:
        wait_for("the trap receiver", lambda: f"receiving SNMP traps on 127.0.0.1:{trap_port}" in agent.log())
        snmptrap("127.0.0.1", trap_port, "1.3.6.1.6.3.1.1.5.3")  # a real one arrives before the flood...
        wait_for("the first trap at the collector", lambda: ("core-sw-1", "linkDown") in events(peer))
        log_before = agent.log_path.stat().st_size
        flood = subprocess.run([sys.executable, "-m", "tests.peers.flood", "udp", "--port", str(trap_port),
                                "--rate", "1000", "--seconds", "10", "--payload", NOISE, "--source", STRANGER],
                               cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        sent = json.loads(flood.stdout.splitlines()[-1])["sent"]
        assert sent >= 9_000
        for _ in range(20):  # readable traps from a stranger: counted, one line
            snmptrap(STRANGER, trap_port, "1.3.6.1.6.3.1.1.5.4")
        snmptrap("127.0.0.1", trap_port, "1.3.6.1.6.3.1.1.5.4")  # ...and after it
        wait_for("the last trap at the collector", lambda: ("core-sw-1", "linkUp") in events(peer))
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("weibao_agent_traps_")}
        # the kernel may drop a few datagrams of the burst; what arrives is counted
        assert values["weibao_agent_traps_malformed_total"] >= 0.9 * sent, values
        assert values["weibao_agent_traps_unknown_source_total"] == 20
        assert values["weibao_agent_traps_received_total"] == 2
        time.sleep(0.5)
        grown = agent.log_path.stat().st_size - log_before
        flood_log = agent.log()[-grown:]
        assert grown < 1_000_000 and grown < 5_000, flood_log
        assert "Traceback" not in flood_log
        assert sum(STRANGER in line for line in flood_log.splitlines()) <= 2, flood_log
        assert agent.stop() == 0
