"""maintenance_windows: maintenance declared at run time, who declared it and why (issue 17, part 3).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("codes", sa.String(20000), nullable=False),
        sa.Column("areas", sa.String(4000), nullable=False),
        sa.Column("recur", sa.String(16), nullable=True),
        sa.Column("until", sa.Date, nullable=True),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("declared_by", sa.String(255), nullable=False),
        sa.Column("declared_at", sa.Float, nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("ended_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_windows"),
    )
    op.create_index("ix_maintenance_windows_end_at", "maintenance_windows", ["end_at"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_windows_end_at", "maintenance_windows")
    op.drop_table("maintenance_windows")
