"""Initial schema: tokens, devices, batches, series, rollups, events.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_tokens_name", "tokens", ["name"])
    op.create_table(
        "devices",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("depends_on", sa.String(128), nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("asset", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("registered_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devices_agent", "devices", ["agent"])
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )
    op.create_index("ix_batches_received_ms", "batches", ["received_ms"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.UniqueConstraint("device", "metric", "labels", name="uq_series_key"),
    )
    op.create_table(
        "rollups",
        sa.Column("resolution", sa.Integer, primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger, primary_key=True),
        sa.Column("series_id", sa.Integer, primary_key=True),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last", sa.Float, nullable=False),
        sa.Column("last_ts_ms", sa.BigInteger, nullable=False),
        # key in time order: the rows one batch updates are neighbours, so a commit writes few pages
        sqlite_with_rowid=False,
    )
    # reads of one series; upserts of existing buckets change no indexed column, so it costs one insert
    # per series per bucket
    op.create_index("ix_rollups_series", "rollups", ["series_id", "resolution", "bucket_ms"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
    )
    op.create_index("ix_events_device_ts", "events", ["device", "ts_ms"])


def downgrade() -> None:
    for table in ("events", "rollups", "series", "batches", "devices", "tokens"):
        op.drop_table(table)
