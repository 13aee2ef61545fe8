"""The history store's tables (SQLAlchemy Core): runs, windows, units, inventory versions, events, rollups, seals.

Portable SQL only (SQLite and PostgreSQL). The migrations in ``migrations/versions``
create exactly these tables; ``tests/test_store.py`` checks that they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

# Names for constraints, so that migrations can refer to them on every backend.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# One start of the monitor. A state never carries over from one run to the next.
runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),  # NULL: still running, or killed
    Column("max_gap_s", Float, nullable=False),  # sweeps further apart than this leave a gap (unknown)
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    # Boot id and start time of the process (procs.process_identity): a later process with the same pid on the
    # same host (a container's PID 1 restarted) is another incarnation, not another live monitor. NULL: unknown.
    Column("process", String(80), nullable=True),
    # Which nodes the run watches (monitor.core.shard text): pollers sharing a store watch disjoint shards. NULL:
    # everything (runs before migration 0004).
    Column("shard", String(1000), nullable=True),
)

# Heartbeats, compacted: each sweep extends its run's last window or opens a new one.
windows = Table(
    "windows", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float, nullable=False),
    Index(None, "run_id", "id"),
)

# A unit's identity: code AND first day of validity (docs/design.md, Identity over time).
units = Table(
    "units", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False),
    Column("valid_from", Date, nullable=False),  # 0001-01-01 when the node has no active_from
    UniqueConstraint("code", "valid_from"),
)

inventory_versions = Table(
    "inventory_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("loaded_at", Float, nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of its nodes (monitor.store.chain)
    Column("source", String(1024), nullable=False),
    Column("nodes", Integer, nullable=False),
)

inventory_nodes = Table(
    "inventory_nodes", metadata,
    Column("version_id", Integer, ForeignKey("inventory_versions.id"), primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("province", String(255), nullable=False),
    Column("area", String(255), nullable=False),
    Column("address", String(64), nullable=False),
    Column("parent", String(64), nullable=True),
    Column("active_from", Date, nullable=True),
    Column("active_until", Date, nullable=True),
    Column("carrier", String(64), nullable=True),  # migration 0006
    Column("circuit_id", String(64), nullable=True),
)

# Raw state changes; purged after the retention period once their day is sealed.
events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("old", String(16), nullable=False),
    Column("new", String(16), nullable=False),
    Column("cause", String(64), nullable=True),
    Index(None, "at"),
    Index(None, "run_id", "unit_id", "id"),
)

# Per-node daily rollups of sealed days, written once, whole, in key order when the day
# is sealed (rows that grew in place would split pages and leave them half empty).
# Integers where possible: SQLite stores small integers, and integer-valued REALs, in
# 0-4 bytes, which keeps a year of 20,000 nodes small.
daily = Table(
    "daily", metadata,
    Column("day", Date, primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("up_s", Float, nullable=False),
    Column("down_s", Float, nullable=False),
    Column("unreachable_s", Float, nullable=False),
    Column("unknown_s", Float, nullable=False),
    Column("maintenance_s", Float, nullable=False),
    Column("samples", Integer, nullable=False),  # sweeps with an ICMP result
    Column("rtt_samples", Integer, nullable=False),  # of which with a round trip
    Column("rtt_sum_us", BigInteger, nullable=False),
    Column("loss_sum_ppm", BigInteger, nullable=False),  # sum of loss ratios, parts per million
    Column("bytes_in", BigInteger, nullable=True),  # uplink, when SNMP gives it
    Column("bytes_out", BigInteger, nullable=True),
    Column("reboots", Integer, nullable=True),
    # Sweeps that probed its IPv6 address (address6) and of those the ones it answered; NULL: none probed
    # (migration 0007).
    Column("v6_samples", Integer, nullable=True),
    Column("v6_ok", Integer, nullable=True),
    sqlite_with_rowid=False,
)

# Sample sums of the days not sealed yet, added to every few sweeps; moved into daily by the seal.
day_samples = Table(
    "day_samples", metadata,
    Column("day", Date, primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("samples", Integer, nullable=False),
    Column("rtt_samples", Integer, nullable=False),
    Column("rtt_sum_us", BigInteger, nullable=False),
    Column("loss_sum_ppm", BigInteger, nullable=False),
    Column("bytes_in", BigInteger, nullable=True),
    Column("bytes_out", BigInteger, nullable=True),
    Column("reboots", Integer, nullable=True),
    # Sweeps that probed its IPv6 address (address6) and of those the ones it answered; NULL: none probed
    # (migration 0007).
    Column("v6_samples", Integer, nullable=True),
    Column("v6_ok", Integer, nullable=True),
    sqlite_with_rowid=False,
)

# The parts inside one day of each outage (down or unreachable), kept after raw events go.
outages = Table(
    "outages", metadata,
    Column("day", Date, primary_key=True),
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("start_at", Float, primary_key=True),
    Column("end_at", Float, nullable=False),
    Column("down_s", Float, nullable=False),
    Column("unreachable_s", Float, nullable=False),
    Column("ended_by", String(16), nullable=False),
    Column("cause", String(64), nullable=True),  # the upstream node that was down, for unreachable time
    # Why (monitor.core.causes: power, line, filtered, upstream, unknown), as known when the day was sealed;
    # NULL: sealed before causes were recorded (migration 0005).
    Column("why", String(16), nullable=True),
    sqlite_with_rowid=False,
)

# What the monitor concluded of each outage (migration 0005): written while it lasts (each time the conclusion
# changes, end_at NULL) and once it is over (end_at set). An outage is named by its unit and its start, the time
# of the change that began it; a day's seal copies the cause into its outage pieces.
outage_causes = Table(
    "outage_causes", metadata,
    Column("unit_id", Integer, ForeignKey("units.id"), primary_key=True),
    Column("start_at", Float, primary_key=True),
    Column("end_at", Float, nullable=True),
    Column("why", String(16), nullable=False),
    Column("noted_at", Float, nullable=False),
    sqlite_with_rowid=False,
)

# Maintenance declared at run time (migration 0008; monitor.core.maintenance): codes and areas as JSON lists;
# end_at is the first span's end (a recurring window repeats it until ``until``); ended early: ended_at.
maintenance_windows = Table(
    "maintenance_windows", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float, nullable=False),
    Column("codes", String(20000), nullable=False),
    Column("areas", String(4000), nullable=False),
    Column("recur", String(16), nullable=True),
    Column("until", Date, nullable=True),
    Column("reason", String(1000), nullable=False),
    Column("declared_by", String(255), nullable=False),
    Column("declared_at", Float, nullable=False),
    Column("approved_by", String(255), nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("ended_by", String(255), nullable=True),
    Index(None, "end_at"),
)

# What operators say of an outage (migration 0009), never edited (a later row adds to it): a note (kind "note",
# optionally a ticket and the cause as they know it), or an exclusion from availability (kind "exclusion",
# with its approver). An outage is named by its unit and its start; end_at is its end when the row was added.
outage_notes = Table(
    "outage_notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", Integer, ForeignKey("units.id"), nullable=False),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("note", String(2000), nullable=False),
    Column("ticket", String(255), nullable=True),
    Column("cause", String(16), nullable=True),
    Column("by", String(255), nullable=False),
    Column("approved_by", String(255), nullable=True),
    Column("at", Float, nullable=False),
    Index(None, "unit_id", "start_at"),
)

# Each re-sealing of the chain (migration 0009): an approved exclusion of an outage on a sealed day re-seals
# from that day on; the reports list these.
reseals = Table(
    "reseals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("from_day", Date, nullable=False),
    Column("at", Float, nullable=False),
    Column("by", String(255), nullable=False),
    Column("approved_by", String(255), nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("old_head", String(64), nullable=False),
    Column("new_head", String(64), nullable=False),
)

# The hash chain: one row per finished day, in order, with no gap.
seals = Table(
    "seals", metadata,
    Column("day", Date, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("prev", String(64), nullable=False),
    Column("inventory_version_id", Integer, ForeignKey("inventory_versions.id"), nullable=True),
    Column("observed_s", Float, nullable=False),  # seconds of the day the monitor was observing
    Column("day_s", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("sealed_at", Float, nullable=False),
)

# The daily email's outbox (issue 6, migration 0002): one row per (day, recipient list).
email_outbox = Table(
    "email_outbox", metadata,
    Column("day", Date, primary_key=True),  # the local day the report is about
    Column("recipients_key", String(64), primary_key=True),  # exporters.email.smtp.recipients_key of To + Cc
    Column("recipients", String(4000), nullable=False),  # To and Cc as configured, for people reading the table
    Column("status", String(16), nullable=False),  # pending | sending | sent | superseded
    Column("attempts", Integer, nullable=False),
    Column("next_try", Float, nullable=False),
    Column("last_try", Float, nullable=True),
    Column("last_error", String(500), nullable=True),  # "kind: message", classified; never a secret
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("message_id", String(255), nullable=True),  # kept across retries, so a resend is recognisable
)
