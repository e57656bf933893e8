"""Network devices over SSH (netmiko): commands per platform and parsers for version and interfaces.

Parsing uses the installed ntc-templates where one exists for the platform and command (Huawei VRP
``display version`` / ``display interface brief``, Cisco IOS ``show version`` / ``show ip interface
brief``, Comware ``display interface brief``), else a small regular expression parser.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Platform:
    """How to talk to one netmiko device type."""

    device_type: str
    ntc_platform: str | None
    version: str
    interfaces: str
    config: str
    needs_enable: bool = False


_HUAWEI = ("display version", "display interface brief", "display current-configuration")
_CISCO = ("show version", "show ip interface brief", "show running-config")

PLATFORMS: dict[str, Platform] = {
    "huawei": Platform("huawei", "huawei_vrp", *_HUAWEI),
    "huawei_vrpv8": Platform("huawei_vrpv8", "huawei_vrp", *_HUAWEI),
    "hp_comware": Platform("hp_comware", "hp_comware", *_HUAWEI),
    "cisco_ios": Platform("cisco_ios", "cisco_ios", *_CISCO, needs_enable=True),
    "cisco_xe": Platform("cisco_xe", "cisco_ios", *_CISCO, needs_enable=True),
    "ruijie_os": Platform("ruijie_os", None, "show version", "show interfaces status", "show running-config",
                          needs_enable=True),
}


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    oper_up: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Version:
    model: str | None
    software: str | None
    uptime_s: float | None
    hostname: str | None = None
    serial: str | None = None


_UNITS = {"year": 365 * 86400, "week": 7 * 86400, "day": 86400, "hour": 3600, "minute": 60, "second": 1}


def parse_uptime(text: str) -> float | None:
    """'12 weeks, 3 days, 4 hours, 21 minutes' -> seconds; None when nothing is recognised."""
    total = 0
    found = False
    for n, unit in re.findall(r"(\d+)\s+(year|week|day|hour|minute|second)s?", text):
        total += int(n) * _UNITS[unit]
        found = True
    return float(total) if found else None


def _clean(text: str) -> str:
    # netmiko output may start with a blank line, which ends some templates at once
    return text.replace("\r", "").strip("\n") + "\n"


def _ntc(platform: Platform, command: str, text: str) -> list[dict[str, Any]] | None:
    if platform.ntc_platform is None:
        return None
    from ntc_templates.parse import parse_output  # import is slow (index); only when parsing

    try:
        rows = parse_output(platform=platform.ntc_platform, command=command, data=_clean(text))
    except Exception as exc:  # no template, or the template rejects this output: fall back to regexes
        log.debug("ntc-templates cannot parse %r for %s: %s", command, platform.device_type, exc)
        return None
    return rows if isinstance(rows, list) and rows else None


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() or None if value is not None else None


def parse_version(platform: Platform, text: str) -> Version:
    rows = _ntc(platform, platform.version, text)
    if rows:
        row = rows[0]
        if platform.ntc_platform == "huawei_vrp":
            software = " ".join(x for x in (row.get("vrp_version"), f"({row.get('product_version')})") if x)
            return Version(_first(row.get("model")), software, parse_uptime(row.get("uptime", "")))
        if platform.ntc_platform == "cisco_ios":
            return Version(
                model=_first(row.get("hardware")),
                software=_first(row.get("version")),
                uptime_s=parse_uptime(row.get("uptime", "")),
                hostname=_first(row.get("hostname")),
                serial=_first(row.get("serial")),
            )
    return _regex_version(text)


def _regex_version(text: str) -> Version:
    text = text.replace("\r", "")
    model = software = None
    uptime_s = None
    m = re.search(r"^(?:HUAWEI|Huawei|Quidway|H3C|HPE?|Ruijie|cisco)\s+(\S+).*?uptime is (.+)$", text, re.M)
    if m:
        model, uptime_s = m.group(1), parse_uptime(m.group(2))
    m = re.search(r"(?:Comware|VRP \(R\)) [Ss]oftware,\s*Version\s+(.+)$", text, re.M) or re.search(
        r"^System software version\s*:\s*(.+)$", text, re.M
    ) or re.search(r"Version\s+([^,\s]+)", text)
    if m:
        software = m.group(1).strip()
    if model is None:
        m = re.search(r"^(?:System description|Device model)\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else None
    if uptime_s is None:
        m = re.search(r"uptime is (.+)$", text, re.M)
        uptime_s = parse_uptime(m.group(1)) if m else None
    return Version(model, software, uptime_s)


def _is_up(value: Any) -> bool:
    return str(value).strip().lower().startswith("up")


def parse_interfaces(platform: Platform, text: str) -> list[Interface]:
    """Interfaces and whether each is operationally up (link up, and line protocol up where shown)."""
    rows = _ntc(platform, platform.interfaces, text)
    out: list[Interface] = []
    if rows and platform.ntc_platform == "huawei_vrp":
        for r in rows:
            up = _is_up(r["phy"]) and _is_up(r["protocol"])
            out.append(Interface(r["interface"], up, f"{r['phy']}/{r['protocol']}"))
        return out
    if rows and platform.ntc_platform == "cisco_ios":
        for r in rows:
            up = r["status"] == "up" and r["proto"] == "up"
            out.append(Interface(r["interface"], up, f"{r['status']}/{r['proto']}"))
        return out
    if rows and platform.ntc_platform == "hp_comware":
        for r in rows:
            proto = r.get("protocol") or ""
            up = _is_up(r["link"]) and (not proto or _is_up(proto))
            out.append(Interface(r["interface"], up, "/".join(x for x in (r["link"], proto) if x)))
        return out
    return _regex_interfaces(text)


_IF_ROW = re.compile(
    r"^(?P<name>[A-Za-z][\w\-./:]*(?: \d+(?:/\d+)*)?)\s+"
    r"(?P<link>\*?down|\^?down|up(?:\(\w+\))?|UP|DOWN|ADM|administratively down|connected|notconnect|disabled)"
    r"(?:\s+(?P<proto>up|down|UP|DOWN)\b)?",
)


def _regex_interfaces(text: str) -> list[Interface]:
    out: list[Interface] = []
    for line in text.replace("\r", "").splitlines():
        m = _IF_ROW.match(line.strip())
        if not m or m.group("name").lower() in ("interface", "port"):
            continue
        link = m.group("link")
        proto = m.group("proto")
        up = link.lower().startswith("up") or link == "connected"
        if proto is not None:
            up = up and proto.lower() == "up"
        out.append(Interface(m.group("name"), up, "/".join(x for x in (link, proto) if x)))
    return out
