"""History store: runs, windows, units, inventory versions, events, daily rollups and samples, outages, seals.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create every table of monitor/store/schema.py as of this revision."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float, nullable=True),
        sa.Column("max_gap_s", sa.Float, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_windows"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_windows_run_id_runs"),
    )
    op.create_index("ix_windows_run_id_id", "windows", ["run_id", "id"])
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_units"),
        sa.UniqueConstraint("code", "valid_from", name="uq_units_code_valid_from"),
    )
    op.create_table(
        "inventory_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("loaded_at", sa.Float, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("nodes", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inventory_versions"),
    )
    op.create_table(
        "inventory_nodes",
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("province", sa.String(255), nullable=False),
        sa.Column("area", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("active_from", sa.Date, nullable=True),
        sa.Column("active_until", sa.Date, nullable=True),
        sa.PrimaryKeyConstraint("version_id", "unit_id", name="pk_inventory_nodes"),
        sa.ForeignKeyConstraint(["version_id"], ["inventory_versions.id"],
                                name="fk_inventory_nodes_version_id_inventory_versions"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_inventory_nodes_unit_id_units"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("old", sa.String(16), nullable=False),
        sa.Column("new", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_events_unit_id_units"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_run_id_unit_id_id", "events", ["run_id", "unit_id", "id"])
    op.create_table(
        "daily",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("up_s", sa.Float, nullable=False),
        sa.Column("down_s", sa.Float, nullable=False),
        sa.Column("unreachable_s", sa.Float, nullable=False),
        sa.Column("unknown_s", sa.Float, nullable=False),
        sa.Column("maintenance_s", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("rtt_samples", sa.Integer, nullable=False),
        sa.Column("rtt_sum_us", sa.BigInteger, nullable=False),
        sa.Column("loss_sum_ppm", sa.BigInteger, nullable=False),
        sa.Column("bytes_in", sa.BigInteger, nullable=True),
        sa.Column("bytes_out", sa.BigInteger, nullable=True),
        sa.Column("reboots", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("day", "unit_id", name="pk_daily"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_daily_unit_id_units"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "day_samples",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("rtt_samples", sa.Integer, nullable=False),
        sa.Column("rtt_sum_us", sa.BigInteger, nullable=False),
        sa.Column("loss_sum_ppm", sa.BigInteger, nullable=False),
        sa.Column("bytes_in", sa.BigInteger, nullable=True),
        sa.Column("bytes_out", sa.BigInteger, nullable=True),
        sa.Column("reboots", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("day", "unit_id", name="pk_day_samples"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_day_samples_unit_id_units"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "outages",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("down_s", sa.Float, nullable=False),
        sa.Column("unreachable_s", sa.Float, nullable=False),
        sa.Column("ended_by", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("day", "unit_id", "start_at", name="pk_outages"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_outages_unit_id_units"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "seals",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("inventory_version_id", sa.Integer, nullable=True),
        sa.Column("observed_s", sa.Float, nullable=False),
        sa.Column("day_s", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("sealed_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_seals"),
        sa.ForeignKeyConstraint(["inventory_version_id"], ["inventory_versions.id"],
                                name="fk_seals_inventory_version_id_inventory_versions"),
    )


def downgrade() -> None:
    """Drop everything (history is lost: only for development)."""
    for table in ("seals", "outages", "day_samples", "daily", "events", "inventory_nodes", "inventory_versions",
                  "units", "windows", "runs"):
        op.drop_table(table)
