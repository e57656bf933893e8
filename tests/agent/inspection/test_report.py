"""The HTML report: self-contained, both languages, escaped device text, and never a credential."""

from __future__ import annotations

import re
import stat
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.agent.inspection.factory import (
    RULES_FILE,
    SECRETS,
    T0,
    config_changed,
    devices,
    failed,
    icmp_dead,
    icmp_ok,
    sample,
    snmp,
)
from weibao.agent.inspection import History, Inspection, inspect, load_inspection_rules, render_html, write_report
from weibao.agent.inventory import Device
from weibao.core.model import PollError, PollResult, Protocol

SITE = "测试单位 <机房>"
COMMUNITY = SECRETS["WB_TEST_COMMUNITY"]
SSH_PASSWORD = SECRETS["WB_TEST_SSH_PASSWORD"]
# a device's running configuration holds its own secrets, some of which the inventory never knew
DIFF = (
    "--- running-config (before)\n"
    "+++ running-config (after)\n"
    "@@ -3,3 +3,4 @@\n"
    " interface GigabitEthernet0/1\n"
    "- description <old uplink>\n"
    "+ description <script>alert('x')</script> & more\n"
    f"+snmp-server community {COMMUNITY} RO\n"
    "+username admin privilege 15 secret 5 $1$unknownHashValue\n"
)


class Collect(HTMLParser):
    """Every tag and attribute of the document, to check it loads nothing from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def devs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Device]:
    today = T0.astimezone(ZoneInfo("Asia/Shanghai")).date()
    return devices(tmp_path_factory.mktemp("inv"), warranty_sw=(today + timedelta(days=30)).isoformat(),
                   warranty_srv=(today - timedelta(days=10)).isoformat())


@pytest.fixture(scope="module")
def inspection(devs: dict[str, Device]) -> Inspection:
    rules = load_inspection_rules(RULES_FILE)
    results = [
        icmp_ok("core-sw-1", rtt=3.2),
        snmp("core-sw-1", [sample("core-sw-1", "cpu.util_pct", 85), sample("core-sw-1", "mem.util_pct", 40),
                           sample("core-sw-1", "if.oper_up", 1, ifName="Gi0/1")],
             facts={"sysDescr": f"Huawei VRP community {COMMUNITY}", "sysName": "core-sw-1"},
             events=[config_changed("core-sw-1", DIFF, added=3, removed=1)]),
        icmp_ok("srv-1"),
        snmp("srv-1", [sample("srv-1", "disk.util_pct", 96, mount="/var/log"), sample("srv-1", "cpu.util_pct", 5)]),
        # a poller that slipped a secret into its message must not carry it into the report
        PollResult("srv-1", Protocol.SSH, errors=[PollError("srv-1", Protocol.SSH,
                                                            f"login refused for weibao/{SSH_PASSWORD}")]),
        icmp_dead("ups-1"), failed("ups-1", Protocol.SNMP, "no response from 127.0.0.3:161 <timeout>"),
    ]
    return inspect(list(devs.values()), results, rules, History.empty(), now=T0 + timedelta(minutes=3))


@pytest.fixture(scope="module", params=["zh", "en"])
def html(request: pytest.FixtureRequest, inspection: Inspection) -> str:
    return render_html(inspection, lang=request.param, site=SITE)


def test_no_credential_anywhere(html: str) -> None:
    for secret in SECRETS.values():
        assert secret not in html
    assert "unknownHashValue" not in html
    assert "******" in html


def test_self_contained_and_well_formed(html: str) -> None:
    parser = Collect()
    parser.feed(html)
    tags = {t for t, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "style" in tags
    for _, attrs in parser.tags:
        assert "src" not in attrs and "href" not in attrs
    assert not re.search(r"https?://|@import|url\(", html)
    assert "@page" in html and "A4" in html


def test_device_text_is_escaped(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
    assert "测试单位 &lt;机房&gt;" in html


def test_diff_lines_are_coloured(html: str) -> None:
    assert '<span class="add">+ description &lt;script&gt;' in html
    assert '<span class="del">- description &lt;old uplink&gt;</span>' in html
    assert '<span class="hunk">@@ -3,3 +3,4 @@</span>' in html


def test_chinese_report(inspection: Inspection) -> None:
    html = render_html(inspection, site=SITE)
    assert '<html lang="zh-CN">' in html
    for text in ("设备日常巡检报告", "巡检人", "weibao", "2026-11-25 09:03", "存在隐患", "处理建议", "资产与维保",
                 "未能采集的项目", "即将到期", "已过期", "磁盘 /var/log 使用率 96%"):
        assert text in html, text


def test_english_report(inspection: Inspection) -> None:
    html = render_html(inspection, lang="en", site=SITE)
    assert '<html lang="en">' in html
    for text in ("Daily Equipment Inspection Report", "Inspector", "2026-11-25 09:03", "With findings",
                 "Recommendation", "Assets and warranty", "What could not be collected", "ending soon", "expired",
                 "disk /var/log is 96% full"):
        assert text in html, text
    assert "设备日常巡检报告" not in html
    assert "+3/-1 lines" in html and "ICMP 100% loss" in html
    assert "：" not in html and "行" not in html


def test_summary_and_sections(inspection: Inspection) -> None:
    s = inspection.summary
    assert (s.checked, s.healthy, s.with_findings, s.unreachable) == (3, 0, 2, 1)
    html = render_html(inspection, lang="en", site=SITE)
    # the findings section lists critical before major before minor
    heads = [html.index(f'<h3><span class="sev {s}">') for s in ("critical", "major", "minor")]
    assert heads == sorted(heads)
    assert "no response from 127.0.0.3:161 &lt;timeout&gt;" in html
    assert 'style="width: 85%"' in html and 'style="width: 96%"' in html


def test_unknown_language_is_refused(inspection: Inspection) -> None:
    with pytest.raises(ValueError, match="lang"):
        render_html(inspection, lang="fr", site=SITE)  # type: ignore[arg-type]


def test_write_report_names_and_modes(tmp_path: Path, inspection: Inspection) -> None:
    out = tmp_path / "reports"
    zh = write_report(inspection, out, "zh", SITE)
    en = write_report(inspection, out, "en", SITE)
    assert (zh.name, en.name) == ("inspection-2026-11-25.html", "inspection-2026-11-25.en.html")
    for path in (zh, en, out / "latest.html", out / "latest.en.html"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert (out / "latest.html").read_text(encoding="utf-8") == zh.read_text(encoding="utf-8")
    assert "设备日常巡检报告" in zh.read_text(encoding="utf-8")
    assert not list(out.glob(".report-*"))
