"""HTTP: /metrics (cached exposition), / (status page), /api/status.json, /healthz."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from exporters.metrics import CONTENT_TYPE
from monitor.recorder import history_view
from monitor.snapshot import NodeStatus, Snapshot
from monitor.snmp import snmp_row

if TYPE_CHECKING:
    from monitor.service import Monitor

MONITOR: web.AppKey[Monitor] = web.AppKey("monitor")


class ListenError(OSError):
    """The HTTP address cannot be bound; the message says which and what to do."""

_STATE_ORDER = {"down": 0, "unreachable": 1, "unknown": 2, "maintenance": 3}
STATE_LABELS = {
    "up": "hoạt động",
    "down": "mất kết nối",
    "unreachable": "không tới được",
    "unknown": "chưa rõ",
    "maintenance": "bảo trì",
    "no_circuit": "chưa có đường truyền",
}

_env = Environment(loader=PackageLoader("exporters", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt_time(ts: float | None, tz: ZoneInfo) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d} ngày {h} giờ"
    if h:
        return f"{h} giờ {m} phút"
    return f"{m} phút {s} giây" if m else f"{s} giây"


_env.filters["bytes"] = _fmt_bytes
_env.filters["duration"] = lambda s: "–" if s is None else _fmt_duration(s)


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
            "since": _fmt_time(ns.since, tz), "since_ts": ns.since,
            "for": _fmt_duration(snap.taken_at - ns.since) if ns.since else "",
            "cause": ns.cause, "cause_name": names.get(ns.cause or "", ""),
            "loss": ns.loss, "rtt_ms": None if ns.rtt_avg is None else round(ns.rtt_avg * 1000, 2),
            "flapping": ns.flapping,
            "snmp": snmp_row(ns.snmp, ns.state),
        }

    return {
        "province": snap.province,
        "taken_at": _fmt_time(snap.taken_at, tz),
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


async def _metrics(request: web.Request) -> web.Response:
    mon = request.app[MONITOR]
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    body = mon.metrics.body(gzipped=gz)
    resp = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
    if gz:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


async def _status_json(request: web.Request) -> web.Response:
    # Building the view of 20,000 nodes takes a fraction of a second: not in the event loop.
    def body(snap: Snapshot) -> str:
        return json.dumps(status_view(snap), ensure_ascii=False)

    text = await asyncio.to_thread(body, request.app[MONITOR].snapshot)
    return web.Response(text=text, content_type="application/json", charset="utf-8")


def render_status_page(snap: Snapshot, refresh_s: int = 30) -> str:
    """The status page of a snapshot, as HTML (autoescaped)."""
    return _env.get_template("status.html").render(v=status_view(snap), refresh_s=refresh_s)


async def _page(request: web.Request) -> web.Response:
    html = await asyncio.to_thread(render_status_page, request.app[MONITOR].snapshot)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def _healthz(request: web.Request) -> web.Response:
    mon = request.app[MONITOR]
    snap = mon.snapshot
    stale_after = 3 * mon.cfg.icmp.interval_s
    age = time.time() - snap.taken_at
    if snap.sweeps == 0:
        return web.Response(status=503, text="starting: no sweep has finished yet\n")
    if age > stale_after:
        return web.Response(status=503, text=f"stale: last sweep finished {age:.0f} s ago\n")
    return web.Response(text=f"ok: {snap.sweeps} sweeps, last {age:.0f} s ago\n")


def make_app(monitor: Monitor) -> web.Application:
    app = web.Application()
    app[MONITOR] = monitor
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status.json", _status_json)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _page)
    return app


async def start_server(monitor: Monitor, listen: str) -> tuple[web.AppRunner, str]:
    """Start serving on HOST:PORT (port 0 picks a free one); return the runner and the base URL."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    runner = web.AppRunner(make_app(monitor), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise ListenError(f"cannot listen on {listen}: {reason} (another tslcd running? choose another "
                          f"address with --listen or web.listen)") from None
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}/"
