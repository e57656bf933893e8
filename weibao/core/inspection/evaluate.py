"""Turn one round of poll results (and the previous inspection) into findings, figures and the summary.

Pure and synchronous: ``now`` is an argument and the history is only read. Every limit comes from the
loaded rules; this module only knows how each check type compares. It serves the agent's ``weibao
inspect`` (devices from the inventory, results just polled, the history file) and the collector's daily
inspection (registered devices, the latest stored samples, the day before from the stores) alike: the
inputs are the small protocols below, and the secrets to mask are passed in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from weibao.core.inspection.i18n import LANGS, Lang, duration, number, t
from weibao.core.inspection.model import (
    AssetRow,
    CollectError,
    ConfigDiff,
    DeviceReport,
    DeviceStatus,
    Figures,
    Finding,
    Inspection,
    Severity,
    Summary,
    Text,
)
from weibao.core.inspection.redact import Redactor
from weibao.core.inspection.rules import (
    OPS,
    UPTIME_METRIC,
    Check,
    EventCheck,
    IncreaseCheck,
    InspectionRules,
    ProtocolFailingCheck,
    RebootCheck,
    Template,
    ThresholdCheck,
    TransitionCheck,
    UnreachableCheck,
    WarrantyCheck,
)
from weibao.core.inspection.view import DeviceRound, by_device, label_text
from weibao.core.inventory import Category, Kind
from weibao.core.model import EventKind, PollResult
from weibao.core.model import Protocol as PollProtocol

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
# SNMP sysUpTime is TimeTicks (1/100 s, 32 bits): it wraps after ~497 days without any reboot
_UPTIME_WRAP_S = 2**32 / 100
# checks that still mean something for a device that answered nothing
_WHEN_UNREACHABLE = (UnreachableCheck, WarrantyCheck, EventCheck)

Value = str | Text  # a placeholder value, the same in both languages or one per language


class AssetLike(Protocol):
    """The asset facts a report shows."""

    @property
    def vendor(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def serial(self) -> str | None: ...
    @property
    def location(self) -> str | None: ...
    @property
    def warranty_end(self) -> date | None: ...


class DeviceLike(Protocol):
    """What the inspection needs of a device: the agent's inventory ``Device`` and the collector's
    registered devices have these."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def category(self) -> Category: ...
    @property
    def asset(self) -> AssetLike: ...


class HistoryLike(Protocol):
    """The previous inspection's view of the devices (only read)."""

    def previous(self, device: str, metric: str, key: str) -> float | None:
        """The value of one series (``label_key``) at the previous inspection."""
        ...

    def uptime(self, device: str) -> tuple[float, datetime] | None:
        """The uptime seen at the previous inspection, and when it was sampled."""
        ...


