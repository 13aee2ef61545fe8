"""The status page's view of a snapshot: plain values for the page and /api/status.json, and the page itself."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from exporters.carriers import carrier_rows, has_carriers
from exporters.fmt import local_time, page_bytes, page_duration, page_pct
from exporters.labels import CAUSE_LABELS, REASON_LABELS_VI, STATE_LABELS
from monitor.config import NATIONAL
from monitor.core.rates import RateRow
from monitor.core.snapshot import DaySummary, NodeStatus, RecentRates, Snapshot
from monitor.core.snmp import SnmpStatus

_STATE_ORDER = {"down": 0, "unreachable": 1, "unknown": 2, "maintenance": 3}

_env = Environment(loader=PackageLoader("exporters", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


_env.filters["bytes"] = page_bytes
_env.filters["pct"] = lambda x, digits=1: page_pct(x, digits, "chưa có số liệu / no data")
_env.filters["duration"] = lambda s: "–" if s is None else page_duration(s)


PAGE_ROWS = 100  # rows of a list on one page: a province with 20,000 communes down is 200 pages, not 7 MB


def fold(text: str) -> str:
    """Text as search compares it: no accents, no case, single spaces ("Xã Ea Kao" and "xa  ea kao" agree)."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).casefold().split())


def _page(rows: list[Any], page: int, size: int | None) -> tuple[list[Any], dict[str, int]]:
    """One page of ``rows`` (all of them when ``size`` is None) and where it is among them."""
    total = len(rows)
    if size is None:
        return rows, {"total": total, "page": 1, "pages": 1}
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    return rows[(page - 1) * size:page * size], {"total": total, "page": page, "pages": pages}


_FOLDED: list[Any] = [None, {}]  # the nodes tuple of the last snapshot searched, and its names folded


def _folded_names(snap: Snapshot) -> dict[str, str]:
    """Every node's name as search compares it, folded once per snapshot (20,000 names: 40 ms), not per query."""
    nodes, names = _FOLDED
    if nodes is not snap.nodes:  # identity, not id(): the tuple is held, so its id cannot be reused meanwhile
        names = {ns.node.code: fold(ns.node.name) for ns in snap.nodes}
        _FOLDED[:] = [snap.nodes, names]
    return names  # type: ignore[no-any-return]


def status_view(snap: Snapshot, *, area: str | None = None, q: str = "", page: int = 1,
                page_rows: int | None = None) -> dict[str, Any]:
    """Everything the page and the JSON API show, as plain values.

    ``area``: the nodes and rates of that area only (/area/NAME). ``q``: the nodes whose code or name
    matches, accents and case aside. ``page_rows``: lists cut to pages of that many rows (the HTML page;
    the JSON API has them whole); ``page`` is the page of the list of nodes not up.
    """
    tz = ZoneInfo(snap.timezone)
    names = {ns.node.code: ns.node.name for ns in snap.nodes}
    nodes = [ns for ns in snap.nodes if area is None or ns.node.area == area]
    communes = [ns for ns in nodes if ns.node.is_commune]
    not_up = sorted((ns for ns in nodes if ns.state in _STATE_ORDER),
                    key=lambda ns: (_STATE_ORDER[ns.state], ns.since or 0, ns.node.code))
    headline = snap.province_rate() if area is None else next(
        (r for r in snap.rates if r.province == snap.province and r.area == area),
        RateRow(snap.province, area, 0, 0, 0))

    def row(ns: NodeStatus) -> dict[str, Any]:
        n = ns.node
        return {
            "code": n.code, "name": n.name, "kind": n.kind, "area": n.area, "address": n.address,
            "carrier": n.carrier or "",
            "state": ns.state, "state_label": STATE_LABELS.get(ns.state, ns.state),
            "since": local_time(ns.since, tz), "since_ts": ns.since,
            "for": page_duration(snap.taken_at - ns.since) if ns.since else "",
            "cause": ns.cause, "cause_name": names.get(ns.cause or "", ""),
            "outage_cause": ns.outage_cause,
            "outage_cause_label": CAUSE_LABELS.get(ns.outage_cause or "", (ns.outage_cause, ns.outage_cause)),
            "loss": ns.loss, "rtt_ms": None if ns.rtt_avg is None else round(ns.rtt_avg * 1000, 2),
            "flapping": ns.flapping,
            "snmp": snmp_row(ns.snmp, ns.state),
        }

    def rows(statuses: list[NodeStatus], number: int = 1) -> tuple[list[dict[str, Any]], dict[str, int]]:
        shown, pager = _page(statuses, number, page_rows)  # rows are built for the page only
        return [row(ns) for ns in shown], pager

    not_up_rows, not_up_pager = rows(not_up, page)
    no_circuit_rows, no_circuit_pager = rows([ns for ns in communes if ns.state == "no_circuit"])
    ping_only_rows, ping_only_pager = rows([ns for ns in nodes if ns.snmp and ns.state == "up" and not ns.snmp.up])
    snmp_rows, snmp_pager = rows([ns for ns in nodes if ns.snmp])
    wanted = fold(q)
    found: list[NodeStatus] = []
    if wanted:
        names = _folded_names(snap)
        found = [ns for ns in nodes if wanted in names[ns.node.code] or ns.node.code.casefold().startswith(wanted)]
    found_rows, found_pager = rows(found)
    # Per carrier (only when the inventory names carriers): the communes shown, cut off now / observed now.
    with_carriers = has_carriers(snap.nodes)
    carriers = [
        {"carrier": c.carrier, "label": c.label, "communes": c.communes, "observed": c.observed,
         "cut_off": c.cut_off, "available": c.available}
        for c in sorted(carrier_rows(nodes, scope=snap.province), key=lambda c: (c.carrier == "", c.carrier))
    ] if with_carriers else []  # the communes of no carrier named last
    view = {
        "province": snap.province,
        "area": area,
        "q": q,
        "taken_at": local_time(snap.taken_at, tz),
        "taken_at_ts": snap.taken_at,
        "timezone": snap.timezone,
        "target": snap.target,
        "sweeps": snap.sweeps,
        "standby": snap.standby,
        "communes": headline.communes,
        "provisioned": headline.provisioned,
        "connected": headline.connected,
        "connection_rate": headline.rate,
        "provisioned_rate": headline.provisioned_rate,
        "ipv6_ready": headline.ipv6_ready,
        "ipv6_rate": headline.ipv6_rate,
        "national": snap.province == NATIONAL,
        "provinces": [
            {"province": r.province, "communes": r.communes, "provisioned": r.provisioned, "connected": r.connected,
             "connection_rate": r.rate, "provisioned_rate": r.provisioned_rate}
            for r in snap.rates if r.area == "" and r.province != snap.province and area is None
        ],
        "areas": [
            {"province": r.province, "area": r.area, "communes": r.communes, "provisioned": r.provisioned,
             "connected": r.connected, "connection_rate": r.rate, "provisioned_rate": r.provisioned_rate}
            for r in snap.rates
            if r.area and area is None and (r.province == snap.province or snap.province == NATIONAL)
        ],
        "has_carriers": with_carriers,
        "carriers": carriers,
        "not_up": not_up_rows,
        "no_circuit": no_circuit_rows,
        "ping_only": ping_only_rows,
        "snmp_nodes": snmp_rows,
        "history": history_view(snap.history) if area is None else None,
        "sweep": {"duration_s": round(snap.sweep.duration_s, 3), "ok": snap.sweep.ok,
                  "failed": snap.sweep.failed, "overrun": snap.sweep.overrun},
    }
    if page_rows is not None:
        view["pages"] = {"not_up": not_up_pager, "no_circuit": no_circuit_pager, "ping_only": ping_only_pager,
                         "snmp_nodes": snmp_pager, "found": found_pager}
    if wanted:
        view["found"] = found_rows
    return view


