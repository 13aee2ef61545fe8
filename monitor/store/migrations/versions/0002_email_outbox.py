"""Email outbox: one row per (day, recipient list) of the daily report, with its retries (issue 6).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create email_outbox as monitor/mailer.py defines it."""
    op.create_table(
        "email_outbox",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("recipients_key", sa.String(64), nullable=False),
        sa.Column("recipients", sa.String(4000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try", sa.Float, nullable=False),
        sa.Column("last_try", sa.Float, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=True),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("day", "recipients_key", name="pk_email_outbox"),
    )


def downgrade() -> None:
    op.drop_table("email_outbox")
