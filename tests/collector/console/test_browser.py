"""The console in a real browser: Debian's Chromium driven by Playwright against the real collector.

Screenshots of the main pages at 1366x768 and 390x844 go to test-artifacts/console/ (ignored by git).
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.collector.console.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORDS, PROBE_S, Site, up, wait_until

pytestmark = pytest.mark.timeout(240)

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: ./dev setup --test installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def log_in(browser: Browser, site: Site, name: str, *, viewport: dict[str, int] = DESKTOP,
           password: str | None = None) -> Page:
    page = browser.new_context(viewport=viewport, locale="zh-CN").new_page()  # type: ignore[arg-type]
    page.goto(f"{site.peer.url}/")
    assert page.url.startswith(f"{site.peer.url}/login"), page.url  # no session: the login form
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name] if password is None else password)
    page.click("form[action='/login'] button[type=submit]")
    return page


def core_ticket(site: Site) -> str:
    found = [t for t in site.tickets() if t["device"] == "core-sw-1"]
    assert found
    return str(found[0]["id"])


def test_login_and_screenshots_of_every_main_page(browser: Browser, site: Site, artefacts: Path) -> None:
    tid = core_ticket(site)
    pages = {"overview": "/", "tickets": "/tickets", "ticket": f"/tickets/{tid}", "devices": "/devices",
             "device": "/devices/srv-1", "maintenance": "/maintenance", "reports": "/reports",
             "contract": "/contract", "users": "/admin/users", "audit": "/admin/audit"}
    for size, viewport in (("1366x768", DESKTOP), ("390x844", PHONE)):
        page = log_in(browser, site, "root", viewport=viewport)
        expect(page.locator("h1")).to_contain_text("总览")
        for name, url in pages.items():
            page.goto(site.peer.url + url)
            expect(page.locator("main h1")).to_be_visible()
            page.screenshot(path=str(artefacts / f"{name}-{size}.png"), full_page=True)
            if viewport is PHONE:  # usable on a phone: the page itself never scrolls sideways
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], (url, width)
        page.context.close()
    assert len(list(artefacts.glob("*-390x844.png"))) == len(pages)


def test_wrong_password_refused_then_the_account_locked(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "lockme", password="not-the-password")
    expect(page.locator("[role=alert]")).to_contain_text("用户名或密码错误")
    for _ in range(2):  # failures 2 and 3 of the configured 3: the third starts the lockout
        page.fill("input[name=password]", "still-not-it")
        page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("已暂时锁定")
    # locked for a while: the right password is refused too
    page.fill("input[name=password]", PASSWORDS["lockme"])
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("已暂时锁定")
    assert "/login" in page.url
    page.context.close()


def test_engineer_accepts_from_the_ticket_page_and_the_response_clock_shows_met(browser: Browser,
                                                                             site: Site) -> None:
    tid = core_ticket(site)
    page = log_in(browser, site, "wang", viewport=PHONE)
    page.goto(f"{site.peer.url}/tickets/{tid}")
    expect(page.locator("#clock-response")).not_to_have_attribute("data-status", "met")
    offered = page.locator("#actions button[data-action]")
    assert "accept" in offered.evaluate_all("els => els.map(e => e.dataset.action)")
    page.fill("form[action$='/accept'] textarea[name=note]", "on my way")
    page.click("button[data-action=accept]")
    expect(page.locator("#clock-response")).to_have_attribute("data-status", "met")
    expect(page.locator("button[data-action=accept]")).to_have_count(0)  # done: no longer offered
    (ticket,) = [t for t in site.tickets() if t["id"] == tid]
    assert ticket["state"] == "accepted" and ticket["clocks"]["response"]["met_at"] is not None
    page.context.close()


def test_client_sees_the_ticket_but_no_action_and_a_forged_post_is_refused(browser: Browser, site: Site) -> None:
    tid = core_ticket(site)
    page = log_in(browser, site, "client1")
    page.goto(f"{site.peer.url}/tickets/{tid}")
    expect(page.locator("main h1")).to_contain_text(tid)
    expect(page.locator("#actions form")).to_have_count(0)
    before = next(t for t in site.tickets() if t["id"] == tid)
    # the client's own session and CSRF token, an action the table gives engineers only
    csrf = page.locator("form[action='/logout'] input[name=csrf]").input_value()
    r = page.request.post(f"{site.peer.url}/tickets/{tid}/comment", form={"csrf": csrf, "note": "forged"},
                          max_redirects=0)
    assert r.status == 403
    after = next(t for t in site.tickets() if t["id"] == tid)
    assert after["events"] == before["events"]
    page.context.close()


def test_a_post_without_the_csrf_token_is_refused(browser: Browser, site: Site) -> None:
    tid = core_ticket(site)
    page = log_in(browser, site, "li")
    before = next(t for t in site.tickets() if t["id"] == tid)
    r = page.request.post(f"{site.peer.url}/tickets/{tid}/comment", form={"note": "no token"}, max_redirects=0)
    assert r.status == 403
    r = page.request.post(f"{site.peer.url}/tickets/{tid}/comment", form={"note": "bad", "csrf": "0" * 64},
                          max_redirects=0)
    assert r.status == 403
    assert next(t for t in site.tickets() if t["id"] == tid)["events"] == before["events"]
    page.context.close()


def test_logout_ends_the_session_on_the_server(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "li")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "wb_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    old = {"wb_session": cookie["value"]}
    assert httpx.get(f"{site.peer.url}/tickets", cookies=old).status_code == 200
    page.click("form[action='/logout'] button")
    expect(page.locator("input[name=password]")).to_be_visible()
    # the old cookie, replayed: the session is over
    r = httpx.get(f"{site.peer.url}/tickets", cookies=old)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page.context.close()


def test_device_chart_has_the_points_the_api_returns(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "wang")
    page.goto(f"{site.peer.url}/devices/srv-1?range=6h")
    fig = page.locator("figure.chart[data-metric='cpu.util_pct']")
    expect(fig.locator("canvas")).to_have_count(1)  # uPlot drew it
    shown = fig.evaluate("f => ({x: f.uplot.data[0], y: f.uplot.data[1], src: JSON.parse("
                         "f.querySelector('.chart-data').textContent)})")
    with site.api() as api:
        r = api.get("/api/v1/series", params={"device": "srv-1", "metric": "cpu.util_pct", "step": 300,
                                               "from": shown["src"]["from"], "to": shown["src"]["to"]})
    assert r.status_code == 200
    (series,) = r.json()["series"]
    api_x = [datetime.fromisoformat(p["t"]).timestamp() for p in series["points"]]
    api_y = [p["avg"] for p in series["points"]]
    assert shown["x"] == api_x and shown["y"] == api_y
    # 20 one-minute samples 10, 11, ... 29 fall in 4 or 5 five-minute buckets: every one of them is drawn
    assert 4 <= len(api_x) <= 5 and sum(p["count"] for p in series["points"]) == 20
    page.context.close()


def test_the_overview_changes_when_a_device_goes_down_without_a_reload(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "wang")
    expect(page.locator("main h1")).to_contain_text("总览")
    page.evaluate("window.__sameDocument = 1")
    expect(page.locator(".down-list")).not_to_contain_text("ups-1")
    now = datetime.now(UTC).replace(microsecond=0)
    site.send([up("ups-1", 0, now - timedelta(seconds=PROBE_S) + timedelta(seconds=i)) for i in range(3)])
    wait_until(lambda: any(d["name"] == "ups-1" and d["up"] is False
                           for d in httpx.get(f"{site.peer.url}/api/v1/devices", headers={
                               "Authorization": f"Bearer {site.engineer_token}"}).json()["devices"]),
               10, "ups-1 down in the API")
    expect(page.locator(".down-list")).to_contain_text("ups-1", timeout=10_000)  # refresh_s is 1 s here
    assert page.evaluate("window.__sameDocument") == 1  # the same document: refreshed in place
    page.context.close()


def test_a_link_from_another_site_opens_the_ticket_in_the_logged_in_browser(browser: Browser, site: Site,
                                                                             tmp_path: Path) -> None:
    """A notification's link clicked in webmail: another site, so the SameSite=Strict cookie stays behind on
    that first request; the console loads the page again from its own site and the ticket opens."""
    tid = core_ticket(site)
    (tmp_path / "mail.html").write_text(f'<a id="go" href="{site.peer.url}/tickets/{tid}">ticket</a>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            return None

    # 127.0.0.2 is another site than 127.0.0.1 for the browser's cookie rules
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = log_in(browser, site, "wang")
        expect(page.locator("main h1")).to_contain_text("总览")
        page.goto(f"http://127.0.0.2:{server.server_address[1]}/mail.html")
        page.click("#go")
        expect(page.locator("main h1")).to_contain_text(tid)
        assert page.url == f"{site.peer.url}/tickets/{tid}"
        # without a session the same link ends at the login form, once
        other = browser.new_context().new_page()
        other.goto(f"http://127.0.0.2:{server.server_address[1]}/mail.html")
        other.click("#go")
        expect(other.locator("input[name=password]")).to_be_visible()
        assert other.url.startswith(f"{site.peer.url}/login?next=")
        other.context.close()
        page.context.close()
    finally:
        server.shutdown()
        server.server_close()


def test_english_switch_keeps_the_page(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "wang")
    page.goto(f"{site.peer.url}/devices?q=srv")
    page.click("text=English")
    expect(page.locator("main h1")).to_contain_text("Devices")
    assert page.url == f"{site.peer.url}/devices?q=srv"  # back where it was, filter kept
    page.goto(f"{site.peer.url}/")
    expect(page.locator("main h1")).to_contain_text("Overview")
    page.click("text=中文")
    expect(page.locator("main h1")).to_contain_text("总览")
    page.context.close()
