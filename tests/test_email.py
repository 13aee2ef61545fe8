"""The daily uptime email (issue 6): content, MIME, SMTP against a real aiosmtpd server, the outbox and its schedule."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import ipaddress
import logging
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from exporters.email import (
    LOW_AVAILABILITY,
    NO_CIRCUIT,
    NOT_OBSERVED,
    CommuneLine,
    DailyReport,
    MailError,
    MailErrorKind,
    OutageLine,
    Rate,
    RebootLine,
    TrendDay,
    backoff_s,
    build_message,
    deliver,
    recipients_key,
    render,
)
from exporters.fmt import Fmt
from monitor.config import EmailSettings, SmtpSettings
from monitor.core.rates import RateRow

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2025, 11, 24)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
DATA = Path(__file__).parent / "data" / "email"
PASSWORD = "Sécret-p@ss-4242"  # noqa: S105 - the test server's, and what must never reach a log
EVIL = "Phường <b>Tuy Hòa</b>"


def at(h: int, m: int, d: date = DAY) -> float:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=TZ).timestamp()


# -- a report built by hand ---------------------------------------------------------------------------


def sample_report(*, traffic: bool = True, day: date = DAY) -> DailyReport:
    """A province of 102 communes on one day: 96 connected, outages of several kinds, a commune named with HTML."""
    trend = []
    for i in range(30):
        d = day - timedelta(days=29 - i)
        if i < 3:  # before the monitor was installed
            trend.append(TrendDay(d, None, None, 0.0))
            continue
        c = 0.78 if i in (12, 13) else (1.0 if i == 20 else 0.95 + 0.01 * (i % 4))
        trend.append(TrendDay(d, c, c - 0.08 if traffic else None, 1.0))
    trend[-1] = TrendDay(day, 96 / 102, 88 / 102 if traffic else None, 0.97)
    nxt = day + timedelta(days=1)
    return DailyReport(
        province="Đắk Lắk", day=day, timezone="Asia/Ho_Chi_Minh", generated_at=at(7, 0, nxt),
        target=1.0, min_availability=0.9, in_use_min_bytes=1_000_000,
        connected=Rate(96, 102, 95 / 102), in_use=Rate(88, 102, 89 / 102), provisioned=Rate(99, 102, 99 / 102),
        coverage=0.97, traffic_known=traffic, trend=tuple(trend),
        areas=(RateRow("Đắk Lắk", "Buôn Ma Thuột", 40, 39, 38, 35), RateRow("Đắk Lắk", "Ea Kar", 32, 31, 30, 27),
               RateRow("Đắk Lắk", "Phú Yên (cũ)", 30, 29, 28, 26)),
        not_connected=(
            CommuneLine("24160", "Xã Ea Kao", "Buôn Ma Thuột", True, 0.62, 11_400, 0, 0, 0, 86_400, None,
                        LOW_AVAILABILITY),
            CommuneLine("22015", EVIL, "Phú Yên (cũ)", True, 0.71, 3600, 21_600, 0, 0, 86_400, None, LOW_AVAILABILITY),
            CommuneLine("24181", "Xã Cư Yang", "Ea Kar", True, None, 0, 0, 86_400, 0, 0, None, NOT_OBSERVED),
            CommuneLine("22045", "Phường Bình Kiến", "Phú Yên (cũ)", False, None, reason=NO_CIRCUIT),
            CommuneLine("24190", "Xã Ea Ô", "Ea Kar", False, None, reason=NO_CIRCUIT),
            CommuneLine("24196", "Xã Krông Búk", "Buôn Ma Thuột", False, None, reason=NO_CIRCUIT),
        ),
        not_in_use=(CommuneLine("24133", "Phường Buôn Ma Thuột", "Buôn Ma Thuột", True, 1.0, observed_s=86_400,
                                traffic_bytes=120_000),) if traffic else (),
        outages=(
            OutageLine("22015", EVIL, "commune", "Phú Yên (cũ)", at(8, 10), at(15, 10), 3600, 21_600, "up",
                       "AGG-PY", "Tập trung Phú Yên"),
            OutageLine("AGG-PY", "Tập trung Phú Yên", "aggregation", "Phú Yên (cũ)", at(9, 10), at(15, 10), 21_600, 0,
                       "up"),
            OutageLine("24160", "Xã Ea Kao", "commune", "Buôn Ma Thuột", at(21, 30), at(0, 0, nxt), 9000, 0,
                       "day-end"),
            OutageLine("24160", "Xã Ea Kao", "commune", "Buôn Ma Thuột", at(0, 0), at(0, 40), 2400, 0, "up",
                       began=at(22, 5, day - timedelta(days=1))),
            OutageLine("24121", "Phường Tân An", "commune", "Buôn Ma Thuột", at(13, 2), at(13, 7), 300, 0, "up"),
        ),
        reboots=(RebootLine("24121", "Phường Tân An", "Buôn Ma Thuột", 2),),
        partial=(CommuneLine("24175", "Xã Hòa Phú", "Buôn Ma Thuột", True, 1.0, 0, 0, 7200, 0, 79_200, 5_000_000),),
        dashboard_url="https://tslcd.example.gov.vn/",
        seal_digest="9f2c1a7e5b3d4c6a8e0f1b2d3c4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e",
    )


# -- a real SMTP server on loopback -------------------------------------------------------------------


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    authenticated: bool | None

    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Inbox:
    """The aiosmtpd handler: keeps what it accepts; ``replies`` (e.g. a 451) answer DATA first, one each."""

    messages: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    password: str = PASSWORD
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            # session.ssl is set after STARTTLS only; on implicit TLS the transport itself says so.
            tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                          tls, session.authenticated))
        return "250 2.0.0 OK: queued"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"tslcd"
              and auth_data.password == self.password.encode())
        return AuthResult(success=ok, handled=False)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Certs:
    """A test CA and a server certificate for 127.0.0.1 / localhost, made in tmp_path (never committed)."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = tmp_path_factory.mktemp("email-certs")
    now = datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tslcd test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "server.pem").write_bytes(cert.public_bytes(pem))
    (d / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key")


ServerFactory = Callable[..., tuple[Inbox, int]]


@pytest.fixture
def smtp_server() -> Iterator[ServerFactory]:
    """Start aiosmtpd servers on 127.0.0.1 (any number, on a free or given port); all stopped at teardown."""
    from aiosmtpd.controller import Controller

    started: list[Any] = []

    def start(*, inbox: Inbox | None = None, port: int | None = None, implicit_tls: ssl.SSLContext | None = None,
              **smtp_kwargs: Any) -> tuple[Inbox, int]:
        box = inbox or Inbox()
        if "authenticator" not in smtp_kwargs and smtp_kwargs.get("auth_required") is not False:
            smtp_kwargs["authenticator"] = box.authenticate
        smtp_kwargs.pop("auth_required", None)
        port = port or free_port()
        ctrl = Controller(box, hostname="127.0.0.1", port=port, ssl_context=implicit_tls, server_hostname="mx.test",
                          ready_timeout=10, **smtp_kwargs)
        ctrl.start()
        started.append(ctrl)
        return box, port

    try:
        yield start
    finally:
        for ctrl in started:
            ctrl.stop()


def smtp(port: int, **kw: Any) -> SmtpSettings:
    kw.setdefault("security", "plain")
    return SmtpSettings(host="127.0.0.1", port=port, timeout_s=10, **kw)


TO = ("Lãnh đạo Sở <lanhdao@tslcd.example.gov.vn>", "ttcntt@tslcd.example.gov.vn")
CC = ('"Phòng Bưu chính, Viễn thông và Công nghệ thông tin, Sở Khoa học và Công nghệ" <buuchinh@tslcd.example.gov.vn>',
      "noc@tslcd.example.gov.vn")
SENDER = "TSLCD Đắk Lắk <tslcd@tslcd.example.gov.vn>"


def message(language: str = "vi", report: DailyReport | None = None, *, message_id: str | None = None) -> Message:
    rendered = render(report or sample_report(), language=language)
    return build_message(rendered, sender=SENDER, to=TO, cc=CC, day=DAY, now=at(7, 0, DAY + timedelta(days=1)),
                         tz=TZ, message_id=message_id)


# -- content ----------------------------------------------------------------------------------------


def test_numbers_dates_and_durations_read_naturally_in_each_language() -> None:
    vi, en = Fmt("vi", TZ, DAY), Fmt("en", TZ, DAY)
    assert (vi.pct(96 / 102), en.pct(96 / 102), vi.pct(1.0), vi.pct(None)) == ("94,1%", "94.1%", "100%", "—")
    assert vi.num(1234.5) == "1.234,5" and en.num(1234.5) == "1,234.5"
    assert (vi.duration(9000), en.duration(9000), vi.duration(7200), vi.duration(45)) == (
        "2 giờ 30 phút", "2 h 30 min", "2 giờ", "45 giây")
    assert vi.time(at(0, 0, DAY + timedelta(days=1)), end=True) == "24:00"
    assert vi.time(at(22, 5, DAY - timedelta(days=1))) == "23/11 22:05"
    assert vi.day_str(DAY) == "24/11/2025" and en.day_str(DAY) == "24 Nov 2025"


def test_the_text_part_states_rates_lists_and_definitions() -> None:
    r = render(sample_report(), language="vi")
    assert r.subject == "[TSLCD Đắk Lắk] Ngày 24/11/2025: 94,1% xã kết nối (mục tiêu 100%)"
    text = r.text
    assert "Kết nối trong ngày:      94,1%  (96/102 xã; +1,0 điểm % so với hôm trước)" in text
    assert "Còn 6 xã chưa kết nối để đạt mục tiêu 100%." in text
    assert "chỉ quan sát được 97,0% thời gian" in text  # partial coverage of the day is said, not hidden
    outages = [line for line in text.splitlines() if line.startswith("- ") and "–" in line[:16]]
    assert [o[30:].split()[0] for o in outages] == ["22015", "AGG-PY", "24160", "24160", "24121"]  # longest first
    assert "không tới được sau nút AGG-PY Tập trung Phú Yên" in outages[0]
    assert "bắt đầu 23/11 22:05" in outages[3] and "còn tiếp sang ngày sau" in outages[2]
    assert "- 22045 Phường Bình Kiến (Phú Yên (cũ)): chưa có đường truyền" in text
    assert "độ sẵn sàng ≥ 90,0%" in text and "≥ 1,0 MB" in text  # the thresholds used
    assert "https://tslcd.example.gov.vn/" in text
    assert "Xã giám sát không trọn ngày (1)" in text and "quan sát được 91,7%, chưa rõ 2 giờ" in text


def test_english_by_config_and_no_traffic_figures_is_said_not_guessed() -> None:
    r = render(sample_report(traffic=False), language="en")
    assert r.subject == "[TSLCD Đắk Lắk] 24 Nov 2025: 94.1% of communes connected (target 100%)"
    assert "Connected that day:      94.1%  (96 of 102 communes; +1.0 pp on the day before)" in r.text
    assert "not measured: no uplink traffic figures (SNMP)" in r.text
    assert "Communes connected but not in use" not in r.text  # without SNMP there is no such list to give
    assert 'lang="en"' in r.html and "Connected and in use" in r.html


def test_operator_templates_override_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "email_daily.txt").write_text((DATA / "operator_override.txt").read_text(encoding="utf-8"),
                                              encoding="utf-8")
    r = render(sample_report(), language="vi", templates_dir=tmp_path)
    assert r.text.startswith("UBND tỉnh Đắk Lắk: 96/102 xã kết nối ngày 24/11/2025")
    assert "Báo cáo kết nối UBND cấp xã" in r.html  # the HTML part still comes from the package


