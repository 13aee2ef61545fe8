"""The daily email's outbox: one row per (day, recipient list), pending -> sending -> sent, in the history store.

A row is claimed in a write transaction before its message goes out, so two triggers (or
two processes) never send it twice; a claim older than the lease is a process that died
mid-send, and the row may be tried again (monitor.runtime.mailer explains the whole cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from monitor.store.schema import email_outbox

PENDING, SENDING, SENT, SUPERSEDED = "pending", "sending", "sent", "superseded"

@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One report of the outbox."""

    day: date
    key: str
    recipients: str
    status: str
    attempts: int
    next_try: float
    last_try: float | None
    last_error: str | None
    created_at: float
    sent_at: float | None
    message_id: str | None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(r.day, r.recipients_key, r.recipients, r.status, r.attempts, r.next_try, r.last_try,
                     r.last_error, r.created_at, r.sent_at, r.message_id)


class Outbox:
    """The outbox table on the store's engine. Blocking: call from a worker thread."""

    def __init__(self, engine: Engine, *, lease_s: float = 900.0) -> None:
        self.engine = engine
        # A claim older than this is a process that died mid-send: the row may be tried again.
        self.lease_s = lease_s

    @contextmanager
    def _write(self) -> Any:
        # tslcd_write: the store serialises the transaction (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock).
        with self.engine.connect().execution_options(tslcd_write=True) as conn, conn.begin():
            yield conn

    def rows(self, key: str | None = None) -> list[OutboxRow]:
        q = select(email_outbox).order_by(email_outbox.c.day, email_outbox.c.recipients_key)
        if key is not None:
            q = q.where(email_outbox.c.recipients_key == key)
        with self.engine.connect() as conn, conn.begin():
            return [_row(r) for r in conn.execute(q)]

    def last_sent_at(self) -> float | None:
        with self.engine.connect() as conn, conn.begin():
            v = conn.execute(select(func.max(email_outbox.c.sent_at))).scalar()
        return None if v is None else float(v)

    def enqueue(self, days: Sequence[date], key: str, recipients: str, now: float) -> list[date]:
        """Add the days not in the outbox for ``key``; take over the unsent rows of earlier recipient lists."""
        added: list[date] = []
        with self._write() as conn:
            have = {r.day for r in conn.execute(select(email_outbox.c.day).where(email_outbox.c.recipients_key == key))}
            # Reports still unsent to a list the operator has since changed go to the new list instead.
            orphans = [r.day for r in conn.execute(
                select(email_outbox.c.day).where(email_outbox.c.recipients_key != key,
                                                 email_outbox.c.status.in_((PENDING, SENDING))))]
            for d in sorted(set(days) | set(orphans)):
                if d in have:
                    continue
                conn.execute(email_outbox.insert().values(
                    day=d, recipients_key=key, recipients=recipients[:4000], status=PENDING, attempts=0,
                    next_try=now, created_at=now))
                added.append(d)
            if orphans:
                conn.execute(update(email_outbox).where(email_outbox.c.recipients_key != key,
                                                        email_outbox.c.status.in_((PENDING, SENDING)))
                             .values(status=SUPERSEDED, last_error="recipients changed: sent to the new list"))
        return added

    def last_day(self, key: str) -> date | None:
        with self.engine.connect() as conn, conn.begin():
            v = conn.execute(select(func.max(email_outbox.c.day)).where(email_outbox.c.recipients_key == key)).scalar()
        return v if isinstance(v, date) else None

    def due(self, key: str, now: float) -> list[date]:
        """Days of ``key`` whose row may be tried now, oldest first."""
        c = email_outbox.c
        with self.engine.connect() as conn, conn.begin():
            return [r.day for r in conn.execute(
                select(c.day).where(c.recipients_key == key,
                                    ((c.status == PENDING) & (c.next_try <= now))
                                    | ((c.status == SENDING) & (c.last_try < now - self.lease_s)))
                .order_by(c.day))]

    def claim(self, day: date, key: str, now: float, message_id: Callable[[], str]) -> OutboxRow | None:
        """Take the row for one attempt (None: sent, not due, or another trigger has it); give it a Message-ID."""
        c = email_outbox.c
        with self._write() as conn:
            r = conn.execute(select(email_outbox).where(c.day == day, c.recipients_key == key)).first()
            if r is None:
                return None
            free = (r.status == PENDING and r.next_try <= now) or (
                r.status == SENDING and (r.last_try or 0.0) < now - self.lease_s)
            if not free:
                return None
            mid = r.message_id or message_id()
            conn.execute(update(email_outbox).where(c.day == day, c.recipients_key == key).values(
                status=SENDING, attempts=r.attempts + 1, last_try=now, message_id=mid))
            return _row(conn.execute(select(email_outbox).where(c.day == day, c.recipients_key == key)).one())

    def mark_sent(self, day: date, key: str, now: float, message_id: str, *, recipients: str | None = None) -> None:
        """Record a delivery (creating the row when the CLI sent it by hand)."""
        c = email_outbox.c
        with self._write() as conn:
            done = conn.execute(update(email_outbox).where(c.day == day, c.recipients_key == key).values(
                status=SENT, sent_at=now, last_error=None, message_id=message_id)).rowcount
            if not done:
                try:
                    conn.execute(email_outbox.insert().values(
                        day=day, recipients_key=key, recipients=(recipients or "")[:4000], status=SENT, attempts=1,
                        next_try=now, last_try=now, created_at=now, sent_at=now, message_id=message_id))
                except IntegrityError:  # PostgreSQL: another process inserted it meanwhile; it is sent either way
                    pass

    def sent(self, day: date, key: str) -> OutboxRow | None:
        """The row of ``day`` for ``key`` when that report was delivered, else None."""
        c = email_outbox.c
        with self.engine.connect() as conn:
            r = conn.execute(select(email_outbox).where(c.day == day, c.recipients_key == key,
                                                        c.status == SENT)).first()
        return None if r is None else _row(r)

    def mark_resent(self, day: date, key: str, now: float, message_id: str, note: str) -> None:
        """Record a delivery sent again on purpose (``tslcd report daily --resend``): one more attempt, the new
        Message-ID and time, and ``note`` (which says when and as what it had been sent before)."""
        c = email_outbox.c
        with self._write() as conn:
            conn.execute(update(email_outbox).where(c.day == day, c.recipients_key == key).values(
                status=SENT, sent_at=now, last_try=now, attempts=c.attempts + 1, message_id=message_id,
                last_error=note[:500]))

    def mark_failed(self, day: date, key: str, now: float, error: str, next_try: float) -> None:
        c = email_outbox.c
        with self._write() as conn:
            conn.execute(update(email_outbox).where(c.day == day, c.recipients_key == key, c.status == SENDING)
                         .values(status=PENDING, next_try=next_try, last_error=error[:500]))


