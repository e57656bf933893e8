"""``weibao demo`` as a real process: the report names the simulated devices and holds no community,
the simulated faults become tickets, and everything it started is gone afterwards (also after Ctrl-C)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.peers.collector import REPO
from weibao.embedded.simlab import data_roots

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not data_roots(), reason="snmpsim-data is not installed")]


def demo_command() -> list[str]:
    return [sys.executable, "-m", "weibao", "demo"]


def simulated_endpoints(inventory: Path) -> set[tuple[str, int]]:
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    return {(d["address"], int(d["snmp"]["port"])) for d in doc["devices"] if d["name"] != "branch-router-1"}


def assert_released(endpoints: set[tuple[str, int]]) -> None:
    """No simulator holds its UDP port any more (binding it succeeds)."""
    for host, port in endpoints:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, port))


def test_demo_report_tickets_and_cleanup(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    started = time.monotonic()
    proc = subprocess.run([*demo_command(), "--out", str(out), "--lang", "en"], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert elapsed < 90, f"the demo took {elapsed:.0f} s"

    inventory = yaml.safe_load((out / "inventory.yaml").read_text(encoding="utf-8"))
    names = [d["name"] for d in inventory["devices"]]
    secrets = [str(v) for v in yaml.safe_load((out / "secrets.yaml").read_text(encoding="utf-8")).values()]
    assert len(secrets) == len(names)
    assert (out / "secrets.yaml").stat().st_mode & 0o077 == 0
    reports = sorted(out.glob("inspection-*.html"))
    assert reports, list(out.iterdir())
    html = reports[-1].read_text(encoding="utf-8")
    for name in names:
        assert name in html
    for text in (html, proc.stdout, proc.stderr, (out / "inventory.yaml").read_text(encoding="utf-8")):
        for secret in secrets:
            assert secret not in text

    # the branch switch's simulator was stopped: a level-3 ticket for it, with the device behind it attached;
    # the UPS's on-battery trap: a ticket of its own
    lines = proc.stdout.splitlines()
    down = [i for i, line in enumerate(lines) if re.search(r"\bdist-sw-2\s+down\s+3\s", line)]
    assert down, proc.stdout
    assert "nvr-2" in lines[down[0] + 1]
    assert any(re.search(r"\bups-1\s+\S*battery\S*\s+3\s", line) for line in lines), proc.stdout
    # the console's address and a one-time password for the demo engineer, the same one each time it is shown
    shown = set(re.findall(r"^console: (http://127\.0\.0\.1:\d+/)  user demo-engineer, one-time password (\S+) ",
                           proc.stdout, re.M))
    assert len(shown) == 1, proc.stdout
    # the inspection report is on the console's reports shelf too
    assert (out / "data" / "reports" / reports[-1].name).is_file()

    # the demo ends with this week's report of the site, next to the inspection report
    weekly = {p.suffix: p for p in out.glob("weekly-*")}
    assert set(weekly) == {".json", ".html", ".pdf", ".xlsx"}, list(out.iterdir())
    doc = json.loads(weekly[".json"].read_text(encoding="utf-8"))
    assert doc["kind"] == "weekly" and doc["has_data"] is True
    assert {d["device"] for d in doc["devices"]} == set(names)
    assert "dist-sw-2" in {t["device"] for t in doc["tickets"]["items"]}
    page = weekly[".html"].read_text(encoding="utf-8")
    assert "Weekly Maintenance Report" in page
    for secret in secrets:
        assert secret not in page and secret not in weekly[".json"].read_text(encoding="utf-8")
    assert weekly[".pdf"].read_bytes().startswith(b"%PDF")
    assert_released(simulated_endpoints(out / "inventory.yaml"))


def test_demo_ctrl_c_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen([*demo_command(), "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("API: "):
                break
        else:
            pytest.fail("the demo ended before weibao run started: " + "".join(seen)[-3000:])
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, "".join(seen) + rest
    assert_released(simulated_endpoints(out / "inventory.yaml"))
