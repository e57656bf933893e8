"""Accounts from the command line and the admin page, the audit log of console, API and CLI actions, and the
console section of the collector configuration (checked by ``weibao collector --check``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.collector.console.conftest import PASSWORDS, Site, csrf_of, login, weibao
from tests.peers.collector import REPO, run_collector
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.timeout(180)


def test_user_cli_generates_a_one_time_password_and_disable_ends_sessions(site: Site) -> None:
    cfg = str(site.peer.config_path)
    out = weibao("user", "add", "zhao", "--role", "engineer", "--config", cfg)
    password = out.stdout.strip()
    assert len(password) >= 16 and "one-time password" in out.stderr
    listed = weibao("user", "list", "--config", cfg).stdout
    assert re.search(r"^zhao\tengineer\tpassword change due\t", listed, re.M)
    assert password not in listed and "$argon2" not in listed
    PASSWORDS["zhao"] = password
    c, r = login(site, "zhao")
    assert r.status_code == 303 and r.headers["location"] == "/account"  # a new password first
    assert c.get("/tickets").headers["location"] == "/account"
    page = c.get("/account")
    r = c.post("/account", data={"csrf": csrf_of(page.text), "current": password, "new": "zhao-own-pass-1",
                                 "again": "zhao-own-pass-1"})
    assert r.status_code == 303
    assert c.get("/tickets").status_code == 200
    weibao("user", "disable", "zhao", "--config", cfg)
    assert c.get("/tickets").status_code == 303  # the session ended with the account
    _, again = login(site, "zhao", "zhao-own-pass-1")
    assert again.status_code == 401
    c.close()


def test_admin_page_adds_a_user_shown_once_and_clients_cannot_manage_users(site: Site) -> None:
    admin, _ = login(site, "root", follow=True)
    page = admin.get("/admin/users")
    r = admin.post("/admin/users", data={"csrf": csrf_of(page.text), "name": "client2", "role": "client"})
    assert r.status_code == 200
    shown = re.search(r'<code class="secret">([^<]+)</code>', r.text)
    assert shown is not None
    assert shown.group(1) not in admin.get("/admin/users").text  # shown once
    bad = admin.post("/admin/users", data={"csrf": csrf_of(page.text), "name": "x y", "role": "client"})
    assert bad.status_code == 422 and "name:" in bad.text
    client, _ = login(site, "client1", follow=True)
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/maintenance").status_code == 403
    forged = client.post("/admin/users", data={"csrf": csrf_of(client.get("/").text), "name": "evil",
                                               "role": "admin"})
    assert forged.status_code == 403
    assert "evil" not in admin.get("/admin/users").text
    admin.close()
    client.close()


def test_audit_log_records_console_api_and_cli_actions(site: Site) -> None:
    tid = next(t["id"] for t in site.tickets() if t["device"] == "core-sw-1")
    with site.api() as api:
        assert api.post(f"/api/v1/tickets/{tid}/comment", json={"note": "via the API"}).status_code == 200
        assert api.post(f"/api/v1/tickets/{tid}/close", json={}).status_code == 409
    _, failed = login(site, "li", "wrong-password-here")
    assert failed.status_code == 401
    admin, _ = login(site, "root", follow=True)
    html = admin.get("/admin/audit").text
    rows = re.findall(r"<tr><td>[^<]+</td><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td><td>([^<]*)</td>\s*<td><span class=\"badge [^\"]+\">([a-z]+)</span>", html)
    assert ("api-eng", "127.0.0.1", "api", "ticket.comment", tid, "ok") in rows
    assert ("api-eng", "127.0.0.1", "api", "ticket.close", tid, "refused") in rows
    assert ("li", "127.0.0.1", "console", "login.failed", "li", "refused") in rows
    assert ("root", "127.0.0.1", "console", "login", "root", "ok") in rows
    assert any(r[2] == "cli" and r[3] == "user.add" for r in rows)
    only = admin.get("/admin/audit", params={"action": "ticket."}).text
    assert "login.failed" not in only and "ticket.comment" in only
    for before in ("9" * 40, "１２", "-1", "1e3"):  # beyond any entry number, not ASCII digits, not a number
        assert admin.get("/admin/audit", params={"before": before}).status_code == 422, before
    admin.close()


def test_maintenance_window_added_listed_and_cancelled(site: Site) -> None:
    c, _ = login(site, "wang", follow=True)
    page = c.get("/maintenance")
    bad = c.post("/maintenance", data={"csrf": csrf_of(page.text), "devices": "srv-1 nosuch", "start":
                                       "2030-01-01T22:00", "end": "2030-01-02T02:00", "reason": "kept"})
    assert bad.status_code == 422 and "devices: unknown device nosuch" in bad.text
    assert 'value="kept"' in bad.text  # what was typed is kept
    for start, end in [("0001-01-01T00:00", "0001-01-02T00:00"), ("9999-12-30T00:00", "9999-12-31T23:59"),
                       ("2030-01-01T22:00+14:00", "9999-12-31T23:59-12:00")]:  # the ends of the calendar
        bad = c.post("/maintenance", data={"csrf": csrf_of(page.text), "devices": "srv-1", "start": start,
                                           "end": end, "reason": "edge"})
        assert bad.status_code == 422 and "outside 1970-01-01" in bad.text, (start, bad.status_code)
    for params in ({"to": "9999-12-31"}, {"from": "0001-01-01"}, {"from": "９９９９-01-01"}, {"page": "²"},
                   {"page": "9" * 40}):
        assert c.get("/tickets", params=params).status_code == 422, params
    assert c.get("/tickets", params={"from": "1970-01-01", "to": "9998-12-31"}).status_code == 200
    r = c.post("/maintenance", data={"csrf": csrf_of(page.text), "devices": "srv-1, ups-1",
                                     "start": "2030-01-01T22:00", "end": "2030-01-02T02:00", "reason": "UPS swap"})
    assert r.status_code == 200
    with site.api() as api:
        (w,) = [w for w in api.get("/api/v1/maintenance").json()["windows"] if w["reason"] == "UPS swap"]
    # 22:00 in Asia/Shanghai (UTC+8) is 14:00 UTC
    assert w["devices"] == ["srv-1", "ups-1"] and w["start"] == "2030-01-01T22:00:00+08:00"
    r = c.post(f"/maintenance/{w['id']}/cancel", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200
    for beyond in ("9" * 30, str(2**63), str(-(2**63) - 1), "0"):  # no window, and none could have such an id
        assert c.post(f"/maintenance/{beyond}/cancel", data={"csrf": csrf_of(page.text)}).status_code == 404
    with site.api() as api:
        assert not [w for w in api.get("/api/v1/maintenance").json()["windows"] if w["reason"] == "UPS swap"]
    c.close()


def test_console_base_url_is_checked_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text("data_dir: data\nconsole:\n  base_url: ftp://weibao\n")
    r = subprocess.run([sys.executable, "-m", "weibao", "collector", "--check", "--config", str(cfg)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert re.search(rf"{re.escape(str(cfg))}:2: console: .*base_url must be http", r.stdout), r.stdout


def test_notifications_link_to_the_ticket_page(tmp_path: Path) -> None:
    with SmtpPeer() as smtp:
        notify = tmp_path / "notify.yaml"
        notify.write_text(json.dumps({"channels": {"mail": {
            "type": "email", "host": "127.0.0.1", "port": smtp.port, "starttls": False,
            "sender": "weibao@example.net", "to": ["oncall@example.net"]}}}))
        config = {"contract": {"sweep_interval_s": 0.5, "notify": str(notify)},
                  "console": {"base_url": "https://weibao.example.internal/"}}
        with run_collector(tmp_path, config) as peer:
            token = peer.token("site-n")
            with peer.client(token) as c:
                assert c.put("/api/v1/inventory", json={"site": "lab", "agent": "site-n", "devices": [
                    {"name": "sw-9", "address": "127.0.0.1", "kind": "switch", "category": "backbone"}]}
                ).status_code == 200
                now = datetime.now(UTC).replace(microsecond=0)
                samples = [{"device": "sw-9", "metric": "up", "value": 1 if k < 5 else 0,
                            "ts": (now - timedelta(minutes=10 - k)).isoformat()} for k in range(10)]
                assert c.post("/api/v1/ingest", json={"batch_id": "5f0c8f7e-0000-4000-8000-000000000001",
                                                      "agent": "site-n", "samples": samples,
                                                      "events": []}).status_code == 200
            deadline = time.monotonic() + 20
            while not smtp.messages() and time.monotonic() < deadline:
                time.sleep(0.1)
            (msg,) = smtp.messages()[:1]
            body = msg.message.get_content()
            eng = peer.token("eng-n", "engineer")
            tid = httpx.get(f"{peer.url}/api/v1/tickets", headers={"Authorization": f"Bearer {eng}"}
                            ).json()["tickets"][0]["id"]
            # the base URL's trailing slash is not doubled
            assert f"https://weibao.example.internal/tickets/{tid}" in body, body
