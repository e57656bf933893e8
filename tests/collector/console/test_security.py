"""The console's security properties against the real collector: sessions, cookies, CSRF, doors kept
apart (a session is no API token, a token opens no page), escaping, and no secret on any page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.console.conftest import PASSWORDS, XSS, Site, csrf_of, login
from tests.peers.collector import run_collector
from weibao.collector.config import CollectorConfig
from weibao.collector.http.app import create_app

pytestmark = pytest.mark.timeout(180)

# what answers without a session or token: the login form, the language switch, health, metrics, assets
# (the API describes itself nowhere: /openapi.json is not served)
OPEN = {("GET", "/login"), ("POST", "/login"), ("GET", "/lang/{code}"), ("GET", "/healthz"), ("GET", "/metrics")}


def session_cookie(r: httpx.Response) -> str:
    found = [h for h in r.headers.get_list("set-cookie") if h.startswith("wb_session=")]
    assert len(found) == 1, r.headers.get_list("set-cookie")
    return found[0]


def test_login_starts_a_new_session_whatever_cookie_came_with_it(site: Site) -> None:
    planted = "attacker-chosen-session-id"
    c, r = login(site, "wang", cookies={"wb_session": planted})
    assert r.status_code == 303 and r.headers["location"] == "/"
    sid = session_cookie(r).split(";")[0].removeprefix("wb_session=")
    assert sid != planted and len(sid) >= 40  # 32 random bytes, base64: 43 characters
    assert c.get("/").status_code == 200
    # the planted id opens nothing, and a second login gets yet another id
    assert httpx.get(f"{site.peer.url}/", cookies={"wb_session": planted}).status_code == 303
    _, again = login(site, "wang")
    assert session_cookie(again).split(";")[0].removeprefix("wb_session=") not in (sid, planted)
    c.close()


def test_cookie_flags_over_plain_http(site: Site) -> None:
    _, r = login(site, "wang")
    flags = [f.strip().lower() for f in session_cookie(r).split(";")[1:]]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # plain HTTP on loopback: a Secure cookie would never come back


def test_cookies_are_secure_when_the_console_is_reached_over_tls(tmp_path: Path) -> None:
    # a TLS-terminating proxy in front: the base URL says https, so the browser will hold a Secure cookie
    with run_collector(tmp_path, {"console": {"base_url": "https://weibao.example.internal"}}) as peer:
        r = httpx.get(f"{peer.url}/login")
        flags = [f.strip().lower() for f in r.headers["set-cookie"].split(";")[1:]]
        assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    data = tmp_path_factory.mktemp("routes")
    app = create_app(CollectorConfig(data_dir=data))  # only its route table is read: nothing is served
    out = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    assert len(out) > 30  # the API and the console: every route, not a few
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_no_page_or_api_answers_without_a_session_or_token(site: Site, routes: list[tuple[str, str]]) -> None:
    checked = 0
    with httpx.Client(base_url=site.peer.url, timeout=30) as anon:
        for method, path in routes:
            if (method, path) in OPEN:
                continue
            r = anon.request(method, _concrete(path))
            if path.startswith("/api/"):
                assert r.status_code == 401, (method, path, r.status_code)
            else:  # a page sends the person to the login form; a form post is refused outright
                assert (r.status_code, r.headers.get("location", "")[:6]) in ((303, "/login"), (401, "")), (
                    method, path, r.status_code)
            checked += 1
    assert checked == len(routes) - len(OPEN)
    for asset in ("/static/console.css", "/static/uPlot.iife.min.js", "/static/uPlot.LICENSE.txt"):
        assert httpx.get(site.peer.url + asset).status_code == 200  # assets are not pages: served to all


def test_a_session_is_no_api_token_and_a_token_opens_no_page(site: Site) -> None:
    c, r = login(site, "wang")
    sid = session_cookie(r).split(";")[0].removeprefix("wb_session=")
    assert c.get("/api/v1/tickets").status_code == 401  # the cookie goes along: not a credential there
    assert httpx.get(f"{site.peer.url}/api/v1/tickets", headers={"Authorization": f"Bearer {sid}"}).status_code == 401
    page = httpx.get(f"{site.peer.url}/tickets", headers={"Authorization": f"Bearer {site.engineer_token}"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    c.close()


def test_names_notes_and_descriptions_are_shown_as_text(site: Site) -> None:
    (ticket,) = [t for t in site.tickets() if t["device"] == "core-sw-1"][:1]
    c, _ = login(site, "wang", follow=True)
    page = c.get(f"/tickets/{ticket['id']}")
    r = c.post(f"/tickets/{ticket['id']}/comment", data={"csrf": csrf_of(page.text), "note": XSS})
    assert r.status_code == 200, r.text  # followed to the ticket page
    for url in (f"/tickets/{ticket['id']}", "/devices/core-sw-1", "/admin/audit"):
        html = c.get(url).text if url != "/admin/audit" else login(site, "root", follow=True)[0].get(url).text
        assert XSS not in html, url
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html, url
    # a device name with markup: refused at the door, or shown as text
    with site.peer.client(site.agent_token) as agent:
        reg = agent.put("/api/v1/inventory", json={"site": "lab", "agent": "other-agent", "devices": [
            {"name": "<b>x</b>", "address": "127.0.0.1", "kind": "switch", "category": "backbone"}]})
    if reg.status_code == 200:
        html = c.get("/devices").text
        assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    else:
        assert reg.status_code in (403, 422), reg.text
    c.close()


def test_no_secret_on_any_page(site: Site) -> None:
    c, _ = login(site, "root", follow=True)
    sid = c.cookies.get("wb_session")
    assert sid
    pages = ["/", "/tickets", "/devices", "/devices/core-sw-1", "/devices/srv-1", "/maintenance", "/reports",
             "/contract", "/admin/users", "/admin/audit", "/account"]
    pages += [f"/tickets/{t['id']}" for t in site.tickets()]
    secrets = [*PASSWORDS.values(), site.agent_token, site.engineer_token, sid, "$argon2"]
    for url in pages:
        resp = c.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        for s in secrets:
            assert s not in resp.text, (url, s[:6])
    # nor in what the pages' scripts fetch
    state = json.dumps([c.get(u, headers={"X-Weibao-Partial": "1"}).text for u in ("/", pages[-1])])
    assert not any(s in state for s in secrets)
    c.close()


def test_parallel_wrong_passwords_check_no_more_than_the_limit(site: Site) -> None:
    # the site allows 3 failures an account: 30 guesses sent at once get 3 password checks at most (401),
    # every other one is refused by the lockout (429), and the right password afterwards too
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tests.collector.console.conftest import weibao

    weibao("user", "add", "racer", "--role", "engineer", "--password-stdin", "--config",
           str(site.peer.config_path), stdin="racer-pass-0001\n")
    forms = []
    for _ in range(30):
        c = httpx.Client(base_url=site.peer.url, timeout=60)
        pre = re.search(r'name="pre" value="([^"]+)"', c.get("/login").text)
        assert pre is not None
        forms.append((c, pre.group(1)))
    start = threading.Barrier(len(forms))

    def guess(k: int) -> int:
        c, pre = forms[k]
        start.wait(timeout=30)
        r = c.post("/login", data={"pre": pre, "name": "racer", "password": f"guess-{k:04d}-xx", "next": "/"})
        c.close()
        return r.status_code

    with ThreadPoolExecutor(len(forms)) as pool:
        statuses = list(pool.map(guess, range(len(forms))))
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= 3, statuses
    c = httpx.Client(base_url=site.peer.url, timeout=30)
    pre = re.search(r'name="pre" value="([^"]+)"', c.get("/login").text)
    assert pre is not None
    r = c.post("/login", data={"pre": pre.group(1), "name": "racer", "password": "racer-pass-0001", "next": "/"})
    assert r.status_code == 429
    _, r = login(site, "racer2", "racer-pass-0001")
    assert r.status_code == 401  # another account is not locked by racer's lockout


def test_a_login_body_streamed_without_a_length_is_bounded(site: Site) -> None:
    c = httpx.Client(base_url=site.peer.url, timeout=30)
    pre = re.search(r'name="pre" value="([^"]+)"', c.get("/login").text)
    assert pre is not None
    def chunks() -> Any:
        yield f"pre={pre.group(1)}&name=wang&password=".encode()
        for _ in range(4096):  # 4 MiB of password, no Content-Length: chunked transfer
            yield b"a" * 1024

    r = c.post("/login", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413, r.status_code
    assert "content-length" not in r.request.headers
    # a form that is no url-encoded form is refused too, without being read
    r = c.post("/login", files={"name": ("x", b"wang")})
    assert r.status_code == 415
