"""The JSON API (/api/...): rates of any period, one commune's days and outages, outages, the inventory.

Every figure comes from the audit's own code (``exporters.audit.build_report``, and for one
commune the same per-day functions on that unit's rows only), so the API and the audit agree.
Handlers here are plain functions of the monitor and the query (web.py serves them); a bad
parameter is a ``BadParameter`` naming it (400). Documented by ``OPENAPI`` (/api/openapi.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporters.audit import Report, build_report
from monitor.config import Config
from monitor.core.history import (
    CommuneTotals,
    Outage,
    OutagePiece,
    PeriodRate,
    has_data,
    is_connected,
    is_in_use,
    merge_outages,
)
from monitor.core.maintenance import MaintenanceWindow
from monitor.core.notes import EXCLUSION, NOTE, OutageNote, outage_id, parse_outage_id
from monitor.core.rates import RateRow
from monitor.core.snapshot import Snapshot
from monitor.errors import MaintenanceError, OutageNoteError
from monitor.store.model import HistoryStore, InventoryNode, commune_days

MAX_DAYS = 400  # a longer period is the audit's job (tslcd audit shows progress): an HTTP client would time out
DEFAULT_DAYS = 30


class BadParameter(ValueError):
    """A query parameter the API cannot use: ``name`` says which, the message what was expected."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class NoHistory(RuntimeError):
    """The monitor keeps no history store (figures of a period cannot be given)."""


class ApiSource(Protocol):
    """What the API reads of the monitor (monitor.runtime.service.Monitor)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def snapshot(self) -> Snapshot: ...

    def history_store(self) -> HistoryStore | None: ...


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date


def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadParameter(name, f"a date YYYY-MM-DD is expected, got {value[:40]!r}") from None


def period(query: Mapping[str, str], snap: Snapshot) -> Period:
    """``from`` and ``to`` (inclusive local days; default: the last 30 days, today included)."""
    today = datetime.fromtimestamp(snap.taken_at, ZoneInfo(snap.timezone)).date()
    last = _day("to", query["to"]) if "to" in query else today
    first = _day("from", query["from"]) if "from" in query else last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise BadParameter("to", f"{last} is before from {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadParameter("from", f"at most {MAX_DAYS} days at once (tslcd audit counts longer periods)")
    return Period(first, last)


def _area(query: Mapping[str, str], snap: Snapshot) -> str | None:
    area = query.get("area")
    if area is None or area == "":
        return None
    if not any(r.area == area for r in snap.rates):
        raise BadParameter("area", f"no area {area[:80]!r} in today's inventory")
    return area


def _store(src: ApiSource) -> HistoryStore:
    store = src.history_store()
    if store is None:
        raise NoHistory("this monitor keeps no history store")
    return store


def _rate_row(r: RateRow) -> dict[str, Any]:
    return {"province": r.province, "area": r.area, "day": r.day.isoformat() if r.day else None,
            "communes": r.communes, "provisioned": r.provisioned, "with_data": r.with_data,
            "connected": r.connected, "in_use": r.in_use, "no_data": r.no_data,
            "connected_rate": r.connected_rate, "in_use_rate": r.in_use_rate, "provisioned_rate": r.provisioned_rate}


def _period_rate(p: PeriodRate) -> dict[str, Any]:
    return {"province": p.province, "area": p.area, "days": p.days, "days_no_data": p.days_no_data,
            "connected_rate": p.connected_rate, "in_use_rate": p.in_use_rate,
            "provisioned_rate": p.provisioned_rate, "connected_min": p.connected_min,
            "connected_max": p.connected_max}


def _definitions(cfg: Config) -> dict[str, Any]:
    return {"target": cfg.rates.target, "connected_min_availability": cfg.rates.connected_min_availability,
            "in_use_min_bytes": cfg.rates.in_use_min_bytes, "min_day_coverage": cfg.rates.min_day_coverage,
            "timezone": cfg.timezone, "method": "docs/design.md, Definitions auditors rely on"}


def _report(src: ApiSource, query: Mapping[str, str]) -> tuple[Report, Period, str | None]:
    """The audit's report of the period and area the query asks for."""
    snap = src.snapshot
    p, area = period(query, snap), _area(query, snap)
    return build_report(_store(src), src.cfg, p.first, p.last, area=area, now=snap.taken_at), p, area


