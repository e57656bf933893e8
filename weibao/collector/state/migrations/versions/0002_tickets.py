"""Tickets, ticket events, ticket id counters, maintenance windows, notification outbox.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_ms", sa.BigInteger, nullable=False),
        sa.Column("accepted_ms", sa.BigInteger, nullable=True),
        sa.Column("restored_ms", sa.BigInteger, nullable=True),
        sa.Column("reported_ms", sa.BigInteger, nullable=True),
        sa.Column("closed_ms", sa.BigInteger, nullable=True),
        sa.Column("affected", sa.Text, nullable=False),
        sa.Column("episode", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_tickets_device_state", "tickets", ["device", "state"])
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_index("ix_tickets_opened_ms", "tickets", ["opened_ms"])
    op.create_index("ix_tickets_episode", "tickets", ["episode"])
    op.create_table(
        "ticket_events",
        sa.Column("ticket_id", sa.String(64), sa.ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("from_level", sa.Integer, nullable=True),
        sa.Column("to_level", sa.Integer, nullable=True),
        sa.Column("devices", sa.Text, nullable=False),
    )
    op.create_index("ix_ticket_events_at_ms", "ticket_events", ["at_ms"])
    op.create_table(
        "ticket_counters",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("devices", sa.Text, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_maintenance_windows_start_ms", "maintenance_windows", ["start_ms"])
    op.create_index("ix_maintenance_windows_end_ms", "maintenance_windows", ["end_ms"])
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("sent_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.UniqueConstraint("channel", "key", name="uq_notify_outbox_channel_key"),
    )
    op.create_index("ix_notify_outbox_channel", "notify_outbox", ["channel"])
    op.create_index("ix_notify_outbox_ticket_id", "notify_outbox", ["ticket_id"])
    op.create_index("ix_notify_outbox_status", "notify_outbox", ["status"])
    op.create_index("ix_notify_outbox_next_ms", "notify_outbox", ["next_ms"])


def downgrade() -> None:
    op.drop_table("notify_outbox")
    op.drop_table("maintenance_windows")
    op.drop_table("ticket_counters")
    op.drop_table("ticket_events")
    op.drop_table("tickets")
