"""Tickets people open (kind, summary), solution / dispatch / on-site times, when each event was recorded;
inspection-danger timers kept across restarts.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="fault"))
        batch.add_column(sa.Column("summary", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("solution_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("dispatched_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("onsite_ms", sa.BigInteger, nullable=True))
    with op.batch_alter_table("ticket_events") as batch:
        batch.add_column(sa.Column("recorded_ms", sa.BigInteger, nullable=True))
    op.create_table(
        "danger_timers",
        sa.Column("device", sa.String(128), primary_key=True),
        sa.Column("check_id", sa.String(128), primary_key=True),
        sa.Column("labels", sa.Text, primary_key=True),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("danger_timers")
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_column("recorded_ms")
    with op.batch_alter_table("tickets") as batch:
        for column in ("onsite_ms", "dispatched_ms", "solution_ms", "summary", "kind"):
            batch.drop_column(column)
