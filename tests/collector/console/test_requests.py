"""Opening a request from the console: the API's rules (level 3 unless an engineer sets another, a named
device must be registered, a summary is needed), CSRF, the audit log, and the ticket as the API shows it."""

from __future__ import annotations

import re

import httpx

from tests.collector.console.conftest import Site, csrf_of, login


def _form(site: Site, name: str) -> tuple[httpx.Client, str]:
    c, r = login(site, name, follow=True)
    assert r.status_code == 200, r.text
    page = c.get("/tickets/new")
    assert page.status_code == 200, page.text
    return c, csrf_of(page.text)


def test_the_client_opens_a_request_and_its_response_clock_runs_from_submission(site: Site) -> None:
    c, csrf = _form(site, "client1")
    page = c.get("/tickets/new").text
    assert 'name="level"' in page and 'type="hidden" name="level" value="3"' in page  # no level choice
    r = c.post("/tickets/new", data={"csrf": csrf, "kind": "guidance", "summary": "打印机无法连接",
                                     "device": "srv-1", "note": "三楼财务室", "level": "3"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    ticket_id = r.headers["location"].rsplit("/", 1)[1]
    found = [t for t in site.tickets() if t["id"] == ticket_id]
    assert len(found) == 1
    t = found[0]
    assert (t["kind"], t["summary"], t["device"], t["level"], t["state"]) == (
        "guidance", "打印机无法连接", "srv-1", 3, "open")
    assert t["opened_by"] == "client1"
    assert t["clocks"]["response"]["deadline"] is not None
    shown = c.get(f"/tickets/{ticket_id}").text
    assert "打印机无法连接" in shown and "技术咨询" in shown
    # the client may not accept its own request: the actions offered are the client's alone
    assert 'data-action="accept"' not in shown
    admin, _ = login(site, "root", follow=True)
    audit = admin.get("/admin/audit").text
    assert re.search(rf"ticket\.open.*{re.escape(ticket_id)}", audit, re.S)


def test_the_client_may_not_set_a_level_and_an_engineer_may(site: Site) -> None:
    c, csrf = _form(site, "client1")
    r = c.post("/tickets/new", data={"csrf": csrf, "kind": "fault", "summary": "全楼断网", "level": "1"},
               follow_redirects=False)
    assert r.status_code == 403
    e, csrf_e = _form(site, "wang")
    assert "<select name=\"level\">" in e.get("/tickets/new").text
    for odd in ("١", "01", "4"):  # a digit of another script, a leading zero, no such level
        r = e.post("/tickets/new", data={"csrf": csrf_e, "kind": "fault", "summary": "x", "level": odd},
                   follow_redirects=False)
        assert r.status_code == 422, (odd, r.status_code)
    r = e.post("/tickets/new", data={"csrf": csrf_e, "kind": "fault", "summary": "全楼断网", "level": "1"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    ticket_id = r.headers["location"].rsplit("/", 1)[1]
    assert [t["level"] for t in site.tickets() if t["id"] == ticket_id] == [1]


def test_bad_requests_are_refused_with_what_is_wrong_and_open_nothing(site: Site) -> None:
    before = len(site.tickets())
    c, csrf = _form(site, "client1")
    cases = [({"kind": "fault", "summary": "", "level": "3"}, 422, "summary"),
             ({"kind": "fault", "summary": "x", "device": "no-such-device", "level": "3"}, 422, "unknown device"),
             ({"kind": "wish", "summary": "x", "level": "3"}, 422, "kind"),
             ({"kind": "fault", "summary": "x" * 201, "level": "3"}, 422, "summary")]
    for data, status, words in cases:
        r = c.post("/tickets/new", data={"csrf": csrf, **data}, follow_redirects=False)
        assert r.status_code == status, (data, r.status_code)
        assert words in r.text, (data, r.text[-500:])
    r = c.post("/tickets/new", data={"kind": "fault", "summary": "no csrf", "level": "3"},
               follow_redirects=False)
    assert r.status_code == 403
    assert len(site.tickets()) == before