def render_status_page(snap: Snapshot, refresh_s: int = 30, *, area: str | None = None, q: str = "",
                       page: int = 1) -> str:
    """The status page of a snapshot (of one area, with search results, one page of each list), as HTML."""
    view = status_view(snap, area=area, q=q, page=page, page_rows=PAGE_ROWS)
    return _env.get_template("status.html").render(v=view, refresh_s=refresh_s, base="../" if area else "")


def render_commune_page(view: dict[str, Any]) -> str:
    """A commune's page (exporters.commune.commune_view), as HTML (autoescaped)."""
    return _env.get_template("commune.html").render(v=view)



def snmp_row(s: SnmpStatus | None, state: str) -> dict[str, Any] | None:
    """A node's SNMP status as plain values for the status page and /api/status.json."""
    if s is None:
        return None
    return {**asdict(s), "reason_label": REASON_LABELS_VI.get(s.reason, s.reason),
            "ping_only": state == "up" and not s.up}


def history_view(recent: RecentRates | None) -> dict[str, Any] | None:
    """Today and the last days as plain values for the status page (add as ``"history"`` in status_view)."""
    if recent is None:
        return None

    def row(s: DaySummary) -> dict[str, Any]:
        r = recent.province_row(s.rates) or RateRow(recent.province, "", 0, 0, 0)
        rx = recent.province_row(s.rates_x) if s.rates_x else None
        return {"day": s.day.isoformat(), "coverage": s.coverage, "sealed": s.sealed,
                "communes": r.with_data, "connected": r.connected, "no_data": r.no_data, "in_use": r.in_use,
                "connected_rate": r.connected_rate, "in_use_rate": r.in_use_rate,
                "provisioned_rate": r.provisioned_rate,
                "connected_rate_x": rx.connected_rate if rx is not None else None}

    p = recent.province_row(recent.period)
    px = recent.province_row(recent.period_x) if recent.period_x else None
    return {
        "today": row(recent.today),
        "days": [row(s) for s in reversed(recent.days)],  # newest first
        "period_days": len(recent.days),
        "period_connected_rate": p.connected_rate if p else None,
        "period_in_use_rate": p.in_use_rate if p else None,
        "period_provisioned_rate": p.provisioned_rate if p else None,
        "period_connected_rate_x": px.connected_rate if px else None,
    }


