"""Linux servers over SSH: one shell script per round, parsed into uptime, load, memory, disks, systemd."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from weibao.agent.errors import ProtocolFailure

# one round trip: every section is introduced by a marker line the parser splits on
SCRIPT = (
    "LC_ALL=C; export LC_ALL; "
    "echo '@@uname'; uname -snrm; "
    "echo '@@uptime'; cat /proc/uptime; "
    "echo '@@loadavg'; cat /proc/loadavg; "
    "echo '@@meminfo'; cat /proc/meminfo; "
    "echo '@@df'; df -P -k -T 2>/dev/null || df -P -k; "
    "echo '@@systemd'; "
    "if command -v systemctl >/dev/null 2>&1; then "
    "systemctl list-units --state=failed --plain --no-legend --no-pager 2>&1; echo \"@@rc $?\"; "
    "else echo '@@absent'; fi"
)

# pseudo and layered file systems whose fullness says nothing about the server's disks
SKIPPED_FS = frozenset({"tmpfs", "devtmpfs", "overlay", "squashfs", "ramfs", "proc", "sysfs", "devpts", "none"})
_UNIT = re.compile(r"^\S+\.(service|socket|mount|timer|target|path|device|scope|slice|swap|automount)$")


@dataclass(frozen=True, slots=True)
class Disk:
    mount: str
    fs_type: str
    used_kb: int
    avail_kb: int

    @property
    def util_pct(self) -> float:
        total = self.used_kb + self.avail_kb
        return 100.0 * self.used_kb / total if total else 0.0


@dataclass(frozen=True, slots=True)
class ServerReport:
    uname: str
    uptime_s: float
    load: tuple[float, float, float]
    mem_total_kb: int
    mem_available_kb: int
    disks: list[Disk]
    # None: systemd is absent or not running, so there is nothing to report
    failed_units: list[str] | None = field(default=None)

    @property
    def mem_util_pct(self) -> float:
        return 100.0 * (self.mem_total_kb - self.mem_available_kb) / self.mem_total_kb


def split_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.replace("\r", "").splitlines():
        if raw.startswith("@@") and " " not in raw and raw[2:] not in ("absent",):
            current = sections.setdefault(raw[2:], [])
            continue
        if current is not None:
            current.append(raw)
    return sections


def parse_meminfo(lines: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def parse_df(lines: list[str]) -> list[Disk]:
    rows = [ln.split() for ln in lines if ln.strip()]
    if not rows:
        return []
    typed = len(rows[0]) > 1 and rows[0][1] == "Type"
    disks: list[Disk] = []
    for row in rows[1:]:
        # a mount point with spaces keeps its tail; the fixed columns come first
        need = 7 if typed else 6
        if len(row) < need:
            continue
        fs = row[0]
        fs_type = row[1] if typed else ""
        nums = row[2:5] if typed else row[1:4]
        mount = " ".join(row[need - 1 :])
        if (fs_type or fs) in SKIPPED_FS or fs in SKIPPED_FS:
            continue
        try:
            _total, used, avail = (int(n) for n in nums)
        except ValueError:
            continue
        disks.append(Disk(mount=mount, fs_type=fs_type, used_kb=used, avail_kb=avail))
    return disks


def parse_systemd(lines: list[str]) -> list[str] | None:
    rc = next((ln for ln in lines if ln.startswith("@@rc ")), None)
    if any(ln.strip() == "@@absent" for ln in lines) or rc is None or rc.split()[1] != "0":
        # systemctl missing, or present without systemd as init: nothing to say about units
        return None
    units: list[str] = []
    for line in lines:
        parts = line.split()
        if parts and _UNIT.match(parts[0].lstrip("●* ")):
            units.append(parts[0].lstrip("●* "))
    return units


def parse_report(text: str) -> ServerReport:
    """Parse the output of ``SCRIPT``; raises ProtocolFailure when a required section is unusable."""
    # some shells and netmiko's linux driver start the output with a blank line
    sections = split_sections(text.lstrip("\r\n"))
    try:
        uptime_s = float(sections["uptime"][0].split()[0])
        load_fields = sections["loadavg"][0].split()
        load = (float(load_fields[0]), float(load_fields[1]), float(load_fields[2]))
        mem = parse_meminfo(sections["meminfo"])
        total = mem["MemTotal"]
        available = mem.get("MemAvailable", mem.get("MemFree", 0) + mem.get("Cached", 0))
    except (KeyError, IndexError, ValueError) as exc:
        raise ProtocolFailure(f"unexpected server report ({type(exc).__name__}: {exc})") from exc
    if total <= 0:
        raise ProtocolFailure("MemTotal is zero")
    uname = " ".join(sections.get("uname", [""])[:1]).strip()
    return ServerReport(
        uname=uname,
        uptime_s=uptime_s,
        load=load,
        mem_total_kb=total,
        mem_available_kb=available,
        disks=parse_df(sections.get("df", [])),
        failed_units=parse_systemd(sections.get("systemd", [])),
    )