def test_long_lists_are_capped_with_a_pointer_to_the_dashboard() -> None:
    many = tuple(CommuneLine(f"X{i:04d}", f"Xã {i}", "A", False, None, reason=NO_CIRCUIT) for i in range(40))
    r = render(replace(sample_report(), not_connected=many), language="vi", max_rows=10)
    assert "… và 30 mục khác (xem trên trang theo dõi)." in r.text
    assert r.html.count('data-reason="no_circuit"') == 10


def test_a_very_bad_day_still_fits_before_gmail_clips_the_message() -> None:
    from exporters.email import HTML_BUDGET_BYTES

    many = tuple(CommuneLine(f"X{i:04d}", f"Xã Số {i}", "Khu vực dài tên", True, 0.1, 70_000, 0, 0, 0, 86_400,
                             None, LOW_AVAILABILITY) for i in range(800))
    outs = tuple(OutageLine(c.code, c.name, "commune", c.area, at(1, 0), at(20, 0), 68_400, 0, "up") for c in many)
    r = render(replace(sample_report(), not_connected=many, outages=outs), language="vi", max_rows=500)
    assert len(r.html.encode()) <= HTML_BUDGET_BYTES
    assert "mục khác (xem trên trang theo dõi)" in r.html and "Định nghĩa và ngưỡng" in r.html


