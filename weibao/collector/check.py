"""``weibao collector --check``: validate every file the collector loads at start, without starting it.

Like ``nginx -t``: the collector configuration, the TLS certificate, key and client CA (readable, the key
matching the certificate, not expired; a warning within 30 days of expiry), the notification config with
every channel, the working-calendar files, the contract (and inspection) rules and the maintenance
windows are loaded with the same loaders the collector uses, and every problem is collected, not only
the first. Nothing is
created, migrated, connected to or listened on: whether a database or a server accepts the settings can
only be known when the collector starts.

Relative paths in the configuration are read from the working directory, as the collector reads them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from weibao.collector.config import CollectorConfig, ContractConfig, load_config
from weibao.collector.notify.config import NotifyConfig
from weibao.collector.state.db import state_url
from weibao.collector.tls import check_tls_files
from weibao.core.errors import ConfigError, Problem
from weibao.core.text import printable
from weibao.core.yamlsrc import Located, load_yaml

T = TypeVar("T")

COMMAND_LINE = "<command line>"
# values under these keys are never echoed, whatever a loader's message says
_SECRET_KEYS = frozenset({"password", "token", "secret", "url", "state_url", "headers"})


@dataclass
class CheckReport:
    """What ``check_collector`` found: every problem, warnings (a certificate expiring soon), and what was
    checked (for the summary line)."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    warnings: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One ``file:line: key: message`` line per problem, with every known secret value masked."""
        return self._masked(self.problems)

    def warning_lines(self) -> list[str]:
        return self._masked(self.warnings)

    def _masked(self, problems: list[Problem]) -> list[str]:
        masks = sorted((s for s in self.secrets if len(s) >= 3), key=len, reverse=True)
        out = []
        for p in problems:
            text = printable(p)
            for s in masks:
                text = text.replace(s, "***")
            out.append(text)
        return out


def _attempt(report: CheckReport, path: Path, load: Callable[[], T]) -> T | None:
    """Run one loader; its problems go to the report (None then), its result comes back otherwise."""
    try:
        return load()
    except ConfigError as exc:
        report.problems.extend(exc.problems)
    except ValueError as exc:  # a loader's own refusal without a line
        report.problems.append(Problem(str(path), None, "", f"invalid: {exc}"))
    return None


def _secret_values(data: Any, under_secret: bool = False) -> Iterable[str]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _secret_values(v, under_secret or str(k) in _SECRET_KEYS)
    elif isinstance(data, list):
        for v in data:
            yield from _secret_values(v, under_secret)
    elif under_secret and isinstance(data, str):
        yield data


class _Where:
    """Locates keys of the collector configuration (its file and lines), or the command line without one."""

    def __init__(self, src: Located | None) -> None:
        self.src = src

    def problem(self, keys: tuple[str | int, ...], message: str) -> Problem:
        if self.src is None:
            return Problem(COMMAND_LINE, None, ".".join(map(str, keys)), message)
        return self.src.problem(keys, message)


def _missing(path: Path) -> str:
    hint = f" (relative to the working directory {Path.cwd()})" if not path.is_absolute() else ""
    return f"{path}: no such file{hint}"


