"""IPv6 readiness (issue 17, part 5): v6_samples and v6_ok in day_samples and daily, the sweeps that probed a
commune's IPv6 address that day and those it answered.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add both columns to both tables (NULL: no IPv6 address probed, as for every day before)."""
    for table in ("day_samples", "daily"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("v6_samples", sa.Integer, nullable=True))
            batch.add_column(sa.Column("v6_ok", sa.Integer, nullable=True))


def downgrade() -> None:
    for table in ("daily", "day_samples"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("v6_ok")
            batch.drop_column("v6_samples")