def inspect(devices: Sequence[DeviceLike], results: Sequence[PollResult], rules: InspectionRules,
            history: HistoryLike, *, now: datetime, secrets: Collection[str] = ()) -> Inspection:
    """Evaluate every check for every device of ``devices`` against this round's ``results``; every value
    of ``secrets`` is masked wherever device text shows it."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    redact = Redactor(secrets)
    rounds = by_device(results, [d.name for d in devices])
    today = now.astimezone(LOCAL_TZ).date()
    reports: list[DeviceReport] = []
    findings: list[Finding] = []
    assets: list[AssetRow] = []
    diffs: list[ConfigDiff] = []
    errors: list[CollectError] = []
    order = {c.id: i for i, c in enumerate(rules.checks)}
    for dev in devices:
        rnd = rounds[dev.name]
        reachable = rnd.reachable()
        mine: list[Finding] = []
        for check in rules.checks:
            if not check.applies_to(dev.kind) or (not reachable and not isinstance(check, _WHEN_UNREACHABLE)):
                continue
            mine.extend(_evaluate(check, dev, rnd, history, today, redact))
        findings.extend(mine)
        reports.append(_report(dev, rnd, reachable, mine))
        assets.append(_asset(dev, rnd, mine, rules, today, redact))
        diffs.extend(_diffs(rnd, redact))
        errors.extend(CollectError(e.device, e.protocol.value, redact.known(e.message)) for e in rnd.errors)
    findings.sort(key=lambda f: (-f.severity.rank, f.device, order.get(f.rule, 0), f.label))
    by_sev = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    summary = Summary(
        checked=len(reports),
        healthy=sum(1 for r in reports if r.status is DeviceStatus.HEALTHY),
        with_findings=sum(1 for r in reports if r.status is DeviceStatus.FINDINGS),
        unreachable=sum(1 for r in reports if r.status is DeviceStatus.UNREACHABLE),
        by_severity=by_sev,
    )
    return Inspection(at=now, devices=reports, findings=findings, config_diffs=diffs, assets=assets,
                      errors=errors, summary=summary)


def _render(template: Template, values: Mapping[str, Value]) -> Text:
    out: dict[Lang, str] = {}
    for lang in LANGS:
        filled = {k: (v.get(lang) if isinstance(v, Text) else v) for k, v in values.items()}
        out[lang] = getattr(template, lang).format(**filled)
    return Text(zh=out["zh"], en=out["en"])


def _finding(check: Check, dev: DeviceLike, severity: Severity, *, metric: str | None = None, label: str = "",
             value: Value = "", threshold: str = "", shown_threshold: str = "", previous: str = "",
             protocol: str = "", error: str = "") -> Finding:
    values: dict[str, Value] = {"device": dev.name, "value": value, "threshold": threshold, "label": label,
                                "previous": previous, "protocol": protocol, "error": error}
    shown = value if isinstance(value, Text) else Text(value, value)
    return Finding(device=dev.name, rule=check.id, severity=severity,
                   message=_render(check.message, values), recommendation=_render(check.recommendation, values),
                   metric=metric, label=label, value=shown, threshold=shown_threshold or threshold)


def _evaluate(check: Check, dev: DeviceLike, rnd: DeviceRound, history: HistoryLike, today: date,
              redact: Redactor) -> list[Finding]:
    if isinstance(check, ThresholdCheck):
        return _threshold(check, dev, rnd)
    if isinstance(check, IncreaseCheck):
        return _increase(check, dev, rnd, history)
    if isinstance(check, TransitionCheck):
        return _transition(check, dev, rnd, history)
    if isinstance(check, RebootCheck):
        return _rebooted(check, dev, rnd, history)
    if isinstance(check, EventCheck):
        return _event(check, dev, rnd)
    if isinstance(check, UnreachableCheck):
        return _unreachable(check, dev, rnd, redact)
    if isinstance(check, ProtocolFailingCheck):
        return _protocol_failing(check, dev, rnd, redact)
    return _warranty(check, dev, today)


def _threshold(check: ThresholdCheck, dev: DeviceLike, rnd: DeviceRound) -> list[Finding]:
    out = []
    for s in rnd.series(check.metric):
        hit = check.level_of(s.value)
        if hit is not None:
            sev, limit = hit
            out.append(_finding(check, dev, sev, metric=check.metric, label=label_text(s.labels),
                                value=number(s.value), threshold=number(limit),
                                shown_threshold=f"{OPS[check.op]} {number(limit)}"))
    return out


def _increase(check: IncreaseCheck, dev: DeviceLike, rnd: DeviceRound, history: HistoryLike) -> list[Finding]:
    out = []
    for key, s in rnd.keyed(check.metric):
        prev = history.previous(dev.name, check.metric, key)
        if prev is None:
            continue
        hit = check.level_of(s.value - prev)
        if hit is not None:
            sev, limit = hit
            out.append(_finding(check, dev, sev, metric=check.metric, label=label_text(s.labels),
                                value=number(s.value), previous=number(prev), threshold=number(limit),
                                shown_threshold=f"{number(prev)} + {number(limit)}"))
    return out


def _transition(check: TransitionCheck, dev: DeviceLike, rnd: DeviceRound, history: HistoryLike) -> list[Finding]:
    out = []
    for key, s in rnd.keyed(check.metric):
        prev = history.previous(dev.name, check.metric, key)
        if prev == check.from_ and s.value == check.to:
            out.append(_finding(check, dev, check.severity, metric=check.metric, label=label_text(s.labels),
                                value=number(s.value), previous=number(prev),
                                shown_threshold=f"{number(prev)} → {number(check.to)}"))
    return out


def _rebooted(check: RebootCheck, dev: DeviceLike, rnd: DeviceRound, history: HistoryLike) -> list[Finding]:
    cur = rnd.get(UPTIME_METRIC)
    uptime = None if cur is None else cur.value
    value = Text(zh=duration(uptime, "zh"), en=duration(uptime, "en"))
    if any(e.kind is EventKind.REBOOTED for e in rnd.events):
        return [_finding(check, dev, check.severity, metric=UPTIME_METRIC, value=value)]
    prev = history.uptime(dev.name)
    if cur is None or prev is None:
        return []
    expected = prev[0] + (cur.ts - prev[1]).total_seconds()
    if cur.value + check.tolerance_s >= expected:
        return []
    if expected >= _UPTIME_WRAP_S and abs(cur.value - expected % _UPTIME_WRAP_S) <= check.tolerance_s:
        return []  # the counter wrapped; the device kept running
    return [_finding(check, dev, check.severity, metric=UPTIME_METRIC, value=value, previous=number(prev[0]),
                     shown_threshold=f"< {number(round(expected))} s")]


def _event(check: EventCheck, dev: DeviceLike, rnd: DeviceRound) -> list[Finding]:
    out = []
    for e in rnd.events:
        if e.kind is not check.event:
            continue
        if e.kind is EventKind.CONFIG_CHANGED:
            added, removed = _count(e.data.get("added")), _count(e.data.get("removed"))
            a, r = number(added) if added is not None else "?", number(removed) if removed is not None else "?"
            value: Value = Text(zh=t("config_summary", "zh", added=a, removed=r),
                                en=t("config_summary", "en", added=a, removed=r))
        else:
            value = e.ts.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        out.append(_finding(check, dev, check.severity, value=value))
    return out


def _unreachable(check: UnreachableCheck, dev: DeviceLike, rnd: DeviceRound, redact: Redactor) -> list[Finding]:
    if rnd.reachable():
        return []
    if not rnd.latest and not rnd.errors:
        reason = Text(zh=t("no_data", "zh"), en=t("no_data", "en"))
    else:
        parts: dict[Lang, list[str]] = {"zh": [], "en": []}
        for lang in LANGS:
            if rnd.icmp_answered() is False:
                parts[lang].append(t("icmp_no_answer", lang))
            for p in (PollProtocol.SNMP, PollProtocol.SSH):
                why = rnd.failure(p)
                if why is not None:
                    parts[lang].append(f"{p.value.upper()}: {redact.known(why)}")
        reason = Text(zh="；".join(parts["zh"]) or t("no_data", "zh"), en="; ".join(parts["en"]) or t("no_data", "en"))
    return [_finding(check, dev, check.severity, value=reason)]


def _protocol_failing(check: ProtocolFailingCheck, dev: DeviceLike, rnd: DeviceRound,
                      redact: Redactor) -> list[Finding]:
    out = []
    for p in check.protocols:
        if rnd.answered(p) is False:
            why = redact.known(rnd.failure(p) or "")
            out.append(_finding(check, dev, check.severity, value=why, protocol=p.value.upper(), error=why))
    return out


def _warranty(check: WarrantyCheck, dev: DeviceLike, today: date) -> list[Finding]:
    end = dev.asset.warranty_end
    if end is None:
        return []
    days_left = (end - today).days
    if not check.matches(days_left):
        return []
    return [_finding(check, dev, check.severity, value=str(abs(days_left)), threshold=end.isoformat(),
                     shown_threshold=end.isoformat())]


def _count(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, list | tuple):
        return len(raw)
    return None


def _report(dev: DeviceLike, rnd: DeviceRound, reachable: bool, mine: list[Finding]) -> DeviceReport:
    disk = rnd.max_of("disk.util_pct")
    temps = [s.value for s in rnd.series("temp.c") + rnd.series("ups.temperature_c")]
    oper = rnd.series("if.oper_up")
    on_batt = rnd.value("ups.on_battery")
    figures = Figures(
        reachable=reachable, rtt_ms=rnd.value("icmp.rtt_ms"), loss_pct=rnd.value("icmp.loss_pct"),
        cpu_pct=rnd.value("cpu.util_pct"), mem_pct=rnd.value("mem.util_pct"),
        disk_max_pct=None if disk is None else disk.value,
        disk_max_mount="" if disk is None else label_text(disk.labels),
        uptime_s=rnd.value(UPTIME_METRIC),
        if_up=sum(1 for s in oper if s.value > 0) if oper else None,
        if_down=sum(1 for s in oper if s.value <= 0) if oper else None,
        ups_charge_pct=rnd.value("ups.battery_charge_pct"), ups_runtime_min=rnd.value("ups.runtime_min"),
        ups_load_pct=rnd.value("ups.output_load_pct"),
        ups_on_battery=None if on_batt is None else on_batt > 0,
        temp_max_c=max(temps) if temps else None,
    )
    worst = max((f.severity for f in mine), key=lambda s: s.rank, default=None)
    if not reachable:
        status = DeviceStatus.UNREACHABLE
    elif worst is not None and worst.rank > Severity.INFO.rank:
        status = DeviceStatus.FINDINGS
    else:
        status = DeviceStatus.HEALTHY
    return DeviceReport(name=dev.name, address=dev.address, kind=dev.kind.value, category=dev.category.value,
                        status=status, figures=figures, worst=worst, finding_count=len(mine))


def _asset(dev: DeviceLike, rnd: DeviceRound, mine: list[Finding], rules: InspectionRules, today: date,
           redact: Redactor) -> AssetRow:
    warranty_ids = {c.id for c in rules.checks if isinstance(c, WarrantyCheck)}
    flags = [f.severity for f in mine if f.rule in warranty_ids]
    end = dev.asset.warranty_end
    reported = [str(rnd.facts[k]) for k in ("model", "version") if rnd.facts.get(k)]
    if not reported and rnd.facts.get("sysDescr"):
        reported = [str(rnd.facts["sysDescr"])]
    text = redact.config(" / ".join(reported))
    return AssetRow(
        device=dev.name, vendor=dev.asset.vendor or "", model=dev.asset.model or "",
        serial=dev.asset.serial or "", location=dev.asset.location or "", warranty_end=end,
        days_left=None if end is None else (end - today).days,
        warranty_flag=max(flags, key=lambda s: s.rank, default=None),
        reported=text if len(text) <= 160 else text[:157] + "...",
    )


def _diffs(rnd: DeviceRound, redact: Redactor) -> list[ConfigDiff]:
    out = []
    for e in rnd.events:
        if e.kind is not EventKind.CONFIG_CHANGED:
            continue
        diff = e.data.get("diff")
        out.append(ConfigDiff(device=rnd.device, ts=e.ts, diff=redact.config(diff) if isinstance(diff, str) else "",
                              added=_count(e.data.get("added")), removed=_count(e.data.get("removed"))))
    return out