def rates(src: ApiSource, query: Mapping[str, str]) -> dict[str, Any]:
    """/api/rates: now, each day and the period, for the province and its areas (or one area)."""
    snap = src.snapshot
    report, p, area = _report(src, query)
    return {
        "province": snap.province, "area": area, "from": p.first.isoformat(), "to": report.last.isoformat(),
        "definitions": _definitions(src.cfg),
        "now": [_rate_row(r) for r in snap.rates if area is None or r.area == area],
        "period": [_period_rate(r) for r in report.summary],
        "daily": [{**_rate_row(d.rate), "coverage": d.coverage, "sealed": d.seal is not None} for d in report.daily],
        "coverage": report.coverage,
        "chain_head": None if report.head is None else {"day": report.head.day.isoformat(),
                                                        "digest": report.head.digest},
    }


def _outage(o: Outage, code: str, name: str, area: str, tz: ZoneInfo) -> dict[str, Any]:
    return {"id": outage_id(code, o.start, tz), "code": code, "name": name, "area": area,
            "start": datetime.fromtimestamp(o.start, tz).isoformat(),
            "end": datetime.fromtimestamp(o.end, tz).isoformat(),
            "duration_s": round(o.duration, 3), "down_s": round(o.down_s, 3),
            "unreachable_s": round(o.unreachable_s, 3), "why": o.why, "cause": o.cause, "ended_by": o.ended_by}


def outages(src: ApiSource, query: Mapping[str, str]) -> dict[str, Any]:
    """/api/outages: every outage of the communes of the province (or one area) in the period."""
    snap = src.snapshot
    report, p, area = _report(src, query)
    tz = ZoneInfo(snap.timezone)
    return {"province": snap.province, "area": area, "from": p.first.isoformat(), "to": report.last.isoformat(),
            "outages": [_outage(o, t.code, t.name, t.area, tz) for o, t in report.outages]}


def commune(src: ApiSource, code: str, query: Mapping[str, str]) -> dict[str, Any] | None:
    """/api/communes/CODE: one commune's days and outages in the period (its own rows only); None: unknown."""
    snap = src.snapshot
    p = period(query, snap)
    store = _store(src)
    cfg = src.cfg.rates
    history = store.unit_history(code, p.first, p.last, src.cfg.tz)
    nodes: dict[int, tuple[InventoryNode, ...]] = {}
    days: list[dict[str, Any]] = []
    pieces: list[tuple[Any, OutagePiece]] = []
    totals: CommuneTotals | None = None
    for h in history:
        version = h.inventory_version
        if version is not None and version not in nodes:
            nodes[version] = store.inventory_nodes(version, code)
        for c in commune_days(h, nodes.get(version, ()) if version is not None else ()):
            if c.code != code:
                continue
            if totals is None:
                totals = CommuneTotals(c.unit, c.code, c.name, c.area)
            totals.add_day(h.day, c, min_availability=cfg.connected_min_availability,
                           in_use_min_bytes=cfg.in_use_min_bytes)
            data = has_data(c)
            sec = c.seconds
            days.append({"day": h.day.isoformat(), "provisioned": c.provisioned, "has_data": data,
                         "availability": sec.availability,
                         "connected": is_connected(sec, cfg.connected_min_availability) if data else None,
                         "in_use": is_in_use(sec, c.traffic_bytes, min_availability=cfg.connected_min_availability,
                                             in_use_min_bytes=cfg.in_use_min_bytes) if data else None,
                         "seconds": {"up": sec.up, "down": sec.down, "unreachable": sec.unreachable,
                                     "unknown": sec.unknown, "maintenance": sec.maintenance},
                         "traffic_bytes": c.traffic_bytes, "sealed": h.seal is not None})
            pieces.extend((u, piece) for u, piece in h.outages if u == c.unit)
    if totals is None:
        if not any(ns.node.code == code for ns in snap.nodes):
            return None
        totals = CommuneTotals(code, code, "", "")
    tz = ZoneInfo(snap.timezone)
    return {
        "code": code, "name": totals.name, "area": totals.area, "from": p.first.isoformat(),
        "to": p.last.isoformat(), "definitions": _definitions(src.cfg),
        "totals": {"days_active": totals.days_active, "days_provisioned": totals.days_provisioned,
                   "days_connected": totals.days_connected, "days_in_use": totals.days_in_use,
                   "availability": totals.seconds.availability, "coverage": totals.coverage,
                   "traffic_bytes": totals.traffic_bytes},
        "days": days,
        "outages": [_outage(o, code, totals.name, totals.area, tz)
                    for o in sorted(merge_outages(pieces), key=lambda o: o.start)],
    }


