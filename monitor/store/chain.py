"""The hash chain: canonical text of a sealed day (and of an inventory version) and its SHA-256 digest.

Pure. Each day's digest covers the day, the previous day's digest, the digest of the
inventory version counted that day, the monitor's coverage, every rollup row and every
outage piece, each named by unit code and validity (never by database id; a maintenance window declared at run
time is named by its id, which is kept with it). Numbers are
written with ``repr``, which round-trips a float exactly, so one changed bit of any
stored value changes the digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

GENESIS = "0" * 64  # the "previous digest" of the first sealed day
FORMAT = "tslcd-day-v1"
INVENTORY_FORMAT = "tslcd-inventory-v1"


def _line(values: Sequence[Any]) -> str:
    return json.dumps([v.isoformat() if isinstance(v, date) else v for v in values], ensure_ascii=False,
                      separators=(",", ":"))


def inventory_digest(rows: Iterable[Sequence[Any]]) -> str:
    """Digest of an inventory version.

    Each row: code, valid_from, name, kind, province, area, address, parent, active_from, active_until, then
    carrier and circuit_id only when one is set: a node without them (every node recorded before migration 0006)
    reads as it did, so the digests of versions recorded before still verify.
    """
    h = hashlib.sha256(INVENTORY_FORMAT.encode() + b"\n")
    for line in sorted(_line(r if len(r) <= 10 or any(v is not None for v in r[10:]) else r[:10]) for r in rows):
        h.update(line.encode() + b"\n")
    return h.hexdigest()


def day_text(*, day: date, prev: str, inventory: str, observed_s: float, day_s: float,
             rows: Iterable[Sequence[Any]], outages: Iterable[Sequence[Any]],
             windows: Iterable[Sequence[Any]] = (), exclusions: Iterable[Sequence[Any]] = ()) -> str:
    """The canonical text of a sealed day.

    ``rows``: code, valid_from, then the daily columns in schema order (up_s ... reboots).
    ``outages``: code, valid_from, start_at, end_at, down_s, unreachable_s, ended_by, cause, then why (the
    outage's cause class) when one was recorded: a piece sealed before causes were recorded (migration 0005) has
    no ``why`` and its line reads as it did when it was sealed.
    ``windows``: the maintenance windows declared at run time that cover part of the day (migration 0008): id,
    codes, areas, reason, declared_by, approved_by, then its spans within the day; none on a day without one,
    whose text reads as before.
    ``exclusions``: the approved exclusions of outages overlapping the day (migration 0009): code, valid_from,
    start_at, end_at, note, by, approved_by, at; none on a day without one.
    """
    head = [FORMAT, f"day={day.isoformat()}", f"prev={prev}", f"inventory={inventory}",
            f"observed_s={observed_s!r}", f"day_s={day_s!r}"]
    body = (sorted("R" + _line(r) for r in rows) + sorted("O" + _line(o) for o in outages)
            + sorted("W" + _line(w) for w in windows) + sorted("X" + _line(x) for x in exclusions))
    return "\n".join(head + body) + "\n"


def digest(text: str) -> str:
    """SHA-256 of the canonical text, in hex."""
    return hashlib.sha256(text.encode()).hexdigest()
