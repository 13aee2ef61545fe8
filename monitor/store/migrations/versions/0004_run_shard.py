"""runs.shard: which nodes a run watches, so that pollers sharing one store watch disjoint shards (issue 14).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add runs.shard (NULL for runs written before: they watched everything)."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("shard", sa.String(1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("shard")
