"""The collector's configuration file (YAML, strict): where it listens, where it keeps data, its limits."""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from weibao.core.errors import ConfigError, Problem
from weibao.core.yamlsrc import load_yaml, pydantic_problems

DEFAULT_LISTEN = "127.0.0.1:8470"
# what the collector keeps at the top of its data directory: tightened to its owner at every start
DATA_FILES = ("state.db", "state.db-wal", "state.db-shm", "samples.db", "samples.db-wal", "samples.db-shm", "run")


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
    # a sample or event dated further ahead of the collector's clock is refused (an agent's clock may
    # run a little fast; a time far ahead would hide every later sample of its device); one older than
    # retention.raw_days is refused too
    max_future_s: float = Field(300.0, ge=0, le=86_400)


class TlsConfig(_Strict):
    """HTTPS for the API: the collector's certificate chain and key (PEM). With ``client_ca_file`` (mutual
    TLS) an agent's token is only accepted with a client certificate from that CA naming the agent;
    ``require_client_cert`` makes every client (engineers' tools too) present one."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    require_client_cert: bool = True


class ConnectionsConfig(_Strict):
    """What one client connection may hold: the server stays reachable whatever strangers open."""

    # at most this many connections (also kept below the open-file limit); past it, the longest idle
    # connection is closed for the new one, or the new one is when none is idle
    max_connections: int = Field(1000, ge=8, le=1_000_000)
    # from accepting a connection (TLS handshake included) to the end of a request's headers
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    # between requests on a kept-alive connection
    idle_timeout_s: float = Field(15.0, gt=0, le=3600)
    # from the end of a request's headers to the end of its body
    body_timeout_s: float = Field(120.0, gt=0, le=3600)


class ContractConfig(_Strict):
    """The contract engine: fault rules, working calendar, notifications, maintenance windows, timers."""

    # None: on when the collector runs one worker process; true with several workers is refused
    enabled: bool | None = None
    # rules/contract.yaml; default: $WEIBAO_RULES/contract.yaml, ./rules/contract.yaml, the installed copy
    rules: Path | None = None
    # inspection.yaml for hidden dangers that persist; default: beside the contract rules, if present
    inspection_rules: Path | None = None
    calendar: list[Path] = Field(default_factory=list, description="site calendar files, applied in order")
    # fewer days of holiday data than this from today on: a daily warning, a gauge, the contract API says so
    calendar_warn_days: int = Field(60, ge=0, le=3660)
    notify: Path | None = None
    maintenance: Path | None = None
    sweep_interval_s: float = Field(15.0, ge=0.1, le=3600)
    queue_max_batches: int = Field(1000, ge=1, le=1_000_000)
    # restart recovery: raw samples for the newest hours, 5-minute rollups for the rest of the month
    replay_raw_hours: float = Field(6.0, ge=0, le=24 * 31)
    # event time further behind the wall clock than this: the engine's clock follows event time
    live_horizon_s: float = Field(3600.0, gt=0)


class HaConfig(_Strict):
    """Several collectors on one PostgreSQL: every one ingests, one at a time (the leader) runs the contract
    engine, the sweeps, the notification sending and the scheduled jobs (``weibao.collector.ha``)."""

    # None: on when the state store is PostgreSQL; true with SQLite is refused (one host, one process)
    enabled: bool | None = None
    # this collector's name in /metrics, GET /api/v1/contract and the logs; default HOST:PORT of ``listen``
    # on this machine's host name
    replica: str | None = Field(None, min_length=1, max_length=200)
    # false: this replica ingests (and serves the API) but never runs the engine (an ingest-only replica)
    candidate: bool = True
    # candidates try for the leadership this often, and the leader confirms it still holds it
    check_interval_s: float = Field(1.0, ge=0.05, le=60)
    # a leader that cannot confirm its hold for this long stops its engine; PostgreSQL ends a silent
    # session (and with it the hold) later than this, so two leaders never overlap (README, HA layout)
    step_down_after_s: float = Field(5.0, ge=0.5, le=300)
    # how often the leader looks for batches committed by the other replicas
    feed_poll_s: float = Field(0.25, ge=0.01, le=10)

    @model_validator(mode="after")
    def _intervals(self) -> HaConfig:
        if self.step_down_after_s < 2 * self.check_interval_s:
            raise ValueError("step_down_after_s must be at least twice check_interval_s (one missed check "
                             "must not end the leadership)")
        return self


class LoginLimits(_Strict):
    """Login throttling: failures counted per account and per address within ``window_s``; reaching a limit
    locks that account (or address) for ``lockout_s``, whatever password comes next."""

    account_failures: int = Field(5, ge=1, le=1000)
    address_failures: int = Field(20, ge=1, le=100_000)
    window_s: float = Field(900, gt=0, le=86_400)
    lockout_s: float = Field(900, gt=0, le=86_400)


class ConsoleConfig(_Strict):
    """The web console served at ``/`` beside the API."""

    # the address people reach the console at, e.g. https://weibao.example.internal; notifications link
    # to ``{base_url}/tickets/{id}``; without it they carry no link
    base_url: str | None = None
    idle_timeout_s: float = Field(1800, ge=60, le=7 * 86_400)
    absolute_timeout_s: float = Field(12 * 3600, ge=60, le=30 * 86_400)
    # cookies are Secure when the console is reached over TLS (the request, or an https base_url);
    # "always" for a TLS-terminating proxy that forwards plain HTTP without an https base_url
    secure_cookies: Literal["auto", "always"] = "auto"
    login: LoginLimits = LoginLimits()
    refresh_s: float = Field(10, ge=1, le=3600)  # how often the overview and ticket pages update
    stale_after_s: float = Field(900, ge=30)  # a device silent this long counts as unknown

    @model_validator(mode="after")
    def _checked(self) -> ConsoleConfig:
        if self.absolute_timeout_s < self.idle_timeout_s:
            raise ValueError("absolute_timeout_s must not be shorter than idle_timeout_s")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("base_url must be http://HOST[:PORT][/PATH] or https://...")
            if parts.query or parts.fragment or parts.username or parts.password:
                raise ValueError("base_url takes no query, fragment or credentials")
        return self

    def ticket_url(self, ticket_id: str) -> str | None:
        """The console page of a ticket, for notifications; None without a base URL."""
        if self.base_url is None:
            return None
        return f"{self.base_url.rstrip('/')}/tickets/{quote(ticket_id, safe='')}"
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
    console: ConsoleConfig = ConsoleConfig()
    tls: TlsConfig | None = None
    connections: ConnectionsConfig = ConnectionsConfig()
    reports: ReportsConfig = ReportsConfig()
    ha: HaConfig = HaConfig()

    @model_validator(mode="after")
    def _ha_needs_postgresql(self) -> CollectorConfig:
        if self.ha.enabled is True and not self.state_is_postgresql:
            raise ValueError("ha.enabled needs a PostgreSQL state_url (replicas share the state through it); "
                             "with SQLite one collector process serves the site")
        return self

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
    def leader_work_here(self) -> bool:
        """Whether this process may run the work done once per site (the contract engine, the scheduled
        reports): as the only process (one worker), or as a replica that does it while it leads (``ha``;
        every worker process is a candidate of its own)."""
        return self.contract_enabled or self.ha_enabled

    @property
    def state_is_postgresql(self) -> bool:
        scheme = (self.state_url or "sqlite").split(":", 1)[0]
        return scheme.split("+", 1)[0] == "postgresql"

    @property
    def ha_enabled(self) -> bool:
        """Whether this collector is one of possibly several replicas (leader election, engine feed); every
        worker process of a replica is a candidate of its own. Off when the contract engine is turned off."""
        if self.contract.enabled is False:
            return False
        return self.state_is_postgresql if self.ha.enabled is None else self.ha.enabled

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
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def load_config(path: Path | None, *, data_dir: Path | None = None, listen: str | None = None,
                tls: dict[str, Path] | None = None) -> CollectorConfig:
    """The configuration from ``path`` (or defaults), with command-line values winning over the file
    (``tls``: keys of the ``tls`` section given as flags)."""
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
    if tls:
        section = data.get("tls")
        data["tls"] = {**(section if isinstance(section, dict) else {}), **{k: str(v) for k, v in tls.items()}}
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
