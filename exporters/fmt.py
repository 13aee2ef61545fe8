"""How numbers, dates, durations and sizes are written: the status page, the command line, and the email (vi/en)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from exporters.labels import MONTHS_EN, WEEKDAYS


def page_bytes(n: float | None) -> str:
    """Bytes on the status page: 1.5 MB (decimal units)."""
    if n is None:
        return "–"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def page_pct(x: float | None, digits: int = 1, no_data: str = "—") -> str:
    """A share as a percentage with ``digits`` decimals (96.0%); ``no_data`` for None (nothing observed)."""
    return no_data if x is None else f"{x * 100:.{digits}f}%"


def local_time(ts: float | None, tz: ZoneInfo) -> str:
    """An instant as local time YYYY-MM-DD HH:MM:SS ("" for None)."""
    return "" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def page_duration(seconds: float) -> str:
    """A duration on the status page, in Vietnamese: the two largest units."""
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d} ngày {h} giờ"
    if h:
        return f"{h} giờ {m} phút"
    return f"{m} phút {s} giây" if m else f"{s} giây"


def clock_duration(seconds: float) -> str:
    """A duration as [D d ]H:MM:SS (command-line output)."""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h}:{m:02d}:{s:02d}"


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
        return d.strftime("%d/%m/%Y") if self.lang == "vi" else f"{d.day} {MONTHS_EN[d.month - 1][:3]} {d.year}"

    def short_day(self, d: date) -> str:
        return d.strftime("%d/%m") if self.lang == "vi" else f"{d.day} {MONTHS_EN[d.month - 1][:3]}"

    def long_day(self, d: date, labels: dict[str, str]) -> str:
        full = d.strftime("%d/%m/%Y") if self.lang == "vi" else f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}"
        return labels["day"].format(weekday=WEEKDAYS[self.lang][d.weekday()], date=full)

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
