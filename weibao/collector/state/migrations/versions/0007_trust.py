"""Trust boundary: each batch id's body digest (a reused id with other contents is refused), device moves.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for batches stored before this revision: their resend is taken as identical
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    op.create_table(
        "device_moves",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("from_agent", sa.String(128), nullable=False),
        sa.Column("to_agent", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_device_moves_device", "device_moves", ["device"])


def downgrade() -> None:
    op.drop_table("device_moves")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("digest")
