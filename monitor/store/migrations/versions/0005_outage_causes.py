"""Outage causes (issue 17): outage_causes, what the monitor concluded of each outage while it lasted and once it
ended, and outages.why, the cause of a sealed outage piece (covered by the day's seal).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add outage_causes and outages.why (NULL for pieces sealed before: their cause was not recorded)."""
    op.create_table(
        "outage_causes",
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_outage_causes_unit_id_units"),
                  nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=True),
        sa.Column("why", sa.String(16), nullable=False),
        sa.Column("noted_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "start_at", name="pk_outage_causes"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("outages") as batch:
        batch.add_column(sa.Column("why", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outages") as batch:
        batch.drop_column("why")
    op.drop_table("outage_causes")
