"""What one inspection found: per-device status and key figures, findings, config diffs, assets, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 3, major 2, minor 1, info 0."""
        return _RANK[self]


_RANK = {Severity.CRITICAL: 3, Severity.MAJOR: 2, Severity.MINOR: 1, Severity.INFO: 0}
SEVERITIES_WORST_FIRST: tuple[Severity, ...] = (Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO)


class DeviceStatus(StrEnum):
    HEALTHY = "healthy"
    FINDINGS = "findings"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Text:
    """One piece of report text in both languages."""

    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True, slots=True)
class Finding:
    """One hidden danger on one device, with the evidence that raised it and what to do about it."""

    device: str
    rule: str
    severity: Severity
    message: Text
    recommendation: Text
    metric: str | None = None
    label: str = ""
    value: Text = Text("", "")  # the evidence, formatted per language
    threshold: str = ""  # the limit it was compared with, formatted with its operator ("≥ 85")


@dataclass(frozen=True, slots=True)
class Figures:
    """Key figures of one device in this round; None means not measured."""

    reachable: bool
    rtt_ms: float | None = None
    loss_pct: float | None = None
    cpu_pct: float | None = None
    mem_pct: float | None = None
    disk_max_pct: float | None = None
    disk_max_mount: str = ""
    uptime_s: float | None = None
    if_up: int | None = None
    if_down: int | None = None
    ups_charge_pct: float | None = None
    ups_runtime_min: float | None = None
    ups_load_pct: float | None = None
    ups_on_battery: bool | None = None
    temp_max_c: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """One row of the report: the device, its status, its key figures and its worst finding."""

    name: str
    address: str
    kind: str
    category: str
    status: DeviceStatus
    figures: Figures
    worst: Severity | None
    finding_count: int


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """A configuration change seen in this round (secrets already redacted)."""

    device: str
    ts: datetime
    diff: str
    added: int | None
    removed: int | None


@dataclass(frozen=True, slots=True)
class AssetRow:
    """Asset facts of one device; ``warranty_flag`` is the severity of its warranty finding, if any."""

    device: str
    vendor: str
    model: str
    serial: str
    location: str
    warranty_end: date | None
    days_left: int | None
    warranty_flag: Severity | None
    reported: str = ""  # what the device says it is (facts: model / version / sysDescr), redacted


@dataclass(frozen=True, slots=True)
class CollectError:
    """Something that could not be collected: device, protocol and message (redacted)."""

    device: str
    protocol: str
    message: str


@dataclass(frozen=True, slots=True)
class Summary:
    checked: int
    healthy: int
    with_findings: int
    unreachable: int
    by_severity: dict[Severity, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inspection:
    """The result of one daily inspection."""

    at: datetime
    devices: list[DeviceReport]
    findings: list[Finding]
    config_diffs: list[ConfigDiff]
    assets: list[AssetRow]
    errors: list[CollectError]
    summary: Summary

    def findings_of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity is severity]