def inventory(src: ApiSource, *, show_address: bool) -> dict[str, Any]:
    """/api/inventory: the nodes monitored today, with their state now (addresses behind basic auth only)."""
    snap = src.snapshot
    out = []
    for ns in snap.nodes:
        n = ns.node
        row: dict[str, Any] = {"code": n.code, "name": n.name, "kind": n.kind, "province": n.province,
                               "area": n.area, "parent": n.parent, "lat": n.lat, "lon": n.lon,
                               "has_circuit": bool(n.address), "state": ns.state, "since": ns.since}
        if show_address:
            row["address"], row["address6"] = n.address, n.address6
        out.append(row)
    return {"province": snap.province, "taken_at": snap.taken_at, "nodes": out}


_DAY = {"type": "string", "format": "date"}
_PERIOD = [
    {"name": "from", "in": "query", "required": False, "schema": _DAY,
     "description": f"first local day (default: {DEFAULT_DAYS - 1} days before `to`)"},
    {"name": "to", "in": "query", "required": False, "schema": _DAY,
     "description": f"last local day, inclusive (default: today); at most {MAX_DAYS} days in all"},
]
_AREA = {"name": "area", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "one area of the province (its name as in the inventory)"}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {"400": {"description": "a bad parameter: the message names it", **_ERROR},
           "503": {"description": "no history store", **_ERROR}}
_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}

# -- maintenance windows declared at run time (issue 17, part 3) ---------------------------------------------


class WindowRequest(BaseModel):
    """The body of POST /api/maintenance (times: ISO 8601, naive ones in the province's timezone)."""

    model_config = ConfigDict(extra="forbid")

    codes: list[str] = Field(default_factory=list, max_length=20_000)
    areas: list[str] = Field(default_factory=list, max_length=500)
    start: datetime
    end: datetime | None = None
    duration_s: float | None = Field(None, gt=0)
    every: Literal["daily", "weekly"] | None = None
    until: date | None = None
    reason: str = Field(min_length=1, max_length=1000)
    approved_by: str | None = Field(None, max_length=255)


def window_json(w: MaintenanceWindow, tz: ZoneInfo) -> dict[str, Any]:
    def local(t: float | None) -> str | None:
        return None if t is None else datetime.fromtimestamp(t, tz).isoformat()

    return {"id": w.id, "start": local(w.start), "end": local(w.end), "codes": list(w.codes), "areas": list(w.areas),
            "every": w.recur, "until": w.until.isoformat() if w.until else None, "reason": w.reason,
            "declared_by": w.declared_by, "declared_at": local(w.declared_at), "approved_by": w.approved_by,
            "ended_at": local(w.ended_at), "ended_by": w.ended_by}


