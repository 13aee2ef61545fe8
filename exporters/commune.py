"""A commune's page (/node/CODE): who it is, its state now, its last 30 days and 24 hours, its outages.

Built from the snapshot (now, SNMP facts), the history store (that unit's own daily rows and
outage pieces: key lookups, never a scan of the province's history) and the monitor's hourly
ring (the last 24 hours). Charts are server-rendered SVG: no JavaScript, readable at 390 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from exporters.fmt import local_time, page_bytes, page_duration
from exporters.labels import CAUSE_LABELS, REASON_LABELS_VI, STATE_LABELS
from monitor.config import Config
from monitor.core.history import merge_outages
from monitor.core.hourly import HourPoint
from monitor.core.snapshot import NodeStatus, Snapshot
from monitor.store.model import DayHistory, HistoryStore

DAYS = 30
OUTAGES_SHOWN = 50

VERDICT_LABELS = {
    "connected": "kết nối / connected",
    "not_connected": "không đạt / not connected",
    "no_data": "không có số liệu / no data",
    "maintenance": "bảo trì / maintenance",
    "no_circuit": "chưa có đường truyền / no circuit",
}


class CommuneSource(Protocol):
    """What the page reads of the monitor (monitor.runtime.service.Monitor)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def snapshot(self) -> Snapshot: ...

    def commune_hours(self, code: str) -> list[HourPoint] | None: ...
    def history_store(self) -> HistoryStore | None: ...


def find(snap: Snapshot, code: str) -> NodeStatus | None:
    """The node of the snapshot with this code (active today), or None."""
    return next((ns for ns in snap.nodes if ns.node.code == code), None)


def day_verdict(dh: DayHistory, min_availability: float) -> tuple[str, float | None]:
    """A day of one unit as the strip shows it, and its availability (docs/design.md's definitions)."""
    row = next(iter(dh.rows.values()), None)
    if row is None:
        return "no_data", None
    sec = row.seconds
    if sec.observed <= 0:
        return ("maintenance" if sec.maintenance > 0 else "no_data"), None
    avail = sec.availability
    return ("connected" if avail is not None and avail >= min_availability else "not_connected"), avail


def _mean_loss(dh: DayHistory) -> float | None:
    row = next(iter(dh.rows.values()), None)
    return row.loss_sum_ppm / row.samples / 1e6 if row is not None and row.samples else None


def _mean_rtt(dh: DayHistory) -> float | None:
    row = next(iter(dh.rows.values()), None)
    return row.rtt_mean_s if row is not None else None


