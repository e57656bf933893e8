"""The collector's configuration file (YAML, strict): where it listens, where it keeps data, its limits."""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from weibao.core.errors import ConfigError, Problem
from weibao.core.yamlsrc import load_yaml, pydantic_problems

DEFAULT_LISTEN = "127.0.0.1:8470"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InfluxConfig(_Strict):
    """An InfluxDB 2/3 or VictoriaMetrics server that accepts ``/api/v2/write``."""

    url: str
    org: str = "weibao"
    bucket: str = "weibao"
    token: SecretStr | None = None
    token_env: str | None = Field(None, description="read the token from this environment variable")
    timeout_s: float = Field(10.0, gt=0, le=300)
    precision: Literal["ms", "ns"] = "ms"

    def token_value(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_env:
            return os.environ.get(self.token_env, "")
        return ""


class TsdbConfig(_Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    # sqlite: the file for raw samples; default: the state database itself when that is SQLite (one
    # transaction covers samples, rollups and the batch id), else DATA/samples.db
    path: Path | None = None
    influxdb: InfluxConfig | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> TsdbConfig:
        if self.backend == "influxdb" and self.influxdb is None:
            raise ValueError("backend 'influxdb' needs an 'influxdb' section (url, org, bucket, token)")
        return self


class RetentionConfig(_Strict):
    raw_days: float = Field(30, gt=0)
    rollup_300_days: float = Field(400, gt=0)
    rollup_3600_days: float = Field(3 * 366, gt=0)
    prune_interval_s: float = Field(3600, ge=1)


class LimitsConfig(_Strict):
    max_batch_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_batch_samples: int = Field(200_000, ge=1)
    max_batch_events: int = Field(20_000, ge=1)


class ContractConfig(_Strict):
    """The contract engine: fault rules, working calendar, notifications, maintenance windows, timers."""

    # None: on when the collector runs one worker process; true with several workers is refused
    enabled: bool | None = None
    # rules/contract.yaml; default: $WEIBAO_RULES/contract.yaml, ./rules/contract.yaml, the installed copy
    rules: Path | None = None
    # inspection.yaml for hidden dangers that persist; default: beside the contract rules, if present
    inspection_rules: Path | None = None
    calendar: list[Path] = Field(default_factory=list, description="site calendar files, applied in order")
    notify: Path | None = None
    maintenance: Path | None = None
    sweep_interval_s: float = Field(15.0, ge=0.1, le=3600)
    queue_max_batches: int = Field(1000, ge=1, le=1_000_000)
    # restart recovery: raw samples for the newest hours, 5-minute rollups for the rest of the month
    replay_raw_hours: float = Field(6.0, ge=0, le=24 * 31)
    # event time further behind the wall clock than this: the engine's clock follows event time
    live_horizon_s: float = Field(3600.0, gt=0)


ReportJob = Literal["daily", "weekly", "monthly", "quarterly", "annual", "fault"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ReportFormat = Literal["html", "pdf", "xlsx", "json"]
_ALL_JOBS: tuple[ReportJob, ...] = ("daily", "weekly", "monthly", "quarterly", "annual", "fault")
_ALL_FORMATS: tuple[ReportFormat, ...] = ("html", "pdf", "xlsx", "json")


class ReportsConfig(_Strict):
    """Scheduled reports (contract time, Asia/Shanghai), run where the contract engine runs, and mailed."""

    enabled: bool = True
    jobs: list[ReportJob] = Field(default_factory=lambda: list(_ALL_JOBS))
    daily_at: time = time(8, 0)  # the daily inspection, from the stored data
    weekly_day: Weekday = "fri"  # the running week's report (Monday-Sunday)
    weekly_at: time = time(17, 0)
    # monthly, quarterly and annual reports of the period just ended, on the first day after it
    periodic_at: time = time(8, 0)
    lang: Literal["zh", "en"] = "zh"
    formats: list[ReportFormat] = Field(default_factory=lambda: list(_ALL_FORMATS), min_length=1)
    # the e-mail channel of the notify config that sends them, and to whom (default: the channel's list)
    channel: str | None = None
    to: list[str] = Field(default_factory=list)
    retry_s: float = Field(300.0, ge=1, le=86400)
    max_attempts: int = Field(12, ge=1, le=1000)
    # after a restart, runs missed up to this long ago are made up
    catch_up_days: int = Field(40, ge=0, le=400)
    check_interval_s: float = Field(30.0, ge=0.1, le=3600)


class CollectorConfig(_Strict):
    listen: str = DEFAULT_LISTEN
    # uvicorn worker processes: parsing runs on every core, SQLite writes take turns (a file lock)
    workers: int = Field(1, ge=1, le=16)
    data_dir: Path = Path("weibao-data")
    # SQLAlchemy URL; default sqlite under data_dir. postgresql://user@/db?host=/run/postgresql works too.
    state_url: str | None = None
    tsdb: TsdbConfig = TsdbConfig()
    retention: RetentionConfig = RetentionConfig()
    limits: LimitsConfig = LimitsConfig()
    contract: ContractConfig = ContractConfig()
    reports: ReportsConfig = ReportsConfig()

    @model_validator(mode="after")
    def _contract_workers(self) -> CollectorConfig:
        if self.contract.enabled is True and self.workers > 1:
            raise ValueError("contract.enabled needs workers: 1 (the rules see every batch only in one "
                             "process); set workers: 1 or leave contract.enabled unset")
        return self

    @property
    def contract_enabled(self) -> bool:
        return self.workers == 1 if self.contract.enabled is None else self.contract.enabled

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.db"

    def resolved_state_url(self) -> str:
        return self.state_url or f"sqlite:///{self.state_path.resolve()}"

    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def load_config(path: Path | None, *, data_dir: Path | None = None, listen: str | None = None) -> CollectorConfig:
    """The configuration from ``path`` (or defaults), with command-line values winning over the file."""
    data: dict[str, object] = {}
    src = None
    if path is not None:
        src = load_yaml(path)
        if not isinstance(src.data, dict):
            raise ConfigError([Problem(str(path), 1, "", "the configuration must be a mapping")])
        data = dict(src.data)
    if data_dir is not None:
        data["data_dir"] = str(data_dir)
    if listen is not None:
        data["listen"] = listen
    try:
        cfg = CollectorConfig.model_validate(data)
        parse_listen(cfg.listen)
    except ValidationError as exc:
        if src is None:
            raise ConfigError([Problem("<command line>", None, ".".join(map(str, e["loc"])), e["msg"])
                               for e in exc.errors(include_url=False)]) from exc
        raise ConfigError(pydantic_problems(src, exc)) from exc
    except ValueError as exc:
        raise ConfigError([Problem(str(path or "<command line>"), None, "listen", str(exc))]) from exc
    return cfg
