"""The MIME message and its SMTP delivery (plain, STARTTLS, implicit TLS; AUTH).

Every failure becomes one ``MailError`` whose ``kind`` is a bounded classification and whose
message never holds the password (``classify`` is the one place that translates smtplib, ssl
and socket errors).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import smtplib
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from typing import TYPE_CHECKING

from exporters.email.render import Rendered
from monitor.errors import MailError as MailError
from monitor.errors import MailErrorKind as MailErrorKind
from monitor.text import scrub

if TYPE_CHECKING:
    from monitor.config import SmtpSettings


def recipients_key(to: Sequence[str], cc: Sequence[str] = ()) -> str:
    """Identity of a recipient list for "exactly once per day and list": order, case and display names ignored."""
    addrs = sorted({a.lower() for _, a in getaddresses([*to, *cc]) if a})
    return hashlib.sha256("\n".join(addrs).encode()).hexdigest()[:32]


def new_message_id(sender: str, day: date) -> str:
    """A unique Message-ID in the sender's domain, naming the report's day (kept across retries by the outbox)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "tslcd.invalid"
    # 64 random bits make it unique; short enough to keep the header line under 78 characters.
    return f"<tslcd-daily-{day.isoformat()}.{secrets.token_hex(8)}@{domain}>"


def _encoded(text: str, header: str) -> str | Header:
    return text if text.isascii() else Header(text, "utf-8", header_name=header)


def encode_addresses(values: Iterable[str]) -> str:
    """An address-list header value, RFC 2047 done here: each address on its own folded line.

    Why by hand: CPython 3.11's header folder loses or adds spaces in non-ASCII display names and
    subjects ("100%xã"); the classic Header encoder splits encoded words inside a character run,
    which every RFC 2047 reader joins back exactly.
    """
    out = []
    for name, addr in getaddresses(list(values)):
        if name and not name.isascii():
            out.append(f"{Header(name, 'utf-8').encode(maxlinelen=70)}\n <{addr}>")
        else:
            out.append(formataddr((name, addr)))
    return ",\n ".join(out)