def test_a_name_with_html_is_escaped_in_the_html_part() -> None:
    html = render(sample_report(), language="vi").html
    assert EVIL not in html
    assert "Phường &lt;b&gt;Tuy Hòa&lt;/b&gt;" in html
    assert "<script" not in html.lower() and "src=" not in html.lower()  # no JavaScript, no external images


def test_each_commune_named_links_to_its_page_when_the_status_page_has_an_address() -> None:
    """Issue 15, part 1: with web.public_url set, every commune the email names links to its page there."""
    import re

    linked = render(replace(sample_report(), pages_url="https://tslcd.example.gov.vn/"), language="vi").html
    links = set(re.findall(r'href="https://tslcd\.example\.gov\.vn/node/([^"]+)"', linked))
    assert {"22015", "24160", "24121", "AGG-PY", "24175"} <= links
    plain = render(sample_report(), language="vi").html  # no status page address: no link to nowhere
    assert "/node/" not in plain


def test_settings_are_strict_and_keep_the_password_secret() -> None:
    good = {"from": SENDER, "to": list(TO), "cc": CC[0], "smtp": {"host": "mail.example.gov.vn", "username": "tslcd",
                                                                   "password": PASSWORD}}
    s = EmailSettings.model_validate(good)
    assert s.send_at == "07:00" and s.language == "vi" and s.smtp.effective_port == 587
    assert s.recipients == ("lanhdao@tslcd.example.gov.vn", "ttcntt@tslcd.example.gov.vn",
                            "buuchinh@tslcd.example.gov.vn")
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())
    bad = {**good, "send_at": "7h", "to": ["not an address"], "smtp": {"host": "m", "security": "plain",
                                                                       "username": "u", "password": "p"}}
    with pytest.raises(ValidationError) as e:
        EmailSettings.model_validate(bad)
    text = str(e.value)
    assert "HH:MM" in text and "'not an address'" in text and "password in clear" in text
    assert recipients_key(["A <x@y.vn>", "z@y.vn"]) == recipients_key(["Z@y.vn"], ["x@Y.vn"])
    assert recipients_key(["x@y.vn"]) != recipients_key(["x@y.vn", "z@y.vn"])


def test_backoff_doubles_up_to_its_cap_and_never_gives_up() -> None:
    assert [backoff_s(n, 60, 3600) for n in (1, 2, 3, 6, 7, 500)] == [60, 120, 240, 1920, 3600, 3600]


# -- the message, through a real SMTP server --------------------------------------------------------


def names_of(msg: Message, header: str) -> list[tuple[str, str]]:
    """Display names and addresses decoded as RFC 2047 says (adjacent encoded words join with no space)."""
    from email.header import decode_header, make_header
    from email.utils import getaddresses

    return [(str(make_header(decode_header(n))), a) for n, a in getaddresses([str(v) for v in msg.get_all(header, [])])]


@pytest.mark.parametrize("rate", [1.0, 0.095, 96 / 102, 0.0, 0.999])
def test_subject_and_vietnamese_names_survive_encoding(rate: float) -> None:
    import io
    from email.generator import BytesGenerator

    # CPython 3.11's own folder turned "100% xã" into "100%xã": the subject is encoded here instead.
    report = replace(sample_report(), connected=Rate(round(rate * 1000), 1000, None))
    sent = message("vi", report)
    buf = io.BytesIO()
    BytesGenerator(buf, policy=sent.policy.clone(linesep="\r\n")).flatten(sent)  # as smtplib.send_message does
    raw = buf.getvalue()
    head = raw.split(b"\r\n\r\n")[0]
    assert head.isascii() and max(len(line) for line in head.split(b"\r\n")) <= 78
    got = email.message_from_bytes(raw, policy=email.policy.default)
    assert got["Subject"] == render(report, language="vi").subject
    assert names_of(email.message_from_bytes(raw), "Cc") == [
        ("Phòng Bưu chính, Viễn thông và Công nghệ thông tin, Sở Khoa học và Công nghệ",
         "buuchinh@tslcd.example.gov.vn"),
        ("", "noc@tslcd.example.gov.vn")]
    assert names_of(email.message_from_bytes(raw), "From") == [("TSLCD Đắk Lắk", "tslcd@tslcd.example.gov.vn")]


async def test_the_report_arrives_with_headers_both_parts_rate_and_outages(smtp_server: ServerFactory) -> None:
    inbox, port = smtp_server(auth_required=False)
    sent = await deliver(smtp(port), message("vi"))
    assert inbox.count() == 1
    got = inbox.messages[0]
    assert got.mail_from == "tslcd@tslcd.example.gov.vn"
    assert sorted(got.rcpt_tos) == sorted(["lanhdao@tslcd.example.gov.vn", "ttcntt@tslcd.example.gov.vn",
                                           "buuchinh@tslcd.example.gov.vn", "noc@tslcd.example.gov.vn"])
    raw_subject = next(line for line in got.data.split(b"\r\n") if line.startswith(b"Subject:"))
    assert raw_subject.isascii() and b"=?utf-8?" in raw_subject  # RFC 2047, UTF-8
    msg = got.parsed()
    assert msg["Subject"] == "[TSLCD Đắk Lắk] Ngày 24/11/2025: 94,1% xã kết nối (mục tiêu 100%)"
    assert msg["Message-ID"] == sent.message_id and msg["Message-ID"].endswith("@tslcd.example.gov.vn>")
    assert "tslcd-daily-2025-11-24" in msg["Message-ID"]
    assert parsedate_to_datetime(msg["Date"]) == datetime(2025, 11, 25, 7, 0, tzinfo=TZ)
    assert names_of(msg, "To") == [("Lãnh đạo Sở", "lanhdao@tslcd.example.gov.vn"), ("", "ttcntt@tslcd.example.gov.vn")]
    assert [a for _, a in names_of(msg, "Cc")] == ["buuchinh@tslcd.example.gov.vn", "noc@tslcd.example.gov.vn"]
    assert msg["Auto-Submitted"] == "auto-generated" and msg["X-TSLCD-Report-Day"] == "2025-11-24"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "94,1%" in text and "94,1%" in html
    for code in ("22015", "AGG-PY", "24160", "24121"):
        assert code in text and f'data-code="{code}"' in html
    assert html.index('data-code="22015"', html.index('id="outages"')) < html.index(
        'data-code="24121"', html.index('id="outages"'))
    assert "&lt;b&gt;Tuy Hòa&lt;/b&gt;" in html


