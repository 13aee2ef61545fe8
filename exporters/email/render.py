"""The daily report through jinja2 templates (vi or en; an operator's folder overrides the shipped ones).

``render`` gives a subject, an HTML body and a plain-text body; ``render_for`` applies the
``email:`` settings (language, templates folder, row cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from exporters import labels as labels_mod
from exporters.email.report import (
    NO_CIRCUIT,
    NOT_OBSERVED,
    CommuneLine,
    DailyReport,
    OutageLine,
    Rate,
)
from exporters.fmt import Fmt
from exporters.labels import CAUSE_LABELS
from monitor.core.causes import RULES

if TYPE_CHECKING:
    from monitor.config import EmailSettings

TEMPLATE_HTML = "email_daily.html"
HTML_BUDGET_BYTES = 90_000  # under Gmail's clipping size, with room for the MIME headers
TEMPLATE_TEXT = "email_daily.txt"

@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered report: the subject and both bodies."""

    subject: str
    html: str
    text: str
    language: str



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


def _by_cause(outages: Sequence[OutageLine]) -> list[tuple[str, int]]:
    """How many of the day's outages had each cause, in the rule table's order (unreachable ones are upstream)."""
    n: dict[str, int] = {}
    for o in outages:
        why = o.why or ("upstream" if o.unreachable_s > o.down_s else "")
        if why:
            n[why] = n.get(why, 0) + 1
    order = [c.value for c, _ in RULES]
    return sorted(n.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _view(report: DailyReport, labels: dict[str, str], f: Fmt, max_rows: int) -> dict[str, Any]:
    lang = 0 if f.lang == "vi" else 1  # CAUSE_LABELS: (Vietnamese, English)
    """Every string the templates show, formatted once, so the HTML and the text say the same thing."""
    target = f.pct(report.target)

    def rate_card(key: str, r: Rate, *, measured: bool = True) -> dict[str, Any]:
        return {"id": key, "title": labels[key], "value": f.pct(r.rate) if measured else "—",
                "of": labels["of_communes"].format(count=r.count, total=r.total) if measured else labels["no_traffic"],
                "change": f.pp(r.change, labels) if measured else "",
                "trend": "" if r.change is None or abs(r.change) < 0.0005 else ("up" if r.change > 0 else "down"),
                "met": measured and r.rate is not None and r.rate >= report.target - 1e-9,
                "ratio": (r.rate or 0.0) if measured else 0.0}

    need = max(0, math.ceil(report.target * report.connected.total - 1e-9) - report.connected.count)
    if report.connected.rate is None:  # nothing observed: no rate, so neither a gap nor "target met"
        gap = labels["gap_no_data"]
    else:
        gap = labels["gap"].format(count=need, target=target) if need else labels["gap_met"].format(target=target)

    def commune(c: CommuneLine) -> dict[str, Any]:
        reason = labels[c.reason] if c.reason in (NO_CIRCUIT, NOT_OBSERVED) else (
            labels["low_availability"].format(availability=f.pct(c.availability)) if c.reason else "")
        return {"code": c.code, "name": c.name, "area": c.area, "reason": reason, "reason_key": c.reason,
                "carrier": c.carrier or "",
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
            if o.why in CAUSE_LABELS:
                state += ": " + CAUSE_LABELS[o.why][lang]
        notes = list(o.notes)
        if o.excluded:
            reason, _, by = o.excluded.rpartition("; ")
            notes.append(labels["excluded"].format(reason=reason, by=by))
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
        "gap_met": need == 0 and report.connected.rate is not None,
        "with_exclusions": labels["with_exclusions"].format(
            rate=f.pct(report.connected_x.rate), count=report.exclusions, measured=f.pct(report.connected.rate))
        if report.connected_x is not None else "",
        "ipv6": labels["ipv6"].format(value=f.pct(report.ipv6.rate), count=report.ipv6.count,
                                      total=report.ipv6.total) if report.ipv6.rate is not None else "",
        "coverage_warn": labels["coverage_warn"].format(coverage=f.pct(report.coverage))
        if report.coverage < 0.9995 else "",
        "trend": _trend_view(report, f, labels),
        "areas": [{"area": a.area, "communes": a.with_data, "connected": a.connected,
                   "rate": f.pct(a.connected_rate), "ratio": a.connected_rate or 0.0,
                   "in_use": f.pct(a.in_use_rate) if report.traffic_known else "—",
                   "met": a.connected_rate is not None and a.connected_rate >= report.target - 1e-9}
                  for a in report.areas],
        "traffic_known": report.traffic_known,
        "not_connected": not_connected, "not_connected_more": nc_more,
        "not_in_use": not_in_use, "not_in_use_more": nu_more,
        "outages": outages, "outages_more": o_more,
        "outages_by_cause": " · ".join(f"{CAUSE_LABELS.get(why, (why, why))[lang]} {n}"
                                       for why, n in _by_cause(report.outages)),
        "reboots": reboots, "reboots_more": r_more,
        "maintenance": [{"from": f.time(s), "to": f.time(e, end=True), "nodes": m.nodes, "reason": m.reason,
                         "by": labels["maint_by"].format(by=m.declared_by) if m.declared_by else labels["maint_config"],
                         "approved": labels["maint_approved"].format(by=m.approved_by) if m.approved_by else ""}
                        for m in report.maintenance for s, e in m.spans],
        "partial": partial, "partial_more": p_more,
        "definitions": [
            labels["def_rate"].format(target=target),
            labels["def_connected"].format(min_availability=f.pct(report.min_availability)),
            labels["def_in_use"].format(min_bytes=f.bytes(report.in_use_min_bytes)),
            labels["def_provisioned"],
            labels["def_unreachable"],
            labels["def_causes"],
            labels["def_ipv6"],
            labels["def_exclusions"],
        ],
        "seal": labels["sealed"].format(date=day, digest=report.seal_digest) if report.seal_digest
        else labels["not_sealed"].format(date=day),
        "dashboard_url": report.dashboard_url,
        "node_url": (report.pages_url.rstrip("/") + "/node/") if report.pages_url else "",
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
    if language not in labels_mod.EMAIL:
        raise ValueError(f"unknown language {language!r} (expected one of {', '.join(labels_mod.EMAIL)})")
    labels = labels_mod.EMAIL[language]
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



def render_for(report: DailyReport, settings: EmailSettings | None, *, base: Path | None = None,
               language: str | None = None) -> Rendered:
    """Render with the settings' language, templates folder (relative to ``base``) and row cap."""
    folder = settings.templates_dir if settings else None
    if folder is not None and base is not None and not folder.is_absolute():
        folder = base / folder
    return render(report, language=language or (settings.language if settings else "vi"), templates_dir=folder,
                  max_rows=settings.max_rows if settings else 100)

