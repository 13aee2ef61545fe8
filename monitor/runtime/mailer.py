"""The daily email's schedule and outbox: one report per day and recipient list, sent when due, retried, never lost.

The outbox is a table of the history store (migration 0002_email_outbox), so what was
sent survives restarts: a row per (day, recipients key) goes ``pending`` → ``sending``
→ ``sent``; a failure puts it back to ``pending`` with the next try backed off. Every
trigger (the cron job at ``email.send_at``, the retry job, the start of the service)
calls the same idempotent ``Mailer.run_due``: it adds the days whose report is due and
not yet in the outbox, then sends the rows whose time has come.

Exactly once, within what SMTP allows: a row is claimed in a write transaction before
its message goes out, so two triggers (or two processes) never send it twice. If the
process dies after the server accepted the message but before ``sent`` is written, the
claim goes stale and the message is sent again with the same Message-ID, which mail
clients use to drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.exc import SQLAlchemyError

from exporters.email import (
    backoff_s,
    build_message,
    new_message_id,
    recipients_key,
    render_for,
    report_from_store,
    report_tz,
    send_blocking,
    send_tz,
)
from exporters.metrics import EMAIL_FAILURES, EMAIL_LAST_SUCCESS
from monitor.config import EmailSettings
from monitor.errors import MailError, MailErrorKind
from monitor.store.outbox import OutboxRow

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from monitor.config import Config
    from monitor.store import SqlStore

log = logging.getLogger("tslcd.mailer")

# A failure to build the report (store unreadable, a broken operator template), beside MailErrorKind's reasons.
REPORT_FAILED = "report"

class MailerMetrics:
    """tslcd_email_failures_total{reason} and tslcd_email_last_success_timestamp_seconds, on the given registry."""

    REASONS = tuple(k.value for k in MailErrorKind) + (REPORT_FAILED,)

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.failures = Counter(EMAIL_FAILURES, "Daily report sends that failed (each is retried), by reason.",
                                ["reason"], registry=registry)
        for reason in self.REASONS:  # every series exists from the start, at 0, so rate() and alerts see them
            self.failures.labels(reason)
        self.last_success = Gauge(EMAIL_LAST_SUCCESS, "When a daily report was last accepted by the mail server "
                                  "(0: never).", registry=registry)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try of one row did."""

    day: date
    sent: bool
    message_id: str | None = None
    error: str | None = None
    next_try: float | None = None