async def test_english_report_arrives_in_english(smtp_server: ServerFactory) -> None:
    inbox, port = smtp_server(auth_required=False)
    await deliver(smtp(port), message("en"))
    msg = inbox.messages[0].parsed()
    assert msg["Subject"] == "[TSLCD Đắk Lắk] 24 Nov 2025: 94.1% of communes connected (target 100%)"
    assert msg["Content-Language"] == "en"
    assert "Outages that day (longest first) (5)" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_starttls_and_auth_with_a_test_certificate(smtp_server: ServerFactory, certs: Certs) -> None:
    inbox, port = smtp_server(tls_context=certs.server_context(), require_starttls=True)
    await deliver(smtp(port, security="starttls", ca_file=certs.ca, username="tslcd",
                       password=PASSWORD), message())
    assert inbox.count() == 1 and inbox.messages[0].tls and inbox.messages[0].authenticated


async def test_implicit_tls(smtp_server: ServerFactory, certs: Certs) -> None:
    # aiosmtpd offers AUTH on implicit TLS only when told that TLS is not required (it is there already).
    inbox, port = smtp_server(implicit_tls=certs.server_context(), auth_require_tls=False)
    await deliver(smtp(port, security="tls", ca_file=certs.ca, username="tslcd", password=PASSWORD), message())
    assert inbox.count() == 1 and inbox.messages[0].tls


async def test_an_untrusted_certificate_is_a_tls_error(smtp_server: ServerFactory, certs: Certs) -> None:
    inbox, port = smtp_server(tls_context=certs.server_context(), require_starttls=True)
    with pytest.raises(MailError) as e:
        await deliver(smtp(port, security="starttls"), message())  # system CAs only: the test CA is unknown
    assert e.value.kind is MailErrorKind.TLS and "ca_file" in str(e.value)
    assert inbox.count() == 0


async def test_starttls_asked_of_a_server_without_it_is_unsupported(smtp_server: ServerFactory) -> None:
    _, port = smtp_server(auth_required=False)
    with pytest.raises(MailError) as e:
        await deliver(smtp(port, security="starttls"), message())
    assert e.value.kind is MailErrorKind.UNSUPPORTED and "STARTTLS" in str(e.value)


async def test_a_wrong_password_is_a_clear_auth_error_that_never_shows_the_password(
        smtp_server: ServerFactory, certs: Certs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    inbox, port = smtp_server(tls_context=certs.server_context(), require_starttls=True,
                              inbox=Inbox(password="the-right-one"))
    with pytest.raises(MailError) as e:
        await deliver(smtp(port, security="starttls", ca_file=certs.ca, username="tslcd", password=PASSWORD),
                      message())
    err = e.value
    assert err.kind is MailErrorKind.AUTH and err.code == 535
    assert f"127.0.0.1:{port} refused the username 'tslcd' or its password (535" in str(err)
    assert err.__cause__ is None and err.__context__ is None or PASSWORD not in repr(err.__context__)
    secrets = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(),
               base64.b64encode(f"\0tslcd\0{PASSWORD}".encode()).decode()]
    for s in secrets:
        assert s not in str(err) and s not in repr(err) and s not in caplog.text
    assert inbox.count() == 0


async def test_refused_connection_and_4xx_are_temporary_5xx_rejected(smtp_server: ServerFactory) -> None:
    with pytest.raises(MailError) as e:
        await deliver(smtp(free_port()), message())
    assert e.value.kind is MailErrorKind.CONNECT and "connection refused" in str(e.value)
    assert e.value.temporary
    inbox, port = smtp_server(auth_required=False, inbox=Inbox(replies=["451 4.3.0 Try again later",
                                                                        "554 5.6.0 Message rejected"]))
    with pytest.raises(MailError) as e:
        await deliver(smtp(port), message())
    assert e.value.kind is MailErrorKind.TEMPORARY and e.value.code == 451 and "Try again later" in str(e.value)
    with pytest.raises(MailError) as e:
        await deliver(smtp(port), message())
    assert e.value.kind is MailErrorKind.REJECTED and e.value.code == 554 and not e.value.temporary
    await deliver(smtp(port), message())
    assert inbox.count() == 1


# -- the HTML as a person sees it -------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("language", ["vi", "en"])
async def test_the_html_reads_well_in_a_browser(tmp_path: Path, browser: Any, language: str) -> None:
    html = render(sample_report(), language=language).html
    page_file = tmp_path / f"email-daily-{language}.html"
    page_file.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    seen: dict[str, Any] = {}
    for name, width in (("desktop", 760), ("phone", 390)):
        page = await browser.new_page(viewport={"width": width, "height": 900}, java_script_enabled=False)
        page.on("request", lambda r: requests.append(r.url))
        await page.goto(page_file.as_uri(), wait_until="load")
        await page.screenshot(path=str(ARTIFACTS / f"email-daily-{language}-{name}.png"), full_page=True)
        seen[name] = {
            "rate": await page.inner_text("#card-connected .value"),
            "day": await page.inner_text("#day"),
            "outages": [await r.get_attribute("data-code") for r in await page.locator("#outages tr[data-code]").all()],
            "not_connected": await page.inner_text("#not-connected"),
            "bars": await page.locator("#trend-chart tr").first.locator(":scope > td").count(),
            "footer": await page.inner_text("#footer"),
            "width": await page.evaluate("document.documentElement.scrollWidth"),
        }
        await page.close()
    d = seen["desktop"]
    assert d["rate"] == ("94,1%" if language == "vi" else "94.1%")
    assert d["day"] == ("Thứ Hai, ngày 24/11/2025" if language == "vi" else "Monday 24 November 2025")
    assert d["outages"] == ["22015", "AGG-PY", "24160", "24160", "24121"]
    assert EVIL in d["not_connected"]  # shown as text, not markup
    assert d["bars"] == 31  # the axis and 30 days
    assert ("độ sẵn sàng ≥ 90,0%" if language == "vi" else "availability ≥ 90.0%") in d["footer"]
    assert seen["phone"]["width"] <= 390  # nothing wider than a phone: no sideways scrolling
    assert all(u.startswith("file://") for u in requests)  # nothing fetched: no external images, fonts or CSS


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("language", ["vi", "en"])
async def test_the_html_fits_a_phone_whatever_the_fonts(tmp_path: Path, browser: Any, language: str) -> None:
    """Fonts differ from machine to machine: with every letter 15% wider than here, and a long unbroken
    dashboard URL, a commune name and a digest, the email still fits 390 px (long strings wrap)."""
    long = "https://tslcd.example.gov.vn/grafana/d/tslcd-province/tong-quan?orgId=1&var-area=" + "x" * 80
    report = replace(sample_report(), dashboard_url=long, seal_digest="f" * 64)
    report = replace(report, not_connected=(replace(report.not_connected[0], name="Xã" + "Ê" * 40),
                                            *report.not_connected[1:]))
    page_file = tmp_path / f"email-wide-{language}.html"
    page_file.write_text(render(report, language=language).html.replace(
        "</head>", "<style>* { letter-spacing: 0.15em !important; }</style></head>"), encoding="utf-8")
    page = await browser.new_page(viewport={"width": 390, "height": 900}, java_script_enabled=False)
    try:
        await page.goto(page_file.as_uri(), wait_until="load")
        assert "</style>" not in await page.inner_text("body")
        width = await page.evaluate("document.documentElement.scrollWidth")
    finally:
        await page.close()
    assert width <= 390

