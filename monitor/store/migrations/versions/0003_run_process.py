"""runs.process: which process wrote a run (boot and start time), so that a restart with the same PID is not
"another monitor" (PID 1 in a container).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add runs.process (NULL for runs written before: judged by PID alone, as then)."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("process", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("process")