class Mailer:
    """Sends the daily report when due, from the history store, with the outbox in the same store.

    ``attach(scheduler)`` adds the cron job at ``email.send_at`` and the retry job (whose first run,
    at start, is the catch-up). Tests call ``run_due`` with an injected clock instead.
    """

    def __init__(self, cfg: Config, settings: EmailSettings, store: SqlStore, *,
                 registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time,
                 retry_check_s: float = 30.0) -> None:
        self.cfg = cfg
        self.settings = settings
        self.store = store
        self.outbox = store.outbox( lease_s=max(900.0, 4 * settings.smtp.timeout_s))
        self.metrics = MailerMetrics(registry)
        self.clock = clock
        self.tz = report_tz(cfg, settings)  # the report's days
        self.send_tz = send_tz(cfg, settings)  # the send time
        self.key = recipients_key(settings.to, settings.cc)
        self.recipients = "To: " + ", ".join(settings.to) + ("; Cc: " + ", ".join(settings.cc) if settings.cc else "")
        self.retry_check_s = retry_check_s
        self._lock: asyncio.Lock | None = None
        self._restored = False

    # -- the schedule -------------------------------------------------------------------------------

    def attach(self, scheduler: BaseScheduler) -> None:
        """Add the daily cron job and the retry job (first run now: the catch-up after a stop)."""
        from apscheduler.triggers.cron import CronTrigger

        hh, mm = self.settings.send_time
        scheduler.add_job(self.run_due, CronTrigger(hour=hh, minute=mm, timezone=self.send_tz), id="email-daily",
                          max_instances=1, coalesce=True, misfire_grace_time=None)
        scheduler.add_job(self.run_due, "interval", seconds=self.retry_check_s, id="email-outbox", max_instances=1,
                          coalesce=True, next_run_time=datetime.now(self.send_tz))

    def latest_due_day(self, now: float) -> date:
        """The last day whose report is due at ``now``: yesterday once today's send time has passed."""
        sent_clock = datetime.fromtimestamp(now, self.send_tz)
        hh, mm = self.settings.send_time
        today = datetime.fromtimestamp(now, self.tz).date()
        return today - timedelta(days=1 if sent_clock.time() >= dtime(hh, mm) else 2)

    def due_days(self, now: float) -> list[date]:
        """Days to add to the outbox now (blocking). Never a day before the monitor first observed anything."""
        latest = self.latest_due_day(now)
        first = self.store.first_day(self.tz)
        if first is None or latest < first:
            return []
        last = self.outbox.last_day(self.key)
        if last is None:
            return [latest]  # a new install or a new recipient list starts with the latest report, not a backlog
        start = max(last + timedelta(days=1), latest - timedelta(days=self.settings.catch_up_days - 1), first)
        if last + timedelta(days=1) < start:
            log.warning("reports of days missed while stopped are older than email.catch_up_days and not sent",
                        extra={"first": (last + timedelta(days=1)).isoformat(),
                               "last": (start - timedelta(days=1)).isoformat()})
        return [start + timedelta(days=i) for i in range((latest - start).days + 1)]

    # -- sending ------------------------------------------------------------------------------------

    async def run_due(self) -> list[Attempt]:
        """Add due days to the outbox and try every row whose time has come; idempotent, never raises."""
        if not self.settings.enabled:
            return []
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                now = self.clock()
                if not self._restored:
                    last = await asyncio.to_thread(self.outbox.last_sent_at)
                    self.metrics.last_success.set(last or 0.0)
                    self._restored = True
                added = await asyncio.to_thread(lambda: self.outbox.enqueue(self.due_days(now), self.key,
                                                                            self.recipients, now))
                if added:
                    log.info("daily reports queued", extra={"days": ",".join(d.isoformat() for d in added)})
                due = await asyncio.to_thread(self.outbox.due, self.key, now)
            except SQLAlchemyError:
                log.exception("the email outbox cannot be read; will try again")
                return []
            return [await self._attempt(d) for d in due]

    async def _attempt(self, day: date) -> Attempt:
        # One worker-thread call from claim to record: if the service stops mid-send, the await is
        # cancelled but the thread runs on (asyncio.run waits for it) and still records the outcome,
        # so a message the server accepted is not sent again after the restart.
        return await asyncio.to_thread(self._attempt_blocking, day)

    def _attempt_blocking(self, day: date) -> Attempt:
        now = self.clock()
        try:
            row = self.outbox.claim(day, self.key, now, lambda: new_message_id(self.settings.sender, day))
        except SQLAlchemyError:
            log.exception("the email outbox cannot be written; will try again", extra={"day": day.isoformat()})
            return Attempt(day, False, error="outbox")
        if row is None or row.message_id is None:
            return Attempt(day, False)  # sent meanwhile, or another trigger (or process) has it
        try:
            msg = self._message(day, row.message_id, now)
            sent = send_blocking(self.settings.smtp, msg, recipients=self.settings.recipients)
        except MailError as e:
            return self._failed(row, e.kind.value, str(e), now)
        except Exception as e:  # a report that cannot be built is retried like a send that failed
            log.exception("building the daily report failed", extra={"day": day.isoformat()})
            return self._failed(row, REPORT_FAILED, f"{REPORT_FAILED}: {type(e).__name__}: {e}"[:500], now)
        done = self.clock()
        try:
            self.outbox.mark_sent(day, self.key, done, row.message_id)
        except SQLAlchemyError:
            # Sent but not recorded: the claim goes stale and the same Message-ID is sent again later.
            log.exception("daily report sent but not recorded in the outbox", extra={"day": day.isoformat()})
        self.metrics.last_success.set(done)
        log.info("daily report sent", extra={"day": day.isoformat(), "message_id": row.message_id,
                                             "recipients": len(sent.recipients), "attempts": row.attempts})
        if sent.refused:
            # Delivered to the others: resending would duplicate it for them, so it is counted and logged.
            self.metrics.failures.labels(MailErrorKind.REJECTED.value).inc()
            log.warning("the mail server refused some recipients of the daily report", extra={
                "day": day.isoformat(), "refused": "; ".join(f"{r}: {c} {t}" for r, (c, t) in sent.refused.items())})
        return Attempt(day, True, row.message_id)

    def _failed(self, row: OutboxRow, reason: str, error: str, now: float) -> Attempt:
        wait = backoff_s(row.attempts, self.settings.retry_initial_s, self.settings.retry_max_s)
        try:
            self.outbox.mark_failed(row.day, self.key, now, error, now + wait)
        except SQLAlchemyError:  # the claim goes stale and the row is tried again after the lease
            log.exception("the email outbox cannot be written", extra={"day": row.day.isoformat()})
        self.metrics.failures.labels(reason).inc()
        log.warning("daily report not sent; will retry", extra={
            "day": row.day.isoformat(), "reason": reason, "error": error, "attempts": row.attempts,
            "retry_in_s": round(wait)})
        return Attempt(row.day, False, row.message_id, error, now + wait)

    def _message(self, day: date, message_id: str, now: float) -> Any:
        report = report_from_store(self.store, self.cfg, day, settings=self.settings, now=now, tz=self.tz)
        rendered = render_for(report, self.settings, base=self.cfg.source.parent)
        return build_message(rendered, sender=self.settings.sender, to=self.settings.to, cc=self.settings.cc,
                             reply_to=self.settings.reply_to, day=day, now=now, tz=self.tz, message_id=message_id)