# -- from the history store -------------------------------------------------------------------------


def history(tmp_path: Path, config_extra: str = "") -> tuple[Any, Any]:
    """Three days of a small province (tests.conftest.small_inventory) in the store that tmp_path/config.yaml names.

    D-2 all up. D-1 22:05 24121 goes down, until D 00:40. D: the monitor stops 02:00-04:00;
    AGG is down 08:10-15:10, so the three communes behind it are unreachable; 22015 is down
    13:02-13:07, restarts twice and carries 5 MB; 24133 carries 120 kB. Sealed through D. The causes the monitor
    concluded: AGG's line, 22015's power, 24121's first outage filtered, the communes behind AGG upstream.
    """
    from inventory.model import Inventory
    from monitor.config import load_config
    from monitor.store import CauseRow, ChangeRow, SampleRow, SweepBatch, open_store
    from tests.conftest import small_inventory

    (tmp_path / "config.yaml").write_text(
        "province: Đắk Lắk\ninventory: inventory.yaml\nweb:\n  public_url: https://tslcd.example.gov.vn/\n"
        + config_extra, encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    store = open_store(cfg)
    t0 = at(0, 0, DAY - timedelta(days=2))
    # 24121's circuit is VNPT's (inventory: carrier), the others name none.
    inv = Inventory.of([replace(n, carrier="VNPT") if n.code == "24121" else n for n in small_inventory().nodes])
    ids = {code: u for (code, _), u in store.record_inventory(inv, t0 - 10).units.items()}
    run = store.start_run(t0, max_gap_s=3600)
    behind = ("24133", "24121", "24154")
    Change = tuple[str, str, str, str | None]
    recovered: list[Change] = [("AGG", "down", "up", None)]
    recovered += [(c, "unreachable", "up", None) for c in behind]
    events: dict[float, list[Change]] = {
        at(22, 5, DAY - timedelta(days=1)): [("24121", "up", "down", None)],
        at(0, 40): [("24121", "down", "up", None)],
        at(8, 10): [("AGG", "up", "down", None)] + [(c, "up", "unreachable", "AGG") for c in behind],
        at(13, 2): [("22015", "up", "down", None)],
        at(13, 7): [("22015", "down", "up", None)],
        at(15, 10): recovered,
    }
    store.write_sweep(SweepBatch(run, t0, [ChangeRow(ids[c], t0, "unknown", "up")
                                           for c in ("CORE", "AGG", "24133", "24121", "24154", "22015")]))
    for t in sorted({t0 + k * 1800 for k in range(1, 3 * 48 + 1)} | set(events)):
        if at(2, 0) < t < at(4, 0):
            continue  # the monitor was not running
        store.write_sweep(SweepBatch(run, t, [ChangeRow(ids[c], t, old, new, cause)
                                              for c, old, new, cause in events.get(t, [])]))
    causes = [CauseRow(ids["AGG"], at(8, 10), at(15, 10), "line"),
              CauseRow(ids["22015"], at(13, 2), at(13, 7), "power"),
              CauseRow(ids["24121"], at(22, 5, DAY - timedelta(days=1)), at(0, 40), "filtered")]
    causes += [CauseRow(ids[c], at(8, 10), at(15, 10), "upstream") for c in behind]
    # 22015 is dual-stack and its IPv6 address answered; 24133's was probed and never answered.
    store.write_sweep(SweepBatch(run, None, (), [SampleRow(DAY, ids["22015"], bytes_in=5_000_000, reboots=2,
                                                           v6_samples=44, v6_ok=40),
                                                 SampleRow(DAY, ids["24133"], bytes_in=120_000, v6_samples=44,
                                                           v6_ok=0)], causes))
    from monitor.core.maintenance import MaintenanceWindow

    store.add_window(MaintenanceWindow(0, at(20, 0), at(21, 0), codes=("22045",), reason="kiểm tra / inspection",
                                       declared_by="ops", declared_at=at(19, 0)))
    store.seal_due(at(7, 0, DAY + timedelta(days=1)), TZ, 3600)
    return store, cfg


def test_the_report_counts_a_history_the_test_built(tmp_path: Path) -> None:
    from exporters.email import report_from_store

    store, cfg = history(tmp_path)
    try:
        r = report_from_store(store, cfg, DAY, now=at(7, 0, DAY + timedelta(days=1)))
        seal = store.seals(DAY, DAY)[0]
    finally:
        store.close()
    assert (r.connected.count, r.connected.total, r.connected.previous) == (1, 5, 0.8)  # only 22015 of 5
    assert (r.in_use.count, r.in_use.previous) == (1, None)  # no traffic figures the day before: not 0%
    assert r.provisioned.count == 4 and r.coverage == pytest.approx(22 / 24)
    assert [(t.day, t.connected) for t in r.trend if t.connected is not None] == [
        (DAY - timedelta(days=2), 0.8), (DAY - timedelta(days=1), 0.8), (DAY, 0.2)]
    assert len(r.trend) == 30
    assert [(a.area, a.communes, a.connected) for a in r.areas] == [("A", 3, 0), ("B", 2, 1)]
    assert [(c.code, c.reason) for c in r.not_connected] == [
        ("24121", LOW_AVAILABILITY), ("24133", LOW_AVAILABILITY), ("24154", LOW_AVAILABILITY), ("22045", NO_CIRCUIT)]
    assert r.not_connected[0].outage_s == 7 * 3600 + 40 * 60
    assert [(o.code, round(o.duration_s)) for o in r.outages] == [
        ("24121", 25_200), ("24133", 25_200), ("24154", 25_200), ("AGG", 25_200), ("24121", 2400), ("22015", 300)]
    assert r.outages[0].cause_code == "AGG" and r.outages[0].cause_name == "Tập trung"
    assert [o.why for o in r.outages] == ["upstream", "upstream", "upstream", "line", "filtered", "power"]
    assert (r.ipv6.count, r.ipv6.total, r.ipv6.previous) == (1, 5, 0.0)  # IPv6 readiness (issue 17, part 5)
    text = render(r, language="en").text
    assert "By cause: upstream node 3 · power or reboot 1 · line 1 · ping filtered (SNMP answers) 1" in text
    assert ": down: power or reboot" in text and ": down: line" in text
    assert "IPv6 readiness: 20.0% (1/5 communes whose IPv6 address answered that day)" in text
    # The maintenance of the day and why (issue 17, part 3).
    assert [(m.nodes, m.reason, m.declared_by) for m in r.maintenance] == [("22045", "kiểm tra / inspection", "ops")]
    assert "Maintenance that day (left out of availability) (1)" in text
    assert "- 20:00–21:00  22045 (and the nodes behind): kiểm tra / inspection; declared by ops" in text
    assert [(c.code, c.carrier) for c in r.not_connected][:2] == [("24121", "VNPT"), ("24133", None)]
    assert "- 24121 Phường Tân An (A): availability" in text and "; carrier VNPT\n" in text
    vi = render(r, language="vi")
    assert '<span class="carrier" style="font-size:12px;color:#5b6673;">Nhà mạng: VNPT</span>' in vi.html
    assert "Theo nguyên nhân: do nút phía trên 3 · mất điện / khởi động lại 1" in vi.text
    assert 'id="by-cause"' in vi.html and "mất kết nối: đứt đường truyền" in vi.html
    assert "Sẵn sàng IPv6: 20,0% (1/5 xã có địa chỉ IPv6 trả lời trong ngày)" in vi.html
    assert r.outages[4].began == at(22, 5, DAY - timedelta(days=1))  # it began the day before
    assert [(b.code, b.reboots) for b in r.reboots] == [("22015", 2)]
    assert r.partial == ()  # the monitor's own gap is the coverage line, not 5 communes listed
    assert r.seal_digest == seal.digest and r.dashboard_url == "https://tslcd.example.gov.vn/"


def test_the_trend_of_a_monitor_that_ran_3_days_of_30_is_those_3_days(tmp_path: Path) -> None:
    """The email's 30-day trend over a history of 3 observed days: 27 days "no data" (no bar, not 0%), and the
    mean, lowest and highest are those of the 3 days (issue 16: unobserved is not disconnected)."""
    from exporters.email import report_from_store

    store, cfg = history(tmp_path)
    try:
        r = report_from_store(store, cfg, DAY, now=at(7, 0, DAY + timedelta(days=1)))
    finally:
        store.close()
    assert len(r.trend) == 30 and sum(1 for t in r.trend if t.connected is None) == 27
    text = render(r, language="en").text
    assert "Mean 60.0% · lowest 20.0% (24 Nov) · highest 80.0% (23 Nov) · target met on 0 of 3 days" in text


def test_report_daily_out_renders_without_sending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from monitor.cli import report as mail_cli

    history(tmp_path)[0].close()
    parser = argparse.ArgumentParser(prog="tslcd")
    mail_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "report.html"
    args = parser.parse_args(["report", "daily", "--config", str(tmp_path / "config.yaml"), "--date", "2025-11-24",
                              "--out", str(out)])
    assert mail_cli.run(args) == 0
    html = out.read_text(encoding="utf-8")
    assert "Thứ Hai, ngày 24/11/2025" in html and "20,0%" in html and "&lt;b&gt;Tuy Hòa&lt;/b&gt;" in html
    assert "wrote" in capsys.readouterr().out
    args = parser.parse_args(["report", "daily", "--config", str(tmp_path / "config.yaml"), "--date", "2025-11-24",
                              "--lang", "en", "--out", "-"])
    assert mail_cli.run(args) == 0
    assert "Connected that day:      20.0%  (1 of 5 communes; −60.0 pp on the day before)" in capsys.readouterr().out
    args = parser.parse_args(["report", "daily", "--config", str(tmp_path / "config.yaml")])
    assert mail_cli.run(args) == 1 and "nothing to do" in capsys.readouterr().err


def has_email_config() -> bool:
    from monitor.config import Config

    return "email" in Config.model_fields


def report_cli(tmp_path: Path, port: int) -> tuple[Any, Any]:
    """`tslcd report daily` as the command line parses it, over history() with an email: section for ``port``."""
    import argparse

    from monitor.cli import report as mail_cli

    email_yaml = ("email:\n  from: tslcd@tslcd.example.gov.vn\n  to: [lanhdao@tslcd.example.gov.vn]\n  language: en\n"
                  f"  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: plain\n")
    history(tmp_path, email_yaml)[0].close()
    parser = argparse.ArgumentParser(prog="tslcd")
    mail_cli.add_parser(parser.add_subparsers(dest="command"))
    return mail_cli, parser


@pytest.mark.skipif(not has_email_config(), reason="monitor.config.Config has no email: field yet (the lead adds it)")
async def test_report_daily_send_goes_to_the_configured_list_once_or_to_to(
        tmp_path: Path, smtp_server: ServerFactory, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    inbox, port = smtp_server(auth_required=False)
    mail_cli, parser = report_cli(tmp_path, port)
    cfg = str(tmp_path / "config.yaml")
    # Blocking SMTP, as on the command line: in a thread, never in this test's event loop.
    assert await asyncio.to_thread(mail_cli.run, parser.parse_args(
        ["report", "daily", "--config", cfg, "--date", "2025-11-24", "--send"])) == 0
    assert inbox.count() == 1 and inbox.messages[0].parsed()["Subject"].startswith("[TSLCD Đắk Lắk] 24 Nov 2025")
    assert await asyncio.to_thread(mail_cli.run, parser.parse_args(
        ["report", "daily", "--config", cfg, "--date", "2025-11-24", "--send", "--to", "me@example.gov.vn"])) == 0
    assert inbox.messages[1].rcpt_tos == ["me@example.gov.vn"]
    m, _ = mailer(tmp_path, settings(port, to=["lanhdao@tslcd.example.gov.vn"], cc=[]),
                  Clock(at(9, 0, DAY + timedelta(days=1))))
    try:
        assert await m.run_due() == []  # sent by hand to that list already: the scheduler does not repeat it
    finally:
        m.store.close()
    assert inbox.count() == 2 and "Message-ID" in capsys.readouterr().out


# -- the outbox and its schedule ---------------------------------------------------------------------


def test_migration_0002_creates_the_outbox_table_the_mailer_uses(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import MetaData

    from monitor.store import SqlStore
    from monitor.store.schema import email_outbox

    store = SqlStore(store_url)
    only = MetaData()
    email_outbox.to_metadata(only)
    try:
        with store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), only)
    finally:
        store.close()
    assert [d for d in diffs if "email_outbox" in repr(d)] == []


@dataclass
class Clock:
    """The mailer's clock, moved by the test."""

    now: float

    def __call__(self) -> float:
        return self.now


def settings(port: int, **kw: Any) -> EmailSettings:
    smtp_kw = kw.pop("smtp", {})
    return EmailSettings.model_validate({"from": SENDER, "to": list(TO), "cc": list(CC), "retry_initial_s": 60,
                                         "smtp": {"host": "127.0.0.1", "port": port, "security": "plain",
                                                  "timeout_s": 10, **smtp_kw}, **kw})


def mailer(tmp_path: Path, st: EmailSettings, clock: Clock) -> tuple[Any, Any]:
    """A fresh Mailer, as after a start of the service, on the history store of tmp_path, with its own registry."""
    from prometheus_client import CollectorRegistry

    from monitor.config import load_config
    from monitor.runtime.mailer import Mailer
    from monitor.store import open_store

    registry = CollectorRegistry()
    cfg = load_config(tmp_path / "config.yaml")
    return Mailer(cfg, st, open_store(cfg), registry=registry, clock=clock), registry


async def test_smtp_down_then_4xx_then_accepting_delivers_exactly_once(
        tmp_path: Path, store_url: str, smtp_server: ServerFactory) -> None:
    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    port = free_port()  # nothing listens yet: the mail server is down
    clock = Clock(at(7, 0, DAY + timedelta(days=1)))
    m, registry = mailer(tmp_path, settings(port), clock)
    try:
        first = await m.run_due()
        assert [(a.day, a.sent) for a in first] == [(DAY, False)] and "connection refused" in (first[0].error or "")
        (row,) = m.outbox.rows()
        assert (row.status, row.attempts, row.next_try) == ("pending", 1, clock.now + 60)
        assert registry.get_sample_value("tslcd_email_failures_total", {"reason": "connect"}) == 1
        clock.now += 30
        assert await m.run_due() == []  # not due again before its backoff
        inbox, _ = smtp_server(port=port, auth_required=False, inbox=Inbox(replies=["451 4.7.1 Greylisted"]))
        clock.now += 31
        second = await m.run_due()
        assert not second[0].sent and "451" in (second[0].error or "")
        assert registry.get_sample_value("tslcd_email_failures_total", {"reason": "temporary"}) == 1
        assert m.outbox.rows()[0].next_try == clock.now + 120  # backed off: doubled
        for _ in range(3):  # triggers keep coming (cron, retry job); only a due row is tried
            clock.now += 121
            await m.run_due()
        assert inbox.count() == 1
        (row,) = m.outbox.rows()
        assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
        msg = inbox.messages[0].parsed()
        assert msg["Message-ID"] == row.message_id == first[0].message_id  # one Message-ID across the retries
        assert msg["X-TSLCD-Report-Day"] == "2025-11-24"
        assert registry.get_sample_value("tslcd_email_last_success_timestamp_seconds") == row.sent_at
    finally:
        m.store.close()


async def test_service_stopped_over_the_send_time_sends_each_missed_report_once(
        tmp_path: Path, store_url: str, smtp_server: ServerFactory) -> None:
    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    inbox, port = smtp_server(auth_required=False)
    st = settings(port)
    # Running on D-1 after 07:00: the report on D-2 (the first day observed) goes out.
    m, _ = mailer(tmp_path, st, Clock(at(7, 30, DAY - timedelta(days=1))))
    assert [a.day for a in await m.run_due() if a.sent] == [DAY - timedelta(days=2)]
    m.store.close()
    # Stopped over D's send time; started on D+1 at 06:59: D-1's report (missed) goes out, D's is not due yet.
    m, _ = mailer(tmp_path, st, Clock(at(6, 59, DAY + timedelta(days=1))))
    assert [a.day for a in await m.run_due() if a.sent] == [DAY - timedelta(days=1)]
    m.store.close()
    # Stopped again, over D+1's 07:00; started at 09:45: D's report goes out, once.
    m, registry = mailer(tmp_path, st, Clock(at(9, 45, DAY + timedelta(days=1))))
    try:
        assert [a.day for a in await m.run_due() if a.sent] == [DAY]
        assert await m.run_due() == []
        sent_at = max(r.sent_at or 0 for r in m.outbox.rows())
    finally:
        m.store.close()
    m, registry = mailer(tmp_path, st, Clock(at(9, 46, DAY + timedelta(days=1))))  # and once more restarted
    try:
        assert await m.run_due() == []
        assert registry.get_sample_value("tslcd_email_last_success_timestamp_seconds") == sent_at  # from the store
    finally:
        m.store.close()
    days = [r.parsed()["X-TSLCD-Report-Day"] for r in inbox.messages]
    assert days == ["2025-11-22", "2025-11-23", "2025-11-24"]  # each day once, none twice


async def test_the_cron_job_fires_at_the_configured_local_time(tmp_path: Path, store_url: str) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    m, _ = mailer(tmp_path, settings(free_port(), send_at="06:30", timezone="Asia/Ho_Chi_Minh"),
                  Clock(at(6, 0)))
    scheduler = AsyncIOScheduler(timezone=TZ)
    try:
        m.attach(scheduler)
        jobs = {j.id: j for j in scheduler.get_jobs()}
        assert set(jobs) == {"email-daily", "email-outbox"}
        fire = jobs["email-daily"].trigger.get_next_fire_time(None, datetime(2025, 11, 24, 6, 0, tzinfo=TZ))
        assert fire == datetime(2025, 11, 24, 6, 30, tzinfo=TZ)
        assert m.latest_due_day(at(6, 29)) == DAY - timedelta(days=2)
        assert m.latest_due_day(at(6, 30)) == DAY - timedelta(days=1)
    finally:
        m.store.close()


async def test_a_wrong_password_is_retried_and_the_password_never_logged(
        tmp_path: Path, store_url: str, smtp_server: ServerFactory, certs: Certs,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    box = Inbox(password="not-yet-set-on-the-server")
    inbox, port = smtp_server(tls_context=certs.server_context(), require_starttls=True, inbox=box)
    st = settings(port, smtp={"security": "starttls", "ca_file": str(certs.ca), "username": "tslcd",
                              "password": PASSWORD})
    clock = Clock(at(7, 0, DAY + timedelta(days=1)))
    m, registry = mailer(tmp_path, st, clock)
    try:
        (a,) = await m.run_due()
        assert not a.sent and (a.error or "").startswith("auth: ") and "refused the username 'tslcd'" in (a.error or "")
        assert registry.get_sample_value("tslcd_email_failures_total", {"reason": "auth"}) == 1
        row = m.outbox.rows()[0]
        box.password = PASSWORD  # the mail administrator fixes the account
        clock.now += 61
        (a,) = await m.run_due()
        assert a.sent and inbox.count() == 1 and inbox.messages[0].authenticated
    finally:
        m.store.close()
    for secret in (PASSWORD, base64.b64encode(f"\0tslcd\0{PASSWORD}".encode()).decode()):
        assert secret not in caplog.text and secret not in (row.last_error or "")
    assert "daily report not sent; will retry" in caplog.text


async def test_a_new_recipient_list_gets_the_reports_the_old_one_had_not_received(
        tmp_path: Path, store_url: str, smtp_server: ServerFactory) -> None:
    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    port = free_port()
    clock = Clock(at(7, 0, DAY + timedelta(days=1)))
    m, _ = mailer(tmp_path, settings(port), clock)
    assert not (await m.run_due())[0].sent  # the server is down
    m.store.close()
    inbox, _ = smtp_server(port=port, auth_required=False)
    clock.now += 3600
    m, _ = mailer(tmp_path, settings(port, to=["lanhdao@tslcd.example.gov.vn"], cc=[], language="en"), clock)
    try:
        assert [a.day for a in await m.run_due() if a.sent] == [DAY]
        statuses = sorted(r.status for r in m.outbox.rows())
    finally:
        m.store.close()
    assert statuses == ["sent", "superseded"]
    assert inbox.count() == 1 and inbox.messages[0].rcpt_tos == ["lanhdao@tslcd.example.gov.vn"]
    msg = inbox.messages[0].parsed()
    assert msg["Subject"] == "[TSLCD Đắk Lắk] 24 Nov 2025: 20.0% of communes connected (target 100%)"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "- 08:10–15:10  7 h            24121 Phường Tân An (A): unreachable behind AGG Tập trung" in text


async def test_two_mailers_on_one_store_send_a_report_once(tmp_path: Path, store_url: str,
                                                             smtp_server: ServerFactory) -> None:
    import asyncio

    history(tmp_path, f"store:\n  url: {store_url}\n")[0].close()
    inbox, port = smtp_server(auth_required=False)
    clock = Clock(at(7, 0, DAY + timedelta(days=1)))
    a, _ = mailer(tmp_path, settings(port), clock)
    b, _ = mailer(tmp_path, settings(port), clock)  # e.g. `tslcd run` started twice by mistake
    try:
        results = await asyncio.gather(a.run_due(), b.run_due())
    finally:
        a.store.close()
        b.store.close()
    assert sum(x.sent for r in results for x in r) == 1  # the outbox claim lets one of them send
    assert inbox.count() == 1


def test_email_timezone_moves_the_send_time_never_the_days() -> None:
    from types import SimpleNamespace

    from exporters.email import report_tz, send_tz

    cfg = SimpleNamespace(timezone="Asia/Ho_Chi_Minh")
    settings = SimpleNamespace(timezone="Asia/Tokyo")
    assert str(report_tz(cfg, settings)) == "Asia/Ho_Chi_Minh"  # type: ignore[arg-type]
    assert str(send_tz(cfg, settings)) == "Asia/Tokyo"  # type: ignore[arg-type]
    assert str(send_tz(cfg, None)) == "Asia/Ho_Chi_Minh"


async def test_a_day_goes_out_once_unless_resent_on_purpose(
        tmp_path: Path, smtp_server: ServerFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """A second --send of a day already delivered to the configured list refuses and says when it went;
    --resend sends it again, with a new Message-ID, and the outbox records it."""
    import asyncio

    from monitor.store import open_store

    inbox, port = smtp_server(auth_required=False)
    mail_cli, parser = report_cli(tmp_path, port)
    base = ["report", "daily", "--config", str(tmp_path / "config.yaml"), "--date", "2025-11-24"]
    assert await asyncio.to_thread(mail_cli.run, parser.parse_args([*base, "--send"])) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(mail_cli.run, parser.parse_args([*base, "--send"])) == 1
    err = capsys.readouterr().err
    assert "already sent" in err and "--resend" in err and inbox.count() == 1
    assert await asyncio.to_thread(mail_cli.run, parser.parse_args([*base, "--resend"])) == 0
    assert inbox.count() == 2
    first, second = (m.parsed()["Message-ID"] for m in inbox.messages)
    assert first != second
    from monitor.config import load_config

    store = open_store(load_config(tmp_path / "config.yaml"), create=False)
    try:
        (row,) = store.outbox().rows()
    finally:
        store.close()
    assert row.status == "sent" and row.attempts == 2 and row.message_id == second
    assert row.last_error is not None and first in row.last_error and "resent by hand" in row.last_error


@pytest.mark.parametrize("language", ["vi", "en"])
def test_a_day_nothing_was_observed_says_no_data_not_target_met(language: str) -> None:
    none = Rate(0, 0, None)
    report = replace(sample_report(), connected=none, in_use=none, coverage=0.0)
    text = render(report, language=language).text
    assert ("Không có số liệu" if language == "vi" else "No data: the monitor observed no commune that day.") in text
    assert ("Đạt mục tiêu" if language == "vi" else "Target 100% met") not in text
