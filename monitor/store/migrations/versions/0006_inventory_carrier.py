"""inventory_nodes.carrier and circuit_id: who provides each node's circuit, for availability per carrier
(issue 17, part 4).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add both columns (NULL for versions recorded before: no carrier was known)."""
    with op.batch_alter_table("inventory_nodes") as batch:
        batch.add_column(sa.Column("carrier", sa.String(64), nullable=True))
        batch.add_column(sa.Column("circuit_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inventory_nodes") as batch:
        batch.drop_column("circuit_id")
        batch.drop_column("carrier")