def build_message(rendered: Rendered, *, sender: str, to: Sequence[str], cc: Sequence[str] = (),
                  reply_to: str | None = None, day: date, now: float, tz: tzinfo,
                  message_id: str | None = None) -> Message:
    """multipart/alternative (text first, HTML preferred) with Message-ID, Date and an RFC 2047 UTF-8 subject."""
    msg = MIMEMultipart("alternative")
    msg["Subject"] = _encoded(rendered.subject, "Subject")  # type: ignore[assignment]  # compat32 takes a Header
    msg["From"] = encode_addresses([sender])
    msg["To"] = encode_addresses(to)
    if cc:
        msg["Cc"] = encode_addresses(cc)
    if reply_to:
        msg["Reply-To"] = encode_addresses([reply_to])
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, tz))
    msg["Message-ID"] = message_id or new_message_id(sender, day)
    # RFC 3834: no vacation auto-replies to a robot; the two X- headers let mail rules file the reports.
    msg["Auto-Submitted"] = "auto-generated"
    msg["Content-Language"] = rendered.language
    msg["X-TSLCD-Report"] = "daily"
    msg["X-TSLCD-Report-Day"] = day.isoformat()
    msg.attach(MIMEText(rendered.text, "plain", "utf-8"))
    msg.attach(MIMEText(rendered.html, "html", "utf-8"))
    return msg


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the server accepted; ``refused`` lists recipients it refused while accepting others."""

    message_id: str
    recipients: tuple[str, ...]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


def _secret_forms(smtp: SmtpSettings) -> list[str]:
    if smtp.password is None:
        return []
    pw = smtp.password.get_secret_value()
    user = smtp.username or ""
    forms = [pw, base64.b64encode(pw.encode()).decode(), base64.b64encode(f"\0{user}\0{pw}".encode()).decode()]
    return [s for s in forms if s]


def _safe(text: str, smtp: SmtpSettings, limit: int = 300) -> str:
    """Server text as we may log it: the password and its AUTH encodings masked, control characters out, short."""
    text = " ".join(scrub(text, _secret_forms(smtp)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reply(e: smtplib.SMTPResponseException, smtp: SmtpSettings) -> str:
    raw = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
    return f"{e.smtp_code} {_safe(raw, smtp)}"


def classify(exc: BaseException, smtp: SmtpSettings) -> MailError:
    """One place that turns smtplib, ssl and socket errors into a MailError (httpx's map_httpcore_exceptions)."""
    where = f"{smtp.host}:{smtp.effective_port}"
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailError(MailErrorKind.AUTH, f"{where} refused the username {smtp.username!r} or its password "
                         f"({_reply(exc, smtp)})", code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailError(MailErrorKind.UNSUPPORTED, f"{where}: {_safe(str(exc), smtp)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        kind = MailErrorKind.TEMPORARY if codes and all(400 <= c < 500 for c in codes) else MailErrorKind.REJECTED
        detail = "; ".join(f"{r}: {c} {_safe(m.decode('utf-8', 'replace'), smtp, 120)}"
                           for r, (c, m) in exc.recipients.items())
        return MailError(kind, f"{where} refused every recipient ({detail})", code=codes[0] if codes else None)
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = MailErrorKind.TEMPORARY if 400 <= exc.smtp_code < 500 else (
            MailErrorKind.REJECTED if 500 <= exc.smtp_code < 600 else MailErrorKind.PROTOCOL)
        what = {smtplib.SMTPSenderRefused: "refused the sender", smtplib.SMTPDataError: "refused the message",
                smtplib.SMTPHeloError: "refused EHLO", smtplib.SMTPConnectError: "refused the connection"}
        return MailError(kind, f"{where} {what.get(type(exc), 'replied')} {_reply(exc, smtp)}", code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return MailError(MailErrorKind.CONNECT, f"{where} closed the connection ({_safe(str(exc), smtp)})")
    if isinstance(exc, smtplib.SMTPException):
        text = _safe(str(exc), smtp)
        if "authentication method" in text or "AUTH extension" in text:
            return MailError(MailErrorKind.UNSUPPORTED, f"{where}: {text}")
        return MailError(MailErrorKind.PROTOCOL, f"{where}: {text}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailError(MailErrorKind.TLS, f"{where}: certificate not trusted ({exc.verify_message}); "
                         "set smtp.ca_file to the CA that signed it")
    if isinstance(exc, ssl.SSLError):
        return MailError(MailErrorKind.TLS, f"{where}: TLS failed ({exc.reason or _safe(str(exc), smtp)})")
    if isinstance(exc, socket.gaierror):
        return MailError(MailErrorKind.CONNECT, f"cannot resolve {smtp.host!r} ({exc.strerror})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return MailError(MailErrorKind.CONNECT, f"{where}: timed out after {smtp.timeout_s:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return MailError(MailErrorKind.CONNECT, f"{where}: connection refused (is the mail server running?)")
    if isinstance(exc, OSError):
        return MailError(MailErrorKind.CONNECT, f"{where}: {exc.strerror or _safe(str(exc), smtp)}")
    return MailError(MailErrorKind.PROTOCOL, f"{where}: unexpected {type(exc).__name__}: {_safe(str(exc), smtp)}")


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """Verifying context (system CAs, or ``ca_file``): the server's name must match its certificate."""
    try:
        return ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    except (OSError, ssl.SSLError) as e:
        raise MailError(MailErrorKind.TLS, f"cannot load smtp.ca_file {str(smtp.ca_file)!r}: "
                        f"{getattr(e, 'strerror', None) or e}") from None


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    if (user + password).isascii():
        client.login(user, password)
        return
    # smtplib encodes AUTH in ASCII only; RFC 4616 PLAIN carries UTF-8, so a password with
    # Vietnamese letters goes as PLAIN, by hand.
    if "plain" not in client.esmtp_features.get("auth", "").lower().split():
        raise MailError(MailErrorKind.UNSUPPORTED, "the password has non-ASCII characters, which need AUTH PLAIN, "
                        "and the server does not offer it")
    code, resp = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, resp)


def send_blocking(smtp: SmtpSettings, msg: Message, *, recipients: Sequence[str] | None = None) -> Sent:
    """Deliver ``msg`` (blocking: run it in a worker thread). Raises MailError, never anything else."""
    envelope_from = parseaddr(str(msg["From"]))[1]
    rcpts = list(recipients) if recipients is not None else [
        a for _, a in getaddresses([str(v) for v in (msg.get_all("To") or []) + (msg.get_all("Cc") or [])]) if a]
    try:
        ctx = tls_context(smtp) if smtp.security != "plain" else None
        port = smtp.effective_port
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(smtp.host, port, local_hostname=smtp.local_hostname, timeout=smtp.timeout_s,
                                      context=ctx)
        else:
            client = smtplib.SMTP(smtp.host, port, local_hostname=smtp.local_hostname, timeout=smtp.timeout_s)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailError(MailErrorKind.UNSUPPORTED, f"{smtp.host}:{port} does not offer STARTTLS "
                                    "(use security: tls on port 465, or plain on a trusted relay)")
                client.starttls(context=ctx)
                client.ehlo()
            if smtp.username is not None and smtp.password is not None:
                _login(client, smtp.username, smtp.password.get_secret_value())
            refused = client.send_message(msg, from_addr=envelope_from, to_addrs=rcpts)
    except Exception as e:  # translated in one place; the original (which may quote the server) is not chained
        raise classify(e, smtp) from None
    return Sent(str(msg["Message-ID"]), tuple(rcpts),
                {r: (c, _safe(m.decode("utf-8", "replace"), smtp, 120)) for r, (c, m) in refused.items()})


async def deliver(smtp: SmtpSettings, msg: Message, *, recipients: Sequence[str] | None = None) -> Sent:
    """``send_blocking`` in a worker thread: SMTP never blocks the event loop."""
    return await asyncio.to_thread(send_blocking, smtp, msg, recipients=recipients)


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Wait after the ``attempts``-th failure: initial, doubled each time, capped (never given up: issue 6)."""
    return min(max_s, initial_s * 2.0 ** max(0, min(attempts - 1, 30)))


