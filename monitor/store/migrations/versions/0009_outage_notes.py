"""outage_notes and reseals (issue 17, part 2): notes, tickets and causes operators give an outage, approved
exclusions from availability, and the re-sealing of the chain an exclusion of a sealed day asks for.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outage_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_outage_notes_unit_id_units"),
                  nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.Column("ticket", sa.String(255), nullable=True),
        sa.Column("cause", sa.String(16), nullable=True),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outage_notes"),
    )
    op.create_index("ix_outage_notes_unit_id_start_at", "outage_notes", ["unit_id", "start_at"])
    op.create_table(
        "reseals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("from_day", sa.Date, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("approved_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("old_head", sa.String(64), nullable=False),
        sa.Column("new_head", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reseals"),
    )


def downgrade() -> None:
    op.drop_table("reseals")
    op.drop_index("ix_outage_notes_unit_id_start_at", "outage_notes")
    op.drop_table("outage_notes")