def bar_chart(values: Sequence[float | None], labels: Sequence[str], *, title: str, unit: str,
              scale: float = 1.0, digits: int = 0, floor: float = 0.0) -> Markup:
    """An SVG bar chart (no script): one bar per value, a gap for None; labels under some bars.

    Drawn in a 360 x 150 box that scales to its column: a 390 px phone shows it at about its own size.
    """
    width, height, left, bottom, top = 360.0, 150.0, 34.0, 20.0, 14.0
    shown = [v * scale for v in values if v is not None]
    peak = max([floor, *shown]) or 1.0
    step = (width - left) / max(1, len(values))
    parts = [f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left - 3}" y="{top + 4}" class="tick" text-anchor="end">{peak:.{digits}f}</text>',
             f'<text x="{left - 3}" y="{height - bottom}" class="tick" text-anchor="end">0</text>',
             f'<text x="{left}" y="{top - 4}" class="tick">{escape(unit)}</text>']
    every = max(1, len(values) // 6)
    for i, v in enumerate(values):
        x = left + i * step
        if v is not None:
            h = (height - bottom - top) * (v * scale) / peak
            parts.append(f'<rect x="{x + step * 0.12:.1f}" y="{height - bottom - h:.1f}" width="{step * 0.76:.1f}" '
                         f'height="{max(h, 0.5):.1f}" class="bar"><title>{escape(labels[i])}: '
                         f'{v * scale:.{max(digits, 1)}f} {escape(unit)}</title></rect>')
        else:
            parts.append(f'<rect x="{x + step * 0.12:.1f}" y="{height - bottom - 2:.1f}" width="{step * 0.76:.1f}" '
                         f'height="2" class="gap"><title>{escape(labels[i])}: —</title></rect>')
        last = i == len(values) - 1
        if (i % every == 0 and len(values) - i > every) or last:  # the last label ends at the edge
            parts.append(f'<text x="{width if last else x + step / 2:.1f}" y="{height - 6}" class="tick" '
                         f'text-anchor="{"end" if last else "middle"}">{escape(labels[i])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def commune_view(snap: Snapshot, code: str, days: list[DayHistory] | None, hours: list[HourPoint] | None, *,
                 min_availability: float, show_address: bool) -> dict[str, Any] | None:
    """Everything the commune's page shows, as plain values (charts as SVG); None when no node has this code."""
    ns = find(snap, code)
    if ns is None:
        return None
    tz = ZoneInfo(snap.timezone)
    n = ns.node
    names = {s.node.code: s.node.name for s in snap.nodes}
    strip, rtt_days, loss_days, day_labels = [], [], [], []
    for dh in days or []:
        verdict, avail = ("no_circuit", None) if not n.address else day_verdict(dh, min_availability)
        coverage = dh.observed_s / dh.day_s if dh.day_s else 0.0
        strip.append({"day": dh.day.isoformat(), "verdict": verdict, "label": VERDICT_LABELS[verdict],
                      "availability": avail, "coverage": coverage})
        rtt_days.append(_mean_rtt(dh))
        loss_days.append(_mean_loss(dh))
        day_labels.append(f"{dh.day.day:02d}/{dh.day.month:02d}")
    outages = []
    if days:
        pieces = [(unit, p) for dh in days for unit, p in dh.outages]
        for o in sorted(merge_outages(pieces), key=lambda o: o.start, reverse=True)[:OUTAGES_SHOWN]:
            outages.append({"start": local_time(o.start, tz), "end": local_time(o.end, tz),
                            "duration": page_duration(o.duration), "down_s": o.down_s,
                            "unreachable_s": o.unreachable_s, "cause": o.cause,
                            "cause_name": names.get(o.cause or "", ""), "ended_by": o.ended_by,
                            "why_label": CAUSE_LABELS.get(o.why or "")})
    hour_labels = [datetime.fromtimestamp(h.start, tz).strftime("%Hh") for h in hours or []]
    charts = {}
    if days:
        charts["rtt_30d"] = bar_chart(rtt_days, day_labels, title="Độ trễ trung bình theo ngày / daily mean "
                                      "round trip", unit="ms", scale=1000, digits=1, floor=1.0)
        charts["loss_30d"] = bar_chart(loss_days, day_labels, title="Tỉ lệ mất gói theo ngày / daily packet loss",
                                       unit="%", scale=100, digits=0, floor=10.0)
    if hours:
        charts["rtt_24h"] = bar_chart([h.rtt_s for h in hours], hour_labels, title="Độ trễ theo giờ / hourly "
                                      "mean round trip", unit="ms", scale=1000, digits=1, floor=1.0)
        charts["loss_24h"] = bar_chart([h.loss for h in hours], hour_labels, title="Tỉ lệ mất gói theo giờ / "
                                       "hourly packet loss", unit="%", scale=100, digits=0, floor=10.0)
    s = ns.snmp
    snmp = None if s is None else {
        "up": s.up, "reason": s.reason, "reason_label": REASON_LABELS_VI.get(s.reason, s.reason),
        "detail": s.detail, "polled_at": local_time(s.polled_at, tz), "sys_name": s.sys_name,
        "uptime": page_duration(s.uptime_s) if s.uptime_s is not None else None,
        "reboots": s.reboots, "last_reboot": local_time(s.last_reboot_at, tz),
        "uplink": s.uplink_name, "uplink_up": s.uplink_oper_up, "uplink_status": s.uplink_oper_status,
        "today": page_bytes(s.bytes_today) if s.bytes_today is not None else None}
    return {
        "province": snap.province, "timezone": snap.timezone, "taken_at": local_time(snap.taken_at, tz),
        "code": n.code, "name": n.name, "kind": n.kind, "area": n.area, "node_province": n.province,
        "parent": n.parent, "parent_name": names.get(n.parent or "", ""), "lat": n.lat, "lon": n.lon,
        "carrier": n.carrier, "circuit_id": n.circuit_id,
        "address": n.address if show_address else None, "address6": n.address6 if show_address else None,
        "has_circuit": bool(n.address), "state": ns.state, "state_label": STATE_LABELS.get(ns.state, ns.state),
        "since": local_time(ns.since, tz), "for": page_duration(snap.taken_at - ns.since) if ns.since else "",
        "cause": ns.cause, "cause_name": names.get(ns.cause or "", ""), "flapping": ns.flapping,
        "outage_cause": ns.outage_cause,
        "outage_cause_label": CAUSE_LABELS.get(ns.outage_cause or "", (ns.outage_cause, ns.outage_cause)),
        "rtt_ms": None if ns.rtt_avg is None else round(ns.rtt_avg * 1000, 2), "loss": ns.loss,
        "strip": strip, "charts": charts, "outages": outages, "snmp": snmp,
        "days_connected": sum(1 for d in strip if d["verdict"] == "connected"),
        "days_with_data": sum(1 for d in strip if d["verdict"] in ("connected", "not_connected")),
        "min_availability": min_availability,
        "hours_since": next((local_time(h.start, tz) for h in hours or [] if h.rtt_s is not None or h.loss is not None),
                            None),  # the first hour measured: after a restart, the restart's
    }


def window(snap: Snapshot) -> tuple[date, date]:
    """The page's days: the last ``DAYS`` local days, today included."""
    today = datetime.fromtimestamp(snap.taken_at, ZoneInfo(snap.timezone)).date()
    return today - timedelta(days=DAYS - 1), today
