"""HTTP: /metrics (cached exposition), / (status page), /api/status.json, /healthz.

The server reads a ``Source`` (the running monitor: its latest snapshot, its cached
exposition and its config); it never probes and never imports the runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Protocol

from aiohttp import web

from exporters.metrics import CONTENT_TYPE, MetricsCache
from exporters.status import render_status_page, status_view
from monitor.config import Config
from monitor.core.snapshot import Snapshot
from monitor.errors import ListenError


class Source(Protocol):
    """What the server reads of the monitor (monitor.runtime.service.Monitor)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def metrics(self) -> MetricsCache: ...


SOURCE: web.AppKey[Source] = web.AppKey("source")


async def _metrics(request: web.Request) -> web.Response:
    src = request.app[SOURCE]
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    body = src.metrics.body(gzipped=gz)
    resp = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
    if gz:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


async def _status_json(request: web.Request) -> web.Response:
    # Building the view of 20,000 nodes takes a fraction of a second: not in the event loop.
    def body(snap: Snapshot) -> str:
        return json.dumps(status_view(snap), ensure_ascii=False)

    text = await asyncio.to_thread(body, request.app[SOURCE].snapshot)
    return web.Response(text=text, content_type="application/json", charset="utf-8")


async def _page(request: web.Request) -> web.Response:
    html = await asyncio.to_thread(render_status_page, request.app[SOURCE].snapshot)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def _healthz(request: web.Request) -> web.Response:
    src = request.app[SOURCE]
    snap = src.snapshot
    stale_after = 3 * src.cfg.icmp.interval_s
    age = time.time() - snap.taken_at
    if snap.sweeps == 0:
        return web.Response(status=503, text="starting: no sweep has finished yet\n")
    if age > stale_after:
        return web.Response(status=503, text=f"stale: last sweep finished {age:.0f} s ago\n")
    return web.Response(text=f"ok: {snap.sweeps} sweeps, last {age:.0f} s ago\n")


def make_app(source: Source) -> web.Application:
    """The aiohttp application serving ``source``."""
    app = web.Application()
    app[SOURCE] = source
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status.json", _status_json)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _page)
    return app


async def start_server(source: Source, listen: str) -> tuple[web.AppRunner, str]:
    """Start serving on HOST:PORT (port 0 picks a free one); return the runner and the base URL."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    runner = web.AppRunner(make_app(source), access_log=None)
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
