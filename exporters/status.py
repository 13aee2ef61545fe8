"""The status page's view of a snapshot: plain values for the page and /api/status.json, and the page itself."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from exporters.fmt import local_time, page_bytes, page_duration, page_pct
from exporters.labels import REASON_LABELS_VI, STATE_LABELS
from monitor.core.rates import RateRow
from monitor.core.snapshot import DaySummary, NodeStatus, RecentRates, Snapshot
from monitor.core.snmp import SnmpStatus

_STATE_ORDER = {"down": 0, "unreachable": 1, "unknown": 2, "maintenance": 3}

_env = Environment(loader=PackageLoader("exporters", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


_env.filters["bytes"] = page_bytes
_env.filters["pct"] = lambda x, digits=1: page_pct(x, digits, "chưa có số liệu / no data")
_env.filters["duration"] = lambda s: "–" if s is None else page_duration(s)


def status_view(snap: Snapshot) -> dict[str, Any]:
    """Everything the page and the JSON API show, as plain values."""
    tz = ZoneInfo(snap.timezone)
    names = {ns.node.code: ns.node.name for ns in snap.nodes}
    communes = [ns for ns in snap.nodes if ns.node.is_commune]
    not_up = sorted((ns for ns in snap.nodes if ns.state in _STATE_ORDER),
                    key=lambda ns: (_STATE_ORDER[ns.state], ns.since or 0, ns.node.code))
    province = snap.province_rate()

    def row(ns: NodeStatus) -> dict[str, Any]:
        n = ns.node
        return {
            "code": n.code, "name": n.name, "kind": n.kind, "area": n.area, "address": n.address,
            "state": ns.state, "state_label": STATE_LABELS.get(ns.state, ns.state),
            "since": local_time(ns.since, tz), "since_ts": ns.since,
            "for": page_duration(snap.taken_at - ns.since) if ns.since else "",
            "cause": ns.cause, "cause_name": names.get(ns.cause or "", ""),
            "loss": ns.loss, "rtt_ms": None if ns.rtt_avg is None else round(ns.rtt_avg * 1000, 2),
            "flapping": ns.flapping,
            "snmp": snmp_row(ns.snmp, ns.state),
        }

    return {
        "province": snap.province,
        "taken_at": local_time(snap.taken_at, tz),
        "taken_at_ts": snap.taken_at,
        "timezone": snap.timezone,
        "target": snap.target,
        "sweeps": snap.sweeps,
        "communes": province.communes,
        "provisioned": province.provisioned,
        "connected": province.connected,
        "connection_rate": province.rate,
        "provisioned_rate": province.provisioned_rate,
        "areas": [
            {"area": r.area, "communes": r.communes, "provisioned": r.provisioned, "connected": r.connected,
             "connection_rate": r.rate, "provisioned_rate": r.provisioned_rate}
            for r in snap.rates if r.province == snap.province and r.area
        ],
        "not_up": [row(ns) for ns in not_up],
        "no_circuit": [row(ns) for ns in communes if ns.state == "no_circuit"],
        "ping_only": [row(ns) for ns in snap.nodes if ns.snmp and ns.state == "up" and not ns.snmp.up],
        "snmp_nodes": [row(ns) for ns in snap.nodes if ns.snmp],
        "history": history_view(snap.history),
        "sweep": {"duration_s": round(snap.sweep.duration_s, 3), "ok": snap.sweep.ok,
                  "failed": snap.sweep.failed, "overrun": snap.sweep.overrun},
    }



def render_status_page(snap: Snapshot, refresh_s: int = 30) -> str:
    """The status page of a snapshot, as HTML (autoescaped)."""
    return _env.get_template("status.html").render(v=status_view(snap), refresh_s=refresh_s)


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
        return {"day": s.day.isoformat(), "coverage": s.coverage, "sealed": s.sealed,
                "communes": r.with_data, "connected": r.connected, "no_data": r.no_data, "in_use": r.in_use,
                "connected_rate": r.connected_rate, "in_use_rate": r.in_use_rate,
                "provisioned_rate": r.provisioned_rate}

    p = recent.province_row(recent.period)
    return {
        "today": row(recent.today),
        "days": [row(s) for s in reversed(recent.days)],  # newest first
        "period_days": len(recent.days),
        "period_connected_rate": p.connected_rate if p else None,
        "period_in_use_rate": p.in_use_rate if p else None,
        "period_provisioned_rate": p.provisioned_rate if p else None,
    }


