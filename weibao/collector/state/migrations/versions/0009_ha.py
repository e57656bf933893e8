"""Replicas: the engine feed (what every committed batch brings the contract engine, in commit order) and
the leader row (term, holder, how far the engine has worked through the feed).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_feed",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("ts_min_ms", sa.BigInteger, nullable=True),
        sa.Column("ts_max_ms", sa.BigInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_engine_feed_created_ms", "engine_feed", ["created_ms"])
    leader = op.create_table(
        "engine_leader",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
        sa.Column("feed_position", sa.BigInteger, nullable=False),
        sa.Column("feed_since_ms", sa.BigInteger, nullable=False),
    )
    # the feed holds every batch committed from now on: a replay may read it for what came after
    op.bulk_insert(leader, [{"id": 1, "term": 0, "holder": "", "since_ms": 0, "feed_position": 0,
                             "feed_since_ms": int(time.time() * 1000)}])


def downgrade() -> None:
    op.drop_table("engine_leader")
    op.drop_index("ix_engine_feed_created_ms", "engine_feed")
    op.drop_table("engine_feed")