def _writable_dir(where: _Where, keys: tuple[str | int, ...], directory: Path, what: str) -> Problem | None:
    """Whether ``directory`` is, or could be created as, a directory we can write to (nothing is created)."""
    if directory.exists():
        if not directory.is_dir():
            return where.problem(keys, f"{what} {directory} exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            return where.problem(keys, f"{what} {directory} is not writable")
        return None
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return where.problem(keys, f"{what} {directory} cannot be created: {parent} is not a writable directory")
    return None


def _check_storage(report: CheckReport, cfg: CollectorConfig, where: _Where, env: Mapping[str, str]) -> None:
    """Data directory, state URL and time-series settings: syntax and paths only, no connection."""
    found = [_writable_dir(where, ("data_dir",), cfg.data_dir, "data directory")]
    if cfg.state_url is not None:
        try:
            url = state_url(cfg.state_url)
        except ArgumentError:
            # the URL may hold a password: the message never repeats it
            found.append(where.problem(("state_url",), "not an SQLAlchemy URL (sqlite:///PATH or postgresql://...)"))
        else:
            if url.password is not None:
                report.secrets.add(str(url.password))
            if url.get_backend_name() not in ("sqlite", "postgresql"):
                found.append(where.problem(("state_url",), f"database {url.get_backend_name()!r} is not "
                                           "supported (sqlite or postgresql)"))
            else:
                try:
                    url.get_dialect().import_dbapi()
                except NoSuchModuleError:
                    found.append(where.problem(("state_url",), f"unknown driver {url.drivername!r}"))
                except ImportError as exc:
                    found.append(where.problem(("state_url",), f"driver {url.drivername!r} needs the Python "
                                               f"module {exc.name or '?'}, which is not installed"))
                if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                    found.append(_writable_dir(where, ("state_url",), Path(str(url.database)).parent,
                                               "state database directory"))
    tsdb = cfg.tsdb
    if tsdb.backend == "sqlite" and tsdb.path is not None:
        found.append(_writable_dir(where, ("tsdb", "path"), tsdb.path.parent, "sample database directory"))
    if tsdb.backend == "influxdb" and tsdb.influxdb is not None:
        influx = tsdb.influxdb
        parts = urlsplit(influx.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            found.append(where.problem(("tsdb", "influxdb", "url"), "must be http://HOST:PORT or https://..."))
        if influx.token is not None:
            report.secrets.add(influx.token.get_secret_value())
        if influx.token_env and influx.token_env not in env:
            found.append(where.problem(("tsdb", "influxdb", "token_env"),
                                       f"environment variable {influx.token_env} is not set"))
    report.problems.extend(p for p in found if p is not None)


def _check_tls(report: CheckReport, cfg: CollectorConfig, where: _Where) -> None:
    """The certificate files: readable, the key matching the certificate, in their validity period (a
    warning within 30 days of the end), the key not readable by anyone."""
    if cfg.tls is None:
        return
    found = check_tls_files(cfg.tls)
    keys: dict[str, tuple[str | int, ...]] = {"tls": ("tls",), "tls.cert_file": ("tls", "cert_file"),
                                              "tls.key_file": ("tls", "key_file"),
                                              "tls.client_ca_file": ("tls", "client_ca_file")}
    report.problems += [where.problem(keys[k], m) for k, m in found.problems]
    report.warnings += [where.problem(keys[k], m) for k, m in found.warnings]
    report.checked.append("TLS certificate and key" + (" and client CA" if cfg.tls.client_ca_file else ""))


def _load_collector_config(report: CheckReport, path: Path | None, *, data_dir: Path | None,
                           listen: str | None, workers: int | None,
                           tls: dict[str, Path] | None = None) -> tuple[CollectorConfig | None,
                                                                        ContractConfig | None, _Where]:
    src = _attempt(report, path, lambda: load_yaml(path)) if path is not None else None
    if path is not None and src is None:
        return None, None, _Where(None)
    where = _Where(src)
    if src is not None:
        report.secrets.update(_secret_values(src.data))
    before = len(report.problems)
    cfg = _attempt(report, path or Path(COMMAND_LINE),
                   lambda: load_config(path, data_dir=data_dir, listen=listen, tls=tls))
    if cfg is not None and workers is not None:
        try:  # as run_collector does, then validated again: contract.enabled refuses several workers
            cfg = CollectorConfig.model_validate({**cfg.model_dump(), "workers": max(1, workers)})
        except ValidationError as exc:
            report.problems += [Problem(COMMAND_LINE, None, "--workers", e["msg"].removeprefix("Value error, "))
                                for e in exc.errors(include_url=False)]
            cfg = None
    if cfg is not None:
        return cfg, cfg.contract, where
    # the file is invalid elsewhere: its contract section still names the files to check
    raw = src.data if src is not None and isinstance(src.data, dict) else {}
    try:
        contract = ContractConfig.model_validate(raw.get("contract") or {})
    except ValidationError:
        contract = None  # already reported by load_config, with lines
    if len(report.problems) == before:
        report.problems.append(where.problem((), "invalid configuration"))
    return None, contract, where


def _check_contract_files(report: CheckReport, contract: ContractConfig, where: _Where,
                          env: Mapping[str, str]) -> NotifyConfig | None:
    """Every file the contract section names; returns the notify configuration when it loaded."""
    from weibao.collector.contract import load_calendar, load_contract_rules
    from weibao.collector.engine.setup import find_rules, load_maintenance_file
    from weibao.collector.notify.config import load_notify_config
    from weibao.core.inspection.rules import load_inspection_rules

    rules_path: Path | None = None
    if contract.rules is not None and not contract.rules.is_file():
        report.problems.append(where.problem(("contract", "rules"), _missing(contract.rules)))
    else:
        try:
            rules_path = find_rules(contract.rules, "contract.yaml")
        except ConfigError as exc:
            report.problems += [where.problem(("contract", "rules"), p.message) for p in exc.problems]
    if rules_path is not None:
        _attempt(report, rules_path, lambda: load_contract_rules(rules_path))

    _attempt(report, Path("<shipped calendar>"), lambda: load_calendar())
    site_ok = True
    for i, cal in enumerate(contract.calendar):
        if not cal.is_file():
            report.problems.append(where.problem(("contract", "calendar", i), _missing(cal)))
            site_ok = False
        elif _attempt(report, cal, partial(load_calendar, cal, base=None)) is None:
            site_ok = False
    calendar = None
    if site_ok and contract.calendar:  # later files override earlier ones: the whole stack must hold too
        calendar = _attempt(report, contract.calendar[-1], lambda: load_calendar(*contract.calendar))

    notify: NotifyConfig | None = None
    if contract.notify is not None:
        notify_path = contract.notify
        if not notify_path.is_file():
            report.problems.append(where.problem(("contract", "notify"), _missing(notify_path)))
        else:
            nsrc = _attempt(report, notify_path, lambda: load_yaml(notify_path))
            if nsrc is not None:
                report.secrets.update(_secret_values(nsrc.data))
            notify = _attempt(report, notify_path, lambda: load_notify_config(notify_path, env=env))
            if notify is not None and nsrc is not None:
                for name, channel in notify.channels.items():
                    if channel.ca_file is not None and channel.verify_tls:
                        try:  # exactly what the sender does with it, minus the connection
                            ssl.create_default_context(cafile=str(channel.ca_file))
                        except (OSError, ssl.SSLError) as exc:
                            report.problems.append(nsrc.problem(
                                ("channels", name, "ca_file"),
                                f"cannot load CA file {channel.ca_file}: {getattr(exc, 'strerror', None) or exc}"))

    if calendar is not None and (contract.notify is None or notify is not None):
        channels = notify.channels if notify is not None else {}
        for period in calendar.protection:
            for ch in period.notify:
                if ch not in channels:
                    report.problems.append(Problem(str(contract.calendar[-1]), None,
                                                   f"protection_periods.{period.name}.notify.{ch}",
                                                   f"no channel {ch!r} in the notify config"))

    if contract.maintenance is not None:
        mpath = contract.maintenance
        if not mpath.is_file():
            report.problems.append(where.problem(("contract", "maintenance"), _missing(mpath)))
        else:
            _attempt(report, mpath, lambda: load_maintenance_file(mpath))

    insp = contract.inspection_rules
    if insp is None and rules_path is not None and (rules_path.parent / "inspection.yaml").is_file():
        insp = rules_path.parent / "inspection.yaml"
    if insp is not None:
        insp_path = insp
        if not insp_path.exists():
            report.problems.append(where.problem(("contract", "inspection_rules"), _missing(insp_path)))
        else:
            _attempt(report, insp_path, lambda: load_inspection_rules(insp_path))

    n = len(contract.calendar)
    report.checked += [str(contract.notify)] if contract.notify is not None else []
    report.checked.append(f"{n} calendar file{'' if n == 1 else 's'}")
    report.checked += [str(p) for p in (rules_path, insp, contract.maintenance) if p is not None]
    return notify


def _check_reports(report: CheckReport, cfg: CollectorConfig, where: _Where, notify: NotifyConfig | None) -> None:
    """``reports.channel`` must name an e-mail channel of the notify configuration."""
    from weibao.collector.notify.config import EmailChannel

    name = cfg.reports.channel
    if name is None:
        return
    if cfg.contract.notify is None:
        report.problems.append(where.problem(("reports", "channel"), f"names channel {name!r}, but contract.notify "
                                             "(the file with the channels) is not set"))
    elif notify is not None and not isinstance(notify.channels.get(name), EmailChannel):
        found = ", ".join(n for n, c in notify.channels.items() if isinstance(c, EmailChannel)) or "none"
        report.problems.append(where.problem(("reports", "channel"), f"{name!r} is not an e-mail channel of "
                                             f"{cfg.contract.notify} (e-mail channels: {found})"))


def check_collector(config: Path | None, *, data_dir: Path | None = None, listen: str | None = None,
                    workers: int | None = None, env: Mapping[str, str] | None = None,
                    tls: dict[str, Path] | None = None) -> CheckReport:
    """Load and validate what ``weibao collector`` would load with these arguments; never raises ConfigError."""
    env = os.environ if env is None else env
    report = CheckReport()
    report.checked.append(str(config) if config is not None else "built-in defaults")
    cfg, contract, where = _load_collector_config(report, config, data_dir=data_dir, listen=listen,
                                                  workers=workers, tls=tls)
    if cfg is not None:
        _check_storage(report, cfg, where, env)
        _check_tls(report, cfg, where)
    notify = _check_contract_files(report, contract, where, env) if contract is not None else None
    if cfg is not None:
        _check_reports(report, cfg, where, notify)
    return report
