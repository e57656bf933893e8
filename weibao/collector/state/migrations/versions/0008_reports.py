"""Generated reports, engineers' report notes, and the report scheduler's runs.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("generated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_reports_kind_period", "reports", ["kind", "period"])
    op.create_index("ix_reports_generated_ms", "reports", ["generated_ms"])
    op.create_table(
        "report_notes",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("period", sa.String(64), primary_key=True),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_runs",
        sa.Column("job", sa.String(16), primary_key=True),
        sa.Column("period", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("report_runs")
    op.drop_table("report_notes")
    op.drop_table("reports")