def maintenance_list(src: ApiSource, query: Mapping[str, str], now: float) -> dict[str, Any]:
    """/api/maintenance: the windows declared at run time that are not over (``all=1``: every one)."""
    store = _store(src)
    tz = ZoneInfo(src.cfg.timezone)
    found = store.maintenance_windows() if query.get("all") in ("1", "true") else store.maintenance_windows(
        now, float("inf"))
    return {"windows": [window_json(w, tz) for w in sorted(found, key=lambda w: -w.id)]}


def maintenance_add(src: ApiSource, body: Any, user: str, now: float) -> dict[str, Any]:
    """POST /api/maintenance: declare a window as ``user`` (the signed-in user is who declares it)."""
    try:
        req = WindowRequest.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadParameter(".".join(str(x) for x in first["loc"]) or "body", first["msg"]) from None
    tz = ZoneInfo(src.cfg.timezone)
    start = (req.start if req.start.tzinfo else req.start.replace(tzinfo=tz)).timestamp()
    if (req.end is None) == (req.duration_s is None):
        raise BadParameter("end", "give end or duration_s (one of them)")
    end = start + req.duration_s if req.duration_s is not None else (
        req.end if req.end.tzinfo else req.end.replace(tzinfo=tz)).timestamp()  # type: ignore[union-attr]
    w = MaintenanceWindow(0, start, end, tuple(req.codes), tuple(req.areas), req.reason.strip(), user, now, req.every,
                          req.until, req.approved_by)
    try:
        added = _store(src).add_window(w)
    except MaintenanceError as e:
        raise BadParameter("body", str(e)) from None
    return window_json(added, tz)


def maintenance_end(src: ApiSource, window_id: int, user: str, now: float) -> dict[str, Any]:
    """POST /api/maintenance/ID/end: end a window now, as ``user``."""
    try:
        ended = _store(src).end_window(window_id, now, user)
    except MaintenanceError as e:
        raise BadParameter("id", str(e)) from None
    return window_json(ended, ZoneInfo(src.cfg.timezone))


