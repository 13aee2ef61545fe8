"""The daily uptime email (issue 6): settings, content as plain values, rendering, the MIME message, SMTP delivery.

Sections, in order:

- ``EmailSettings``: the ``email:`` section of config.yaml (secrets as SecretStr).
- ``DailyReport``: everything the email says, as plain values (``report_from_store`` builds it
  from the history store, counting with monitor.history like the audit and the status page).
- ``render``: the report through jinja2 templates (Vietnamese or English; an operator's folder
  overrides the shipped templates) into a subject, an HTML body and a plain-text body.
- ``build_message``: multipart/alternative with Message-ID, Date and an encoded subject.
- ``send_blocking`` / ``deliver``: SMTP (plain, STARTTLS, implicit TLS; AUTH). Every failure
  becomes one ``MailError`` whose ``kind`` is a bounded classification and whose message never
  holds the password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import smtplib
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

if TYPE_CHECKING:  # monitor.config will import this module for EmailSettings: no import cycle at run time
    from monitor.config import Config
    from monitor.store import HistoryStore

TEMPLATE_HTML = "email_daily.html"
HTML_BUDGET_BYTES = 90_000  # under Gmail's clipping size, with room for the MIME headers
TEMPLATE_TEXT = "email_daily.txt"
Language = Literal["vi", "en"]

# -- settings ---------------------------------------------------------------------------------------


def check_address(value: str) -> str:
    name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr or "." not in domain.strip("."):
        raise ValueError(f"expected an email address such as tslcd@example.gov.vn or \"Name <addr>\", got {value!r}")
    return value


def _check_hhmm(value: str) -> str:
    hh, sep, mm = value.partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit()) or not (0 <= int(hh) <= 23 and 0 <= int(mm) <= 59):
        raise ValueError(f"expected a local time HH:MM such as 07:00, got {value!r}")
    return f"{int(hh):02d}:{int(mm):02d}"


class SmtpSettings(BaseModel):
    """How to reach the mail server. The password comes from ``${ENV}`` or ``password_file``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535, description="default: 25 plain, 587 starttls, 465 tls")
    security: Literal["plain", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="PEM bundle that signs the server's certificate (private CA)")
    timeout_s: float = Field(30.0, gt=0, le=600)
    local_hostname: str | None = Field(None, description="name sent in EHLO (default: this machine's FQDN)")
    allow_plain_auth: bool = Field(False, description="allow AUTH without TLS (the password crosses in clear)")

    @model_validator(mode="after")
    def _sane(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password (or password_file), or neither")
        if self.username is not None and self.security == "plain" and not self.allow_plain_auth:
            raise ValueError("AUTH over plain SMTP sends the password in clear: use security starttls or tls "
                             "(or set allow_plain_auth: true for a relay on a trusted network)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"plain": 25, "starttls": 587, "tls": 465}[self.security]


class EmailSettings(BaseModel):
    """The ``email:`` section: who gets the daily report, when, in which language, through which server."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    sender: str = Field(alias="from", description="From: address, e.g. \"TSLCD Đắk Lắk <tslcd@example.gov.vn>\"")
    to: tuple[str, ...] = Field(min_length=1)
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    send_at: str = Field("07:00", description="local time of the daily send (HH:MM)")
    timezone: str | None = Field(None, description="IANA zone of send_at (default: the config's); the "
                                 "report's days are always the province's")
    language: Language = "vi"
    templates_dir: Path | None = Field(None, description="folder whose email_daily.html/.txt override the shipped "
                                                         "ones (relative to the config file)")
    dashboard_url: str = Field("", description="link in the footer (default: web.public_url)")
    trend_days: int = Field(30, ge=7, le=90)
    max_rows: int = Field(100, ge=5, le=5000, description="rows per list before \"and N more\"")
    catch_up_days: int = Field(7, ge=1, le=60, description="after a stop, send the missed days' reports, at most "
                                                            "this many")
    retry_initial_s: float = Field(60.0, ge=1, le=86_400, description="first retry after a failed send")
    retry_max_s: float = Field(3600.0, ge=1, le=86_400, description="retries back off up to this")
    smtp: SmtpSettings

    @field_validator("sender", "reply_to")
    @classmethod
    def _one_address(cls, v: str | None) -> str | None:
        return None if v is None else check_address(v)

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_address(a) for a in v)

    @field_validator("send_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return _check_hhmm(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {v!r} (expected an IANA name such as Asia/Ho_Chi_Minh)") from None
        return v

    @model_validator(mode="after")
    def _backoff(self) -> EmailSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self

    @property
    def send_time(self) -> tuple[int, int]:
        hh, mm = self.send_at.split(":")
        return int(hh), int(mm)

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients: the bare addresses of To and Cc, without duplicates, in order."""
        seen: dict[str, None] = {}
        for _, addr in getaddresses(list(self.to + self.cc)):
            seen.setdefault(addr, None)
        return tuple(seen)


def email_settings_of(cfg: Any) -> EmailSettings | None:
    """The config's ``email`` section (None: no daily email), also while Config has no such field yet."""
    found = getattr(cfg, "email", None)
    return found if isinstance(found, EmailSettings) else None


def recipients_key(to: Sequence[str], cc: Sequence[str] = ()) -> str:
    """Identity of a recipient list for "exactly once per day and list": order, case and display names ignored."""
    addrs = sorted({a.lower() for _, a in getaddresses([*to, *cc]) if a})
    return hashlib.sha256("\n".join(addrs).encode()).hexdigest()[:32]


def report_tz(cfg: Any, settings: EmailSettings | None = None) -> ZoneInfo:
    """The zone of the report's day: always the province's (config ``timezone``).

    Days are rolled up and sealed in that zone; a report cutting them elsewhere would mix
    two definitions of a day. ``email.timezone`` only moves the send time (``send_tz``).
    """
    return ZoneInfo(getattr(cfg, "timezone", "Asia/Ho_Chi_Minh"))


def send_tz(cfg: Any, settings: EmailSettings | None) -> ZoneInfo:
    """The zone of ``email.send_at``: email.timezone, else the config's."""
    return ZoneInfo(settings.timezone) if settings and settings.timezone else report_tz(cfg)


# -- the report, as plain values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` of ``total`` communes; ``previous`` is the same rate the day before (None: no data then)."""

    count: int
    total: int
    previous: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def change(self) -> float | None:
        return None if self.previous is None else self.rate - self.previous


@dataclass(frozen=True, slots=True)
class TrendDay:
    """One day of the trend; rates are None when the monitor observed nothing that day."""

    day: date
    connected: float | None
    in_use: float | None
    coverage: float


@dataclass(frozen=True, slots=True)
class AreaLine:
    """Counts of one area on the report's day."""

    area: str
    communes: int
    provisioned: int
    connected: int
    in_use: int

    @property
    def connected_rate(self) -> float:
        return self.connected / self.communes if self.communes else 0.0

    @property
    def in_use_rate(self) -> float:
        return self.in_use / self.communes if self.communes else 0.0


# Why a commune is listed as not connected.
NO_CIRCUIT = "no_circuit"  # no TSLCD circuit (address) yet: never probed, counts as not connected
NOT_OBSERVED = "not_observed"  # the monitor saw none of its day (all unknown or maintenance)
LOW_AVAILABILITY = "low_availability"  # observed, availability below the threshold


@dataclass(frozen=True, slots=True)
class CommuneLine:
    """One commune's day, for the lists (not connected, not in use, partial coverage)."""

    code: str
    name: str
    area: str
    provisioned: bool
    availability: float | None
    down_s: float = 0.0
    unreachable_s: float = 0.0
    unknown_s: float = 0.0
    maintenance_s: float = 0.0
    observed_s: float = 0.0
    traffic_bytes: int | None = None
    reason: str = ""

    @property
    def outage_s(self) -> float:
        return self.down_s + self.unreachable_s

    @property
    def coverage(self) -> float:
        total = self.observed_s + self.unknown_s + self.maintenance_s
        return self.observed_s / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class OutageLine:
    """One outage (down or unreachable) of one node on the report's day, clipped to the day.

    ``began`` is when it really started when it went on from the day before; ``ended_by``
    is the state that ended it, or monitor.history's "day-end" / "not-observed".
    """

    code: str
    name: str
    kind: str
    area: str
    start: float
    end: float
    down_s: float
    unreachable_s: float
    ended_by: str
    cause_code: str | None = None
    cause_name: str = ""
    began: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RebootLine:
    """A node whose device restarted during the day (SNMP sysUpTime went back)."""

    code: str
    name: str
    area: str
    reboots: int


@dataclass(frozen=True, slots=True)
class DailyReport:
    """Everything the daily email says about one local day, as plain values."""

    province: str
    day: date
    timezone: str
    generated_at: float
    target: float
    min_availability: float
    in_use_min_bytes: int
    connected: Rate
    in_use: Rate
    provisioned: Rate
    coverage: float  # share of the day the monitor was observing
    traffic_known: bool  # some commune had uplink traffic figures (SNMP) that day
    trend: tuple[TrendDay, ...] = ()
    areas: tuple[AreaLine, ...] = ()
    not_connected: tuple[CommuneLine, ...] = ()
    not_in_use: tuple[CommuneLine, ...] = ()
    outages: tuple[OutageLine, ...] = ()
    reboots: tuple[RebootLine, ...] = ()
    partial: tuple[CommuneLine, ...] = ()
    dashboard_url: str = ""
    seal_digest: str | None = None  # the day's hash-chain digest once sealed (auditors can verify it)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# -- building the report from the history store -----------------------------------------------------


def report_from_store(store: HistoryStore, cfg: Config, day: date, *, settings: EmailSettings | None = None,
                      now: float | None = None, tz: tzinfo | None = None) -> DailyReport:
    """The report on ``day`` from the history store, counted with monitor.history (blocking: call from a thread)."""
    import time as _time

    from monitor.history import (
        ENDED_DAY_END,
        day_rates,
        is_connected,
        is_in_use,
        merge_outages,
    )
    from monitor.store import commune_days

    zone = tz or report_tz(cfg, settings)
    rates_cfg = cfg.rates
    min_av, min_bytes = rates_cfg.connected_min_availability, rates_cfg.in_use_min_bytes
    trend_days = settings.trend_days if settings else 30
    first = day - timedelta(days=trend_days - 1)
    nodes_by_version: dict[int, dict[int, Any]] = {}

    def nodes_of(version: int | None) -> dict[int, Any]:
        if version is None:
            return {}
        if version not in nodes_by_version:
            nodes_by_version[version] = {n.unit: n for n in store.inventory_nodes(version)}
        return nodes_by_version[version]

    hist = {h.day: h for h in store.history(first, day, zone)}
    trend: list[TrendDay] = []
    province_rates: dict[date, Any] = {}
    traffic_on: dict[date, bool] = {}
    for d in sorted(hist):
        h = hist[d]
        cds = commune_days(h, nodes_of(h.inventory_version).values())
        rows = day_rates(d, cds, min_availability=min_av, in_use_min_bytes=min_bytes)
        prov = next((r for r in rows if r.area == "" and r.province == cfg.province), None)
        if prov is None:
            prov = next((r for r in rows if r.area == ""), None)
        seen = h.observed_s > 0 and prov is not None and prov.communes > 0
        province_rates[d] = prov if seen else None
        # No commune with uplink figures (no SNMP): "in use" was not measured that day, which is not 0%.
        traffic_on[d] = any(c.traffic_bytes is not None for c in cds)
        trend.append(TrendDay(d, prov.connected_rate if seen and prov else None,
                              prov.in_use_rate if seen and prov and traffic_on[d] else None, h.coverage))

    h = hist[day]
    nodes = nodes_of(h.inventory_version)
    communes = commune_days(h, nodes.values())
    rows = day_rates(day, communes, min_availability=min_av, in_use_min_bytes=min_bytes)
    province = next((r for r in rows if r.area == "" and r.province == cfg.province), None)
    today = province or next((r for r in rows if r.area == ""), None)
    yesterday_h = hist.get(day - timedelta(days=1))
    before = province_rates.get(day - timedelta(days=1))
    traffic_known = traffic_on.get(day, False)

    total = today.communes if today else len(communes)
    connected = Rate(today.connected if today else 0, total, before.connected_rate if before else None)
    in_use = Rate(today.in_use if today else 0, total,
                  before.in_use_rate if before and traffic_on.get(day - timedelta(days=1)) else None)
    provisioned = Rate(today.provisioned if today else 0, total, before.provisioned_rate if before else None)
    areas = tuple(AreaLine(r.area, r.communes, r.provisioned, r.connected, r.in_use)
                  for r in rows if r.area and (today is None or r.province == today.province))

    def line(c: Any, reason: str = "") -> CommuneLine:
        s = c.seconds
        return CommuneLine(c.code, c.name, c.area, c.provisioned, s.availability, s.down, s.unreachable, s.unknown,
                           s.maintenance, s.observed, c.traffic_bytes, reason)

    monitor_gap_s = max(0.0, h.day_s - h.observed_s)
    not_connected: list[CommuneLine] = []
    not_in_use: list[CommuneLine] = []
    partial: list[CommuneLine] = []
    for c in communes:
        if not c.provisioned:
            not_connected.append(line(c, NO_CIRCUIT))
            continue
        if not is_connected(c.seconds, min_av):
            not_connected.append(line(c, NOT_OBSERVED if c.seconds.observed <= 0 else LOW_AVAILABILITY))
        elif traffic_known and not is_in_use(c.seconds, c.traffic_bytes, min_availability=min_av,
                                             in_use_min_bytes=min_bytes):
            not_in_use.append(line(c))
        # The monitor's own gaps are stated once (coverage); listed are the communes observed for less
        # of the day than the network as a whole (added mid-day, or out of the probed set for a while).
        if c.seconds.observed > 0 and c.seconds.unknown > monitor_gap_s + 60:
            partial.append(line(c))
    order = {LOW_AVAILABILITY: 0, NOT_OBSERVED: 1, NO_CIRCUIT: 2}
    not_connected.sort(key=lambda x: (order[x.reason], -x.outage_s, x.availability or 0.0, x.area, x.code))
    not_in_use.sort(key=lambda x: (x.traffic_bytes or 0, x.area, x.code))
    partial.sort(key=lambda x: (x.coverage, x.area, x.code))

    # An outage that began the day before shows when it began: join yesterday's pieces with today's.
    by_unit = {n.unit: n for n in nodes.values()}
    code_names = {n.code: n.name for n in nodes.values()}
    pieces = list(h.outages)
    if yesterday_h is not None:
        pieces += [(u, p) for u, p in yesterday_h.outages if p.ended_by == ENDED_DAY_END]
    outages: list[OutageLine] = []
    for o in merge_outages(pieces):
        if o.end <= h.start:
            continue
        mine = next((p for u, p in h.outages if u == o.unit and o.start <= p.start < o.end + 1e-6), None)
        if mine is None:
            continue
        n = by_unit.get(o.unit)
        if n is None:
            continue
        outages.append(OutageLine(n.code, n.name, n.kind, n.area, mine.start, mine.end, mine.down_s,
                                  mine.unreachable_s, mine.ended_by, mine.cause, code_names.get(mine.cause or "", ""),
                                  o.start if o.start < h.start else None))
    outages.sort(key=lambda o: (-o.duration_s, o.start, o.code))

    reboots = sorted((RebootLine(n.code, n.name, n.area, int(r.reboots))
                      for u, r in h.rows.items() if r.reboots and (n := by_unit.get(u)) is not None),
                     key=lambda r: (-r.reboots, r.area, r.code))
    dashboard = (settings.dashboard_url if settings and settings.dashboard_url else cfg.web.public_url)
    return DailyReport(
        province=cfg.province, day=day, timezone=str(zone), generated_at=_time.time() if now is None else now,
        target=rates_cfg.target, min_availability=min_av, in_use_min_bytes=min_bytes,
        connected=connected, in_use=in_use, provisioned=provisioned, coverage=h.coverage,
        traffic_known=traffic_known, trend=tuple(trend), areas=areas, not_connected=tuple(not_connected),
        not_in_use=tuple(not_in_use), outages=tuple(outages), reboots=tuple(reboots), partial=tuple(partial),
        dashboard_url=dashboard, seal_digest=h.seal.digest if h.seal else None)


# -- rendering --------------------------------------------------------------------------------------

_WEEKDAYS = {
    "vi": ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")

# Every word of the email, by language. Operators' templates get the same dict as ``t``.
LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "subject": "[TSLCD {province}] Ngày {date}: {rate} xã kết nối (mục tiêu {target})",
        "network": "Mạng truyền số liệu chuyên dùng",
        "title": "Báo cáo kết nối UBND cấp xã",
        "province": "tỉnh {province}",
        "day": "{weekday}, ngày {date}",
        "connected": "Kết nối trong ngày",
        "in_use": "Kết nối và có sử dụng",
        "provisioned": "Đã có đường truyền",
        "of_communes": "{count}/{total} xã",
        "target": "mục tiêu {target}",
        "change": "{change} so với hôm trước",
        "change_none": "chưa có số liệu hôm trước",
        "unchanged": "không đổi so với hôm trước",
        "pp": "điểm %",
        "gap": "Còn {count} xã chưa kết nối để đạt mục tiêu {target}.",
        "gap_met": "Đạt mục tiêu {target}: mọi xã cần thiết đều kết nối.",
        "no_traffic": "chưa đo được: thiếu số liệu lưu lượng (SNMP)",
        "coverage_warn": "Hệ thống giám sát chỉ quan sát được {coverage} thời gian trong ngày. Phần còn lại là "
                         "“chưa rõ”: không tính là có kết nối, cũng không tính là mất kết nối.",
        "trend": "Diễn biến {days} ngày",
        "legend_connected": "tỷ lệ kết nối",
        "legend_in_use": "kết nối và có sử dụng",
        "legend_idle": "kết nối, chưa sử dụng",
        "legend_below": "dưới mục tiêu",
        "legend_none": "không có số liệu",
        "trend_summary": "Trung bình {mean} · thấp nhất {low} ({low_day}) · cao nhất {high} ({high_day}) · "
                         "đạt mục tiêu {met}/{days} ngày",
        "trend_empty": "Chưa có số liệu của những ngày trước.",
        "areas": "Theo khu vực",
        "area": "Khu vực",
        "communes": "Số xã",
        "rate": "Tỷ lệ kết nối",
        "connected_short": "Kết nối",
        "rate_short": "Tỷ lệ",
        "in_use_short": "Có sử dụng",
        "not_connected": "Xã chưa kết nối trong ngày",
        "not_connected_none": "Không có: mọi xã đều kết nối.",
        "code": "Mã",
        "name": "Tên",
        "reason": "Lý do",
        "downtime": "Mất kết nối",
        "no_circuit": "chưa có đường truyền",
        "not_observed": "không có số liệu giám sát",
        "low_availability": "sẵn sàng {availability}",
        "not_in_use": "Xã có kết nối nhưng chưa sử dụng",
        "not_in_use_none": "Không có: mọi xã có kết nối đều có lưu lượng.",
        "traffic": "Lưu lượng",
        "traffic_unknown": "không có số liệu",
        "outages": "Các lần mất kết nối trong ngày (dài nhất trước)",
        "outages_none": "Không có lần mất kết nối nào.",
        "node": "Nút",
        "from": "Từ",
        "to": "Đến",
        "duration": "Thời lượng",
        "state": "Tình trạng",
        "down": "mất kết nối",
        "unreachable": "không tới được",
        "behind": "sau nút {node}",
        "began": "bắt đầu {at}",
        "ended_day_end": "còn tiếp sang ngày sau",
        "ended_not_observed": "giám sát dừng khi đang mất",
        "kind_core": "nút lõi",
        "kind_aggregation": "nút tập trung",
        "reboots": "Thiết bị khởi động lại",
        "reboots_count": "Số lần",
        "reboots_none": "Không có thiết bị nào khởi động lại (theo SNMP).",
        "partial": "Xã giám sát không trọn ngày",
        "partial_intro": "Các xã sau được quan sát ít hơn phần còn lại của mạng; thời gian không quan sát là "
                         "“chưa rõ” và không tính vào độ sẵn sàng.",
        "observed": "Quan sát được",
        "unknown": "Chưa rõ",
        "more": "… và {count} mục khác (xem trên trang theo dõi).",
        "definitions": "Định nghĩa và ngưỡng",
        "def_rate": "Tỷ lệ kết nối = số xã kết nối trong ngày / tổng số xã, phường có trong danh mục ngày đó "
                    "(kể cả xã chưa có đường truyền), so với mục tiêu {target}.",
        "def_connected": "Kết nối trong ngày: độ sẵn sàng ≥ {min_availability}. Độ sẵn sàng = thời gian hoạt động / "
                         "(hoạt động + mất kết nối + không tới được); thời gian chưa rõ và bảo trì không tính.",
        "def_in_use": "Có sử dụng: kết nối trong ngày và lưu lượng đường lên ≥ {min_bytes}.",
        "def_provisioned": "Đã có đường truyền: xã có địa chỉ mạng TSLCD trong danh mục (chỉ tiêu chính thức có thể "
                           "hiểu theo nghĩa này; báo cáo nêu cả hai).",
        "def_unreachable": "Không tới được: nút phía trên (nút tập trung) mất kết nối nên không đo được xã.",
        "sealed": "Số liệu ngày {date} đã niêm phong, mã SHA-256 {digest}.",
        "not_sealed": "Số liệu ngày {date} chưa niêm phong (tính từ dữ liệu gốc).",
        "dashboard": "Trang theo dõi",
        "generated": "Thư tự động của tslcd-monitor, lập lúc {at} ({tz}). Vui lòng không trả lời thư này.",
    },
    "en": {
        "subject": "[TSLCD {province}] {date}: {rate} of communes connected (target {target})",
        "network": "Dedicated government data network (TSLCD)",
        "title": "Commune connection report",
        "province": "{province} province",
        "day": "{weekday} {date}",
        "connected": "Connected that day",
        "in_use": "Connected and in use",
        "provisioned": "Provisioned (circuit)",
        "of_communes": "{count} of {total} communes",
        "target": "target {target}",
        "change": "{change} on the day before",
        "change_none": "no data for the day before",
        "unchanged": "unchanged on the day before",
        "pp": "pp",
        "gap": "{count} more communes must connect to reach the {target} target.",
        "gap_met": "Target {target} met.",
        "no_traffic": "not measured: no uplink traffic figures (SNMP)",
        "coverage_warn": "The monitor observed only {coverage} of the day. The rest is \"unknown\": counted neither "
                         "as connected nor as disconnected.",
        "trend": "Last {days} days",
        "legend_connected": "connection rate",
        "legend_in_use": "connected and in use",
        "legend_idle": "connected, idle",
        "legend_below": "below target",
        "legend_none": "no data",
        "trend_summary": "Mean {mean} · lowest {low} ({low_day}) · highest {high} ({high_day}) · "
                         "target met on {met} of {days} days",
        "trend_empty": "No data for the previous days yet.",
        "areas": "By area",
        "area": "Area",
        "communes": "Communes",
        "rate": "Connection rate",
        "connected_short": "Connected",
        "rate_short": "Rate",
        "in_use_short": "In use",
        "not_connected": "Communes not connected that day",
        "not_connected_none": "None: every commune was connected.",
        "code": "Code",
        "name": "Name",
        "reason": "Why",
        "downtime": "Downtime",
        "no_circuit": "no circuit yet",
        "not_observed": "not observed by the monitor",
        "low_availability": "availability {availability}",
        "not_in_use": "Communes connected but not in use",
        "not_in_use_none": "None: every connected commune carried traffic.",
        "traffic": "Traffic",
        "traffic_unknown": "no figures",
        "outages": "Outages that day (longest first)",
        "outages_none": "No outage.",
        "node": "Node",
        "from": "From",
        "to": "To",
        "duration": "Duration",
        "state": "State",
        "down": "down",
        "unreachable": "unreachable",
        "behind": "behind {node}",
        "began": "began {at}",
        "ended_day_end": "goes on into the next day",
        "ended_not_observed": "monitor stopped observing",
        "kind_core": "core node",
        "kind_aggregation": "aggregation node",
        "reboots": "Device restarts",
        "reboots_count": "Restarts",
        "reboots_none": "No device restarted (per SNMP).",
        "partial": "Communes observed for part of the day",
        "partial_intro": "These communes were observed for less of the day than the rest of the network; the "
                         "time not observed is \"unknown\" and not in their availability.",
        "observed": "Observed",
        "unknown": "Unknown",
        "more": "… and {count} more (see the dashboard).",
        "definitions": "Definitions and thresholds",
        "def_rate": "Connection rate = communes connected that day / all communes and wards in the inventory on "
                    "that day (with or without a circuit), against the {target} target.",
        "def_connected": "Connected on a day: availability ≥ {min_availability}. Availability = up / (up + down + "
                         "unreachable); unknown and maintenance time are left out.",
        "def_in_use": "In use: connected that day and uplink traffic ≥ {min_bytes}.",
        "def_provisioned": "Provisioned: the commune has a TSLCD circuit (an address) in the inventory; the official "
                           "indicator may mean this, so both are shown.",
        "def_unreachable": "Unreachable: an upstream (aggregation) node was down, so the commune could not be "
                           "measured.",
        "sealed": "The figures of {date} are sealed, SHA-256 {digest}.",
        "not_sealed": "The figures of {date} are not sealed yet (computed from raw data).",
        "dashboard": "Dashboard",
        "generated": "Sent automatically by tslcd-monitor at {at} ({tz}). Please do not reply.",
    },
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered report: the subject and both bodies."""

    subject: str
    html: str
    text: str
    language: str


class Fmt:
    """Numbers, dates and durations written the way each language writes them (vi: 97,1% and 24/11/2025)."""

    def __init__(self, language: str, tz: tzinfo, day: date) -> None:
        self.lang = language
        self.tz = tz
        self.day = day

    def num(self, x: float, digits: int = 1) -> str:
        text = f"{x:,.{digits}f}"
        if self.lang == "vi":  # Vietnamese swaps the separators: 1.234,5
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def pct(self, x: float | None, digits: int = 1) -> str:
        if x is None:
            return "—"
        if x >= 1.0 or x <= 0.0:
            return f"{x * 100:.0f}%"
        return self.num(x * 100, digits) + "%"

    def pp(self, change: float | None, labels: dict[str, str]) -> str:
        if change is None:
            return labels["change_none"]
        if abs(change) < 0.0005:
            return labels["unchanged"]
        sign = "+" if change > 0 else "−"
        return labels["change"].format(change=f"{sign}{self.num(abs(change) * 100)} {labels['pp']}")

    def day_str(self, d: date) -> str:
        return d.strftime("%d/%m/%Y") if self.lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1][:3]} {d.year}"

    def short_day(self, d: date) -> str:
        return d.strftime("%d/%m") if self.lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1][:3]}"

    def long_day(self, d: date, labels: dict[str, str]) -> str:
        full = d.strftime("%d/%m/%Y") if self.lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"
        return labels["day"].format(weekday=_WEEKDAYS[self.lang][d.weekday()], date=full)

    def time(self, ts: float, *, end: bool = False) -> str:
        at = datetime.fromtimestamp(ts, self.tz)
        if end and at.date() == self.day + timedelta(days=1) and at.hour == 0 and at.minute == 0:
            return "24:00"  # the end of the day, not the next day's midnight
        if at.date() == self.day:
            return at.strftime("%H:%M")
        return f"{self.short_day(at.date())} {at:%H:%M}"

    def duration(self, seconds: float) -> str:
        s = max(0, int(round(seconds)))
        d, rem = divmod(s, 86400)
        h, rem = divmod(rem, 3600)
        m, sec = divmod(rem, 60)
        vi = self.lang == "vi"
        if d:
            return (f"{d} ngày {h} giờ" if vi else f"{d} d {h} h") if h else (f"{d} ngày" if vi else f"{d} d")
        if h:
            return (f"{h} giờ {m} phút" if vi else f"{h} h {m:02d} min") if m else (f"{h} giờ" if vi else f"{h} h")
        if m:
            return f"{m} phút" if vi else f"{m} min"
        return f"{sec} giây" if vi else f"{sec} s"

    def bytes(self, n: int | None) -> str:
        if n is None:
            return "—"
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if n >= size:
                return f"{self.num(n / size)} {unit}"
        return f"{n} B"


# Bar colours by whether the day met the target: solid for in use (or connected), light for connected but idle.
_SOLID = {True: "#38a169", False: "#dd6b20"}
_LIGHT = {True: "#9ae6b4", False: "#fbd38d"}


def _trend_view(report: DailyReport, f: Fmt, labels: dict[str, str]) -> dict[str, Any]:
    """Bar heights (px of a 100 px chart, 0-100%) and the summary line of the trend."""
    height = 100
    traffic_any = report.traffic_known or any(d.in_use for d in report.trend if d.in_use)
    bars = []
    for i, d in enumerate(report.trend):
        # Label every fifth day counted back from the report's day, so the report's day is labelled.
        label = f.short_day(d.day) if (len(report.trend) - 1 - i) % 5 == 0 else ""
        if d.connected is None:
            bars.append({"day": f.day_str(d.day), "label": label, "observed": False, "title": f"{f.day_str(d.day)}: "
                         f"{labels['legend_none']}", "is_report_day": d.day == report.day})
            continue
        total_px = max(1, round(d.connected * height)) if d.connected > 0 else 0
        split = traffic_any and d.in_use is not None  # a day without traffic figures is drawn whole
        used_px = min(total_px, round((d.in_use or 0.0) * height)) if split else total_px
        met = d.connected >= report.target - 1e-9
        title = f"{f.day_str(d.day)}: {f.pct(d.connected)}"
        if split:
            title += f" ({labels['in_use_short'].lower()} {f.pct(d.in_use)})"
        # Without traffic figures the whole bar is "connected"; with them, the part in use is the solid base
        # and the part connected but idle a lighter cap (in use is a subset of connected).
        bars.append({"day": f.day_str(d.day), "label": label, "observed": True, "title": title,
                     "connected": f.pct(d.connected), "in_use": f.pct(d.in_use) if split else "",
                     "space_px": height - total_px, "connected_px": total_px - used_px, "in_use_px": used_px,
                     "met": met, "is_report_day": d.day == report.day, "light": _LIGHT[met], "solid": _SOLID[met]})
    seen = [d for d in report.trend if d.connected is not None]
    summary = ""
    if len(seen) >= 2:
        low = min(seen, key=lambda d: (d.connected, d.day))
        high = max(seen, key=lambda d: (d.connected, d.day))
        mean = sum(d.connected or 0.0 for d in seen) / len(seen)
        summary = labels["trend_summary"].format(
            mean=f.pct(mean), low=f.pct(low.connected), low_day=f.short_day(low.day), high=f.pct(high.connected),
            high_day=f.short_day(high.day), met=sum(1 for d in seen if (d.connected or 0) >= report.target - 1e-9),
            days=len(seen))
    # Date labels sit under groups of five bars, right-aligned under the labelled day, so a label never
    # overflows a narrow bar (phones) and the report's day is always labelled.
    groups: list[dict[str, Any]] = []
    n = len(bars)
    first = n % 5 or 5
    start = 0
    for end in range(first, n + 1, 5):
        groups.append({"span": end - start, "label": bars[end - 1]["label"] or f.short_day(report.trend[end - 1].day),
                       "is_report_day": bars[end - 1]["is_report_day"]})
        start = end
    first_seen = next((i for i, b in enumerate(bars) if b["observed"]), len(bars))
    return {"bars": bars, "text_bars": bars[first_seen:], "groups": groups, "height": height, "summary": summary,
            "traffic": traffic_any,
            "days": len(report.trend), "enough": len(seen) >= 2}


def _view(report: DailyReport, labels: dict[str, str], f: Fmt, max_rows: int) -> dict[str, Any]:
    """Every string the templates show, formatted once, so the HTML and the text say the same thing."""
    target = f.pct(report.target)

    def rate_card(key: str, r: Rate, *, measured: bool = True) -> dict[str, Any]:
        return {"id": key, "title": labels[key], "value": f.pct(r.rate) if measured else "—",
                "of": labels["of_communes"].format(count=r.count, total=r.total) if measured else labels["no_traffic"],
                "change": f.pp(r.change, labels) if measured else "",
                "trend": "" if r.change is None or abs(r.change) < 0.0005 else ("up" if r.change > 0 else "down"),
                "met": measured and r.rate >= report.target - 1e-9, "ratio": r.rate if measured else 0.0}

    need = max(0, math.ceil(report.target * report.connected.total - 1e-9) - report.connected.count)
    gap = labels["gap"].format(count=need, target=target) if need else labels["gap_met"].format(target=target)

    def commune(c: CommuneLine) -> dict[str, Any]:
        reason = labels[c.reason] if c.reason in (NO_CIRCUIT, NOT_OBSERVED) else (
            labels["low_availability"].format(availability=f.pct(c.availability)) if c.reason else "")
        return {"code": c.code, "name": c.name, "area": c.area, "reason": reason, "reason_key": c.reason,
                "downtime": f.duration(c.outage_s) if c.outage_s > 0 else "",
                "traffic": f.bytes(c.traffic_bytes) if c.traffic_bytes is not None else labels["traffic_unknown"],
                "observed": f.pct(c.coverage), "unknown": f.duration(c.unknown_s)}

    def outage(o: OutageLine) -> dict[str, Any]:
        if o.unreachable_s > o.down_s:
            state = labels["unreachable"]
            if o.cause_code:
                state += " " + labels["behind"].format(node=f"{o.cause_code} {o.cause_name}".strip())
        else:
            state = labels["down"]
        notes = []
        if o.began is not None:
            notes.append(labels["began"].format(at=f.time(o.began)))
        if o.ended_by == "day-end":
            notes.append(labels["ended_day_end"])
        elif o.ended_by == "not-observed":
            notes.append(labels["ended_not_observed"])
        kind = labels.get(f"kind_{o.kind}", "") if o.kind != "commune" else ""
        return {"code": o.code, "name": o.name, "area": o.area, "kind": kind, "state": state,
                "down": o.down_s >= o.unreachable_s, "from": f.time(o.start), "to": f.time(o.end, end=True),
                "duration": f.duration(o.duration_s), "notes": " · ".join(notes)}

    def capped(items: Sequence[Any], fn: Any) -> tuple[list[Any], str]:
        shown = [fn(x) for x in items[:max_rows]]
        rest = len(items) - len(shown)
        return shown, labels["more"].format(count=rest) if rest > 0 else ""

    not_connected, nc_more = capped(report.not_connected, commune)
    not_in_use, nu_more = capped(report.not_in_use, commune)
    outages, o_more = capped(report.outages, outage)
    partial, p_more = capped(report.partial, commune)
    reboots, r_more = capped(report.reboots, lambda r: {"code": r.code, "name": r.name, "area": r.area,
                                                       "count": r.reboots})
    day = f.day_str(report.day)
    return {
        "province": labels["province"].format(province=report.province),
        "day": f.long_day(report.day, labels),
        "date": day,
        "target": target,
        "cards": [rate_card("connected", report.connected), rate_card("in_use", report.in_use,
                                                                      measured=report.traffic_known),
                  rate_card("provisioned", report.provisioned)],
        "connected_rate": f.pct(report.connected.rate),
        "gap": gap,
        "gap_met": need == 0,
        "coverage_warn": labels["coverage_warn"].format(coverage=f.pct(report.coverage))
        if report.coverage < 0.9995 else "",
        "trend": _trend_view(report, f, labels),
        "areas": [{"area": a.area, "communes": a.communes, "connected": a.connected,
                   "rate": f.pct(a.connected_rate), "ratio": a.connected_rate,
                   "in_use": f.pct(a.in_use_rate) if report.traffic_known else "—",
                   "met": a.connected_rate >= report.target - 1e-9} for a in report.areas],
        "traffic_known": report.traffic_known,
        "not_connected": not_connected, "not_connected_more": nc_more,
        "not_in_use": not_in_use, "not_in_use_more": nu_more,
        "outages": outages, "outages_more": o_more,
        "reboots": reboots, "reboots_more": r_more,
        "partial": partial, "partial_more": p_more,
        "definitions": [
            labels["def_rate"].format(target=target),
            labels["def_connected"].format(min_availability=f.pct(report.min_availability)),
            labels["def_in_use"].format(min_bytes=f.bytes(report.in_use_min_bytes)),
            labels["def_provisioned"],
            labels["def_unreachable"],
        ],
        "seal": labels["sealed"].format(date=day, digest=report.seal_digest) if report.seal_digest
        else labels["not_sealed"].format(date=day),
        "dashboard_url": report.dashboard_url,
        "generated": labels["generated"].format(
            at=datetime.fromtimestamp(report.generated_at, report.tz).strftime("%d/%m/%Y %H:%M" if f.lang == "vi"
                                                                               else "%Y-%m-%d %H:%M"),
            tz=report.timezone),
    }


def _environment(templates_dir: Path | None) -> Environment:
    loaders: list[Any] = [PackageLoader("exporters", "templates")]
    if templates_dir is not None:
        # The operator's folder first: a file there replaces the shipped one of the same name.
        loaders.insert(0, FileSystemLoader(str(templates_dir)))
    return Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(report: DailyReport, *, language: str = "vi", templates_dir: Path | None = None,
           max_rows: int = 100) -> Rendered:
    """The report as subject, HTML and text. Templates may be per language: email_daily.en.html first."""
    if language not in LABELS:
        raise ValueError(f"unknown language {language!r} (expected one of {', '.join(LABELS)})")
    labels = LABELS[language]
    f = Fmt(language, report.tz, report.day)
    env = _environment(templates_dir)
    html_t = env.select_template([f"email_daily.{language}.html", TEMPLATE_HTML])
    text_t = env.select_template([f"email_daily.{language}.txt", TEMPLATE_TEXT])
    rows = max_rows
    # Gmail clips a message whose HTML passes ~102 kB behind a "view entire message" link, which
    # would hide the footer's definitions: on a bad day the lists shrink (bounded) until it fits.
    for _ in range(8):
        view = _view(report, labels, f, rows)
        ctx = {"r": report, "v": view, "t": labels, "lang": language}
        html = html_t.render(ctx)
        if len(html.encode()) <= HTML_BUDGET_BYTES or rows <= 10:
            break
        rows = max(10, rows // 2)
    text = text_t.render(ctx)
    subject = labels["subject"].format(province=report.province, date=view["date"],
                                       rate=view["connected_rate"], target=view["target"])
    return Rendered(subject, html, text, language)


# -- the MIME message -------------------------------------------------------------------------------


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


# -- SMTP -------------------------------------------------------------------------------------------


class MailErrorKind(StrEnum):
    """Bounded classification of a failed send (the ``reason`` label of tslcd_email_failures_total)."""

    CONNECT = "connect"  # refused, unreachable, timed out, unknown host, connection dropped
    TLS = "tls"  # handshake failed, certificate not trusted or for another name
    AUTH = "auth"  # username or password refused
    UNSUPPORTED = "unsupported"  # the server lacks STARTTLS or a usable AUTH mechanism
    TEMPORARY = "temporary"  # a 4xx reply: try again later
    REJECTED = "rejected"  # a 5xx reply to the sender, a recipient or the data
    PROTOCOL = "protocol"  # anything else the server or the library did not expect


class MailError(Exception):
    """A failed send, classified; ``str()`` is safe to log and to store (no password, no base64 of one)."""

    def __init__(self, kind: MailErrorKind, message: str, *, code: int | None = None) -> None:
        self.kind = kind
        self.code = code
        super().__init__(f"{kind.value}: {message}")

    @property
    def temporary(self) -> bool:
        """Worth retrying soon (the outbox retries every kind, but backs off the same way)."""
        return self.kind in (MailErrorKind.CONNECT, MailErrorKind.TEMPORARY, MailErrorKind.PROTOCOL)


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
    for s in _secret_forms(smtp):
        text = text.replace(s, "***")
    text = " ".join(text.split())
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


def render_for(report: DailyReport, settings: EmailSettings | None, *, base: Path | None = None,
               language: str | None = None) -> Rendered:
    """Render with the settings' language, templates folder (relative to ``base``) and row cap."""
    folder = settings.templates_dir if settings else None
    if folder is not None and base is not None and not folder.is_absolute():
        folder = base / folder
    return render(report, language=language or (settings.language if settings else "vi"), templates_dir=folder,
                  max_rows=settings.max_rows if settings else 100)
