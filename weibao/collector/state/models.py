"""State-store tables as SQLAlchemy 2 declarative models (the schema the latest migration produces).

Times are integers: milliseconds since the epoch, UTC (``*_ms``), the same on SQLite and PostgreSQL.
Labels are kept as their canonical JSON text (sorted keys, no spaces; ``{}`` when there are none).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Token(Base):
    """An API token: only its SHA-256 is kept; ``role`` is ``agent`` or ``engineer``."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Device(Base):
    """A device registered by an agent (PUT /api/v1/inventory); ``spec`` is its public JSON."""

    __tablename__ = "devices"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    site: Mapped[str] = mapped_column(String(128))
    agent: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    depends_on: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="[]")
    asset: Mapped[str] = mapped_column(Text, default="{}")
    spec: Mapped[str] = mapped_column(Text, default="{}")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class Batch(Base):
    """A batch id already applied: a second arrival answers "duplicate" and adds nothing."""

    __tablename__ = "batches"
    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent: Mapped[str] = mapped_column(String(128))
    received_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    samples: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    # SHA-256 of the request body: a resend is byte-identical, another body under the same id is refused
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DeviceMove(Base):
    """A device handed from one agent to another by an admin (``weibao devices move``): the record of
    who did it, and the signal for every collector process to forget the owners it cached."""

    __tablename__ = "device_moves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(128), index=True)
    from_agent: Mapped[str] = mapped_column(String(128))
    to_agent: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Series(Base):
    """One time series: device, metric and label set. Rollups refer to it by id."""

    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("device", "metric", "labels", name="uq_series_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(128))
    labels: Mapped[str] = mapped_column(Text)


class Rollup(Base):
    """min/avg/max/last/count of one series over one bucket of ``resolution`` seconds (300 or 3600);
    avg is ``sum / count``."""

    __tablename__ = "rollups"
    # key in time order: the buckets a batch updates sit together, so a commit writes few pages; the
    # index serves reads of one series
    __table_args__ = (Index("ix_rollups_series", "series_id", "resolution", "bucket_ms"),
                      {"sqlite_with_rowid": False})
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    last: Mapped[float] = mapped_column(Float)
    last_ts_ms: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    """An event (trap, config_changed, rebooted, agent_gap) as received."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_device_ts", "device", "ts_ms"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[str] = mapped_column(Text, default="{}")
    batch_id: Mapped[str] = mapped_column(String(36))
    agent: Mapped[str] = mapped_column(String(128))


class DangerTimer(Base):
    """Since when an inspection danger has held on one series (the contract engine's 24 h count), kept so
    that a restart does not start the count again."""

    __tablename__ = "danger_timers"
    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    check_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    labels: Mapped[str] = mapped_column(Text, primary_key=True)
    since_ms: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    """A person who logs in to the console; ``password_hash`` is argon2id (PHC string), never the password."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | engineer | client
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change: Mapped[bool] = mapped_column(Boolean, default=False)  # a one-time password was set
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """A console login: only the SHA-256 of the cookie's id is kept; ``ended_ms`` set at logout."""

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    seen_ms: Mapped[int] = mapped_column(BigInteger)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    address: Mapped[str] = mapped_column(String(64))


class LoginThrottle(Base):
    """Failed logins counted per key (``account:NAME`` or ``address:IP``) in a window, and a lockout."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    locked_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuditEntry(Base):
    """One action a person took (console, API or CLI): who, what, when, from where, and the outcome."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(16))  # console | api | cli
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused
    detail: Mapped[str] = mapped_column(Text, default="")


class FeedRow(Base):
    """What the contract engine needs of one committed batch (its fault and watched samples, its events),
    or a signal to the engine (``kind`` other than ``batch``): how batches ingested by any replica reach
    the one that runs the engine. Ids are handed out in commit order (``weibao.collector.ha.feed``)."""

    __tablename__ = "engine_feed"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    # the event times its fault samples span (None: it has none), so a replay reads only what it needs
    ts_min_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ts_max_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    body: Mapped[str] = mapped_column(Text, default="{}")


class EngineLeader(Base):
    """The one row saying which replica leads (``term`` counts the leaderships), how far its engine has
    worked through the feed, and since when the feed holds every batch committed."""

    __tablename__ = "engine_leader"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    term: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))
    since_ms: Mapped[int] = mapped_column(BigInteger)
    feed_position: Mapped[int] = mapped_column(BigInteger)
    feed_since_ms: Mapped[int] = mapped_column(BigInteger)