class NoteRequest(BaseModel):
    """The body of POST /api/outages/ID/notes: a note (a ticket, the cause as known), or an exclusion."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000)
    ticket: str | None = Field(None, max_length=255)
    cause: Literal["upstream", "power", "line", "filtered", "unknown"] | None = None
    exclude: bool = False
    approved_by: str | None = Field(None, max_length=255)


def note_json(n: OutageNote, tz: ZoneInfo) -> dict[str, Any]:
    return {"outage": outage_id(n.code, n.start, tz), "kind": n.kind, "note": n.note, "ticket": n.ticket,
            "cause": n.cause, "by": n.by, "approved_by": n.approved_by,
            "at": datetime.fromtimestamp(n.at, tz).isoformat()}


def outage_note_add(src: ApiSource, ident: str, body: Any, user: str, now: float) -> dict[str, Any]:
    """POST /api/outages/ID/notes: what ``user`` (signed in) says of an outage, or an approved exclusion."""
    try:
        req = NoteRequest.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadParameter(".".join(str(x) for x in first["loc"]) or "body", first["msg"]) from None
    tz = ZoneInfo(src.cfg.timezone)
    try:
        code, start = parse_outage_id(ident, tz)
    except ValueError as e:
        raise BadParameter("id", str(e)) from None
    try:
        note, reseal = _store(src).add_outage_note(
            code, start, kind=EXCLUSION if req.exclude else NOTE, note=req.note, by=user, at=now, ticket=req.ticket,
            cause=req.cause, approved_by=req.approved_by)
    except OutageNoteError as e:
        raise BadParameter("id" if "no outage" in str(e) else "body", str(e)) from None
    return {**note_json(note, tz), "resealed_from": reseal.from_day.isoformat() if reseal else None}


_WINDOW_WRITE = {"401": {"description": "basic auth required", **_ERROR},
                 "403": {"description": "writes need basic auth configured (web.config)", **_ERROR},
                 "415": {"description": "the body must be application/json", **_ERROR}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "tslcd-monitor", "version": "1",
             "description": "Connectivity of the communes of a province's dedicated government data network "
                            "(TSLCD): rates of any period, per area and per commune, computed by the same code "
                            "as `tslcd audit` (docs/design.md, Definitions auditors rely on). Times are local to "
                            "the configured timezone. With basic auth configured every path needs it."},
    "paths": {
        "/api/rates": {"get": {
            "summary": "Connection, in-use and provisioned rates: now, each day, and the period",
            "parameters": [*_PERIOD, _AREA],
            "responses": {"200": {"description": "the rates", **_OBJECT}, **_ERRORS}}},
        "/api/communes/{code}": {"get": {
            "summary": "One commune's days (availability, connected, in use) and outages in the period",
            "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "official commune code (or the node's code)"}, *_PERIOD],
            "responses": {"200": {"description": "the commune", **_OBJECT},
                          "404": {"description": "no node with that code", **_ERROR},
                          **_ERRORS}}},
        "/api/outages": {"get": {
            "summary": "Every outage of the communes in the period",
            "parameters": [*_PERIOD, _AREA],
            "responses": {"200": {"description": "the outages", **_OBJECT}, **_ERRORS}}},
        "/api/inventory": {"get": {
            "summary": "The nodes monitored today and their state now (addresses only behind basic auth)",
            "responses": {"200": {"description": "the inventory", **_OBJECT}}}},
        "/api/maintenance": {
            "get": {"summary": "Maintenance windows declared at run time that are not over (all=1: every one)",
                    "parameters": [{"name": "all", "in": "query", "schema": {"type": "string", "enum": ["1"]}}],
                    "responses": {"200": {"description": "the windows", **_OBJECT}, **_ERRORS}},
            "post": {"summary": "Declare a maintenance window (the signed-in user declares it); it covers the "
                                "nodes named and every node behind them; one begun before it is declared needs "
                                "approved_by",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["start", "reason"],
                         "properties": {"codes": {"type": "array", "items": {"type": "string"}},
                                        "areas": {"type": "array", "items": {"type": "string"}},
                                        "start": {"type": "string", "format": "date-time"},
                                        "end": {"type": "string", "format": "date-time"},
                                        "duration_s": {"type": "number"},
                                        "every": {"type": "string", "enum": ["daily", "weekly"]},
                                        "until": {"type": "string", "format": "date"},
                                        "reason": {"type": "string"}, "approved_by": {"type": "string"}}}}}},
                     "responses": {"200": {"description": "the window declared", **_OBJECT}, **_ERRORS,
                                   **_WINDOW_WRITE}}},
        "/api/outages/{id}/notes": {"post": {
            "summary": "Add a note (ticket, cause as known) to an outage, or exclude it from availability with a "
                       "named approver (exclude: true); the signed-in user is who says so",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "CODE@YYYY-MM-DDTHH:MM:SS (local start), as /api/outages gives it"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["note"],
                "properties": {"note": {"type": "string"}, "ticket": {"type": "string"},
                               "cause": {"type": "string",
                                         "enum": ["upstream", "power", "line", "filtered", "unknown"]},
                               "exclude": {"type": "boolean"}, "approved_by": {"type": "string"}}}}}},
            "responses": {"200": {"description": "the note added", **_OBJECT}, **_ERRORS, **_WINDOW_WRITE}}},
        "/api/maintenance/{id}/end": {"post": {
            "summary": "End a maintenance window now (the signed-in user ends it)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "the window ended", **_OBJECT}, **_ERRORS, **_WINDOW_WRITE}}},
        "/api/status.json": {"get": {
            "summary": "Everything the status page shows now",
            "responses": {"200": {"description": "the status", **_OBJECT}}}},
    },
    "components": {"schemas": {"Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}}}}},
}
