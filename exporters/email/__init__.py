"""The daily uptime email: the report as plain values (report), rendered (render), sent over SMTP (smtp).

Its settings are the ``email:`` section of monitor.config; its schedule and outbox are
monitor.runtime.mailer and monitor.store.outbox.
"""

from exporters.email.render import HTML_BUDGET_BYTES, Rendered, render, render_for
from exporters.email.report import (
    LOW_AVAILABILITY,
    NO_CIRCUIT,
    NOT_OBSERVED,
    CommuneLine,
    DailyReport,
    OutageLine,
    Rate,
    RebootLine,
    TrendDay,
    report_from_store,
    report_tz,
    send_tz,
)
from exporters.email.smtp import (
    MailError,
    MailErrorKind,
    Sent,
    backoff_s,
    build_message,
    classify,
    deliver,
    new_message_id,
    recipients_key,
    send_blocking,
)

__all__ = [
    "HTML_BUDGET_BYTES", "LOW_AVAILABILITY", "NOT_OBSERVED", "NO_CIRCUIT", "CommuneLine", "DailyReport",
    "MailError", "MailErrorKind", "OutageLine", "Rate", "RebootLine", "Rendered", "Sent", "TrendDay", "backoff_s",
    "build_message", "classify", "deliver", "new_message_id", "recipients_key", "render", "render_for",
    "report_from_store", "report_tz", "send_blocking", "send_tz",
]
