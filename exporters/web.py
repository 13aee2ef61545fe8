"""HTTP: /metrics (cached exposition), / (status page), /api/status.json, /healthz; TLS and basic auth.

The server reads a ``Source`` (the running monitor: its latest snapshot, its cached
exposition and its config); it never probes and never imports the runtime.

Security follows the web configuration file Prometheus exporters share (exporter-toolkit:
``tls_server_config``, ``basic_auth_users`` with bcrypt hashes, ``http_server_config.headers``),
so Prometheus's own ``tls_config`` and ``basic_auth`` scrape settings just work. With users
configured every path needs them except ``/healthz`` (which says only whether sweeps run); a
refusal is a bare 401. The certificate and key are read again when their files change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import hashlib
import json
import logging
import os
import resource
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Middleware

from exporters import api
from exporters.api import ApiSource, BadParameter, NoHistory
from exporters.commune import CommuneSource, commune_view, find, window
from exporters.metrics import CONTENT_TYPE, MetricsCache
from exporters.status import render_commune_page, render_status_page, status_view
from monitor.config import TlsServerConfig, WebConfigFile
from monitor.core.snapshot import Snapshot
from monitor.errors import ListenError


class Source(CommuneSource, ApiSource, Protocol):
    """What the server reads of the monitor (monitor.runtime.service.Monitor)."""

    @property
    def metrics(self) -> MetricsCache: ...

    def health_problem(self) -> str | None: ...


log = logging.getLogger("tslcd.web")

SOURCE: web.AppKey[Source] = web.AppKey("source")
PUBLIC = frozenset({"/healthz"})  # answered without a password: it tells whether sweeps run, nothing else
_AUTH_CACHE_MAX = 64  # verified (user, password) pairs kept, so that a scrape every 15 s costs no bcrypt run
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                 "TLS13": ssl.TLSVersion.TLSv1_3}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes; a verified pair is remembered (by its SHA-256)."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._ok: dict[bytes, None] = {}

    async def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if not sep or hashed is None:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._ok:
            return True
        # bcrypt costs tens of milliseconds by design: off the event loop.
        if not await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed):
            return False
        if len(self._ok) >= _AUTH_CACHE_MAX:
            self._ok.pop(next(iter(self._ok)))
        self._ok[key] = None
        return True


_FD_RESERVE = 128  # descriptors kept for the store, the ICMP and SNMP sockets and the logs
_TLS_HANDSHAKE_S = 10.0  # a TLS client that has not finished its handshake by then is dropped


class Connections:
    """Bounds the connections the server holds, so that idle or slow clients cannot take every descriptor.

    At the cap a new connection closes the oldest idle one (connected, no request being answered) and takes
    its place: a scrape, which sends its request at once, is always the newest and so the last to go. When
    every connection is busy answering, the new one gets a bare 503. How long a connection may stay idle is
    aiohttp's keep-alive timeout, which also runs before the first request (``web.idle_timeout_s``).
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.busy: set[object] = set()  # connections answering a request (aiohttp's handlers take no weakref)
        self.closing: set[object] = set()  # evicted, not yet gone from server.connections
        self.evicted = 0
        self.refused = 0

    def admit(self, server: web.Server) -> asyncio.BaseProtocol:
        """The protocol for a connection just accepted: aiohttp's handler, or one answering 503."""
        handlers = server.connections  # oldest first
        if len(handlers) - len(self.closing) >= self.cap:
            self.closing &= set(handlers)
            if len(handlers) - len(self.closing) >= self.cap:
                idle = next((h for h in handlers if h not in self.busy and h not in self.closing), None)
                if idle is None:
                    self.refused += 1
                    return _Refuse()
                self.closing.add(idle)
                idle.force_close()
                self.evicted += 1
        return server()

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the request's connection busy while it is answered (busy connections are never evicted)."""
        proto = request.protocol
        self.busy.add(proto)
        try:
            return await handler(request)
        finally:
            self.busy.discard(proto)


LIMITS: web.AppKey[Connections] = web.AppKey("connections")


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: every connection the server holds is busy answering a request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
                        b"Connection: close\r\n\r\n")
        transport.close()


def connection_cap(wanted: int) -> int:
    """``wanted`` connections, or fewer when the open-files limit leaves less room (warned)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft - _FD_RESERVE >= wanted:
        return wanted
    cap = max(8, soft - _FD_RESERVE)
    log.warning("fewer HTTP connections than configured: the open-files limit is low "
                "(raise LimitNOFILE in the unit, or ulimit -n)",
                extra={"max_connections": wanted, "allowed": cap, "open_files_limit": soft})
    return cap


class _Site(web.BaseSite):
    """aiohttp's site on a socket bound beforehand, accepting through ``Connections``, with a TLS handshake
    deadline."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, *, ssl_context: ssl.SSLContext | None,
                 connections: Connections) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock
        self._connections = connections

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._ssl_context else 'http'}://{f'[{host}]' if ':' in host else host}:{port}/"

    async def start(self) -> None:
        await super().start()  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._connections.admit(server), sock=self._sock, ssl=self._ssl_context,
            ssl_handshake_timeout=_TLS_HANDSHAKE_S if self._ssl_context else None, backlog=self._backlog)


SD_LISTEN_FDS_START = 3  # systemd's socket-activation protocol (sd_listen_fds(3)): the first passed descriptor


def passed_socket() -> socket.socket | None:
    """The listening socket handed over by whoever started this process, or None.

    systemd's socket-activation protocol: ``LISTEN_PID`` is this process and ``LISTEN_FDS`` at least 1,
    the socket is descriptor 3. A systemd ``.socket`` unit passes one this way, and so does tslcd's own
    user-namespace sandbox (the socket stays in the namespace where it was bound). The variables are
    removed, as sd_listen_fds does, so that no child takes the socket for its own.
    """
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit() and int(count) >= 1):
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise ListenError("the socket passed by LISTEN_FDS is not a TCP socket")
    return sock


def bind_socket(listen: str) -> socket.socket:
    """A TCP socket bound to HOST:PORT (port 0 picks a free one) and listening; ListenError says why not."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    every = not host  # ":9750": every address of both families, as a server binding "" does
    if not port.isdigit() or int(port) > 65535:
        raise ListenError(f"cannot listen on {listen[:200]}: expected HOST:PORT with a port from 0 to 65535")
    try:
        infos = socket.getaddrinfo("::" if every and socket.has_ipv6 else host or None, int(port),
                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # A name with both families ("localhost"): its IPv4 address, where browsers and Prometheus look first.
        family, kind, proto, _, addr = min(infos, key=lambda i: i[0] != socket.AF_INET)
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError, UnicodeError) as e:
        raise ListenError(f"cannot listen on {listen}: {getattr(e, 'strerror', None) or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if every else 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise ListenError(f"cannot listen on {listen}: {reason} (another tslcd running? choose another "
                          f"address with --listen or web.listen)") from None
    sock.setblocking(False)
    return sock


def _guard(web_config: WebConfigFile | None) -> Middleware:
    users = {u: h.get_secret_value().encode() for u, h in (web_config.basic_auth_users if web_config else {}).items()}
    auth = BasicAuth(users) if users else None
    # Defaults every response carries (the page needs no script, frame or outside resource); the web
    # configuration file's headers add to them or replace them.
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"}
    headers.update(web_config.http_server_config.headers if web_config else {})

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if auth is not None and request.path not in PUBLIC and not await auth.allows(
                request.headers.get("Authorization")):
            resp: web.StreamResponse = web.Response(status=401, text="401 Unauthorized\n",
                                                    headers={"WWW-Authenticate": 'Basic realm="tslcd"'})
        else:
            resp = await handler(request)
        resp.headers.update(headers)
        return resp

    return guard


class TlsFiles:
    """The server's TLS context, loaded again for new connections when the certificate or key file changes."""

    def __init__(self, tls: TlsServerConfig, resolve: Callable[[Path], Path]) -> None:
        self.cert, self.key = resolve(tls.cert_file), resolve(tls.key_file)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = _TLS_VERSIONS[tls.min_version]
        self.context.maximum_version = _TLS_VERSIONS[tls.max_version]
        if tls.client_ca_file is not None:
            self.context.load_verify_locations(cafile=str(resolve(tls.client_ca_file)))
        self.context.verify_mode = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                                    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}[tls.client_auth_type]
        self._stamp: tuple[float, float] | None = None
        self.reload()

    def _mtimes(self) -> tuple[float, float]:
        return self.cert.stat().st_mtime, self.key.stat().st_mtime

    def reload(self) -> bool:
        """Load the pair when it changed since the last load; False when unchanged. Raises ListenError on bad files."""
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as e:
            raise ListenError(f"cannot load the TLS certificate {self.cert} and key {self.key}: "
                              f"{getattr(e, 'strerror', None) or e}") from None
        self._stamp = stamp
        return True

    async def watch(self, every_s: float = 5.0) -> None:
        """Reload on change until cancelled (the server's cleanup cancels it); a bad new pair keeps the old one."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.reload()
            except ListenError as e:
                log.error("TLS certificate not reloaded; keeping the last good one",
                          extra={"problem": str(e)})


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip (``gzip;q=0`` refuses it; ``*`` accepts it)."""
    quality: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip():
            quality[name.strip().lower()] = q
    return quality.get("gzip", quality.get("x-gzip", quality.get("*", 0.0))) > 0


async def _metrics(request: web.Request) -> web.Response:
    src = request.app[SOURCE]
    gz = accepts_gzip(request.headers.get("Accept-Encoding", ""))
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


def _validators(request: web.Request, snap: Snapshot) -> tuple[str, str]:
    """ETag and Last-Modified of a page: it changes with each sweep (and with its query), never between."""
    tag = hashlib.sha256(f"{snap.sweeps}\0{snap.taken_at!r}\0{request.path_qs}".encode()).hexdigest()[:20]
    return f'W/"{tag}"', email.utils.formatdate(snap.taken_at, usegmt=True)


def _not_modified(request: web.Request, etag: str, last_modified: str) -> web.Response | None:
    """304 when the client holds this sweep's page already (a wall display refreshing every 30 s)."""
    match = request.headers.get("If-None-Match")
    if match is not None:
        fresh = etag in {t.strip() for t in match.split(",")} or match.strip() == "*"
    else:
        fresh = request.headers.get("If-Modified-Since") == last_modified
    if not fresh:
        return None
    return web.Response(status=304, headers={"ETag": etag, "Last-Modified": last_modified})


def _html(text: str, etag: str, last_modified: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8",
                        headers={"ETag": etag, "Last-Modified": last_modified, "Cache-Control": "no-cache"})


async def _page(request: web.Request) -> web.Response:
    """/ and /area/NAME: the status page (one area's), with ?q= search and ?page= of the list not up."""
    snap = request.app[SOURCE].snapshot
    area = request.match_info.get("area")
    if area is not None and not any(r.area == area for r in snap.rates):
        return web.Response(status=404, text=f"404: no area {area[:80]!r} in today's inventory\n")
    q = request.query.get("q", "")
    raw_page = request.query.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 1_000_000:
        return web.Response(status=400, text=f"400: page: a page number from 1 is expected, got {raw_page[:20]!r}\n")
    if len(q) > 100:
        return web.Response(status=400, text="400: q: at most 100 characters\n")
    etag, last_modified = _validators(request, snap)
    if (cached := _not_modified(request, etag, last_modified)) is not None:
        return cached
    html = await asyncio.to_thread(render_status_page, snap, area=area, q=q, page=int(raw_page))
    return _html(html, etag, last_modified)


async def _commune(request: web.Request) -> web.Response:
    """/node/CODE: the commune's page (its own history rows only: key lookups in the store, off the loop)."""
    src = request.app[SOURCE]
    code = request.match_info["code"]
    snap = src.snapshot
    if find(snap, code) is None:
        return web.Response(status=404, text=f"404: no node with code {code[:64]!r} is monitored today\n")
    etag, last_modified = _validators(request, snap)
    if (cached := _not_modified(request, etag, last_modified)) is not None:
        return cached
    hours = src.commune_hours(code)
    first, last = window(snap)
    store = src.history_store()
    try:
        days = None if store is None else await asyncio.to_thread(store.unit_history, code, first, last,
                                                                  src.cfg.tz)
    except Exception as e:  # a damaged or busy store: the page still says what is known now
        log.warning("commune page without history", extra={"code": code, "problem": type(e).__name__})
        days = None
    signed_in = _signed_in(src)

    def page() -> str:
        view = commune_view(snap, code, days, hours, min_availability=src.cfg.rates.connected_min_availability,
                            show_address=signed_in)
        assert view is not None
        return render_commune_page(view)

    return _html(await asyncio.to_thread(page), etag, last_modified)


API_REPORTS: web.AppKey[asyncio.Semaphore] = web.AppKey("api_reports")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False), status=status, content_type="application/json",
                        charset="utf-8")


def _signed_in(src: Source) -> bool:
    """Basic auth is configured, so the guard let only signed-in users through to here."""
    return src.cfg.web_config is not None and bool(src.cfg.web_config.basic_auth_users)


async def _api(request: web.Request, answer: Callable[[Source], Any]) -> web.Response:
    """Run one API answer off the event loop (two period counts at most at once); errors as JSON naming the
    parameter."""
    src = request.app[SOURCE]
    try:
        async with request.app[API_REPORTS]:
            body = await asyncio.to_thread(answer, src)
    except BadParameter as e:
        return _json({"error": str(e), "parameter": e.name}, 400)
    except NoHistory as e:
        return _json({"error": str(e)}, 503)
    if body is None:
        return _json({"error": f"no node with code {request.match_info.get('code', '')[:64]!r}"}, 404)
    return _json(body)


async def _api_rates(request: web.Request) -> web.Response:
    return await _api(request, lambda src: api.rates(src, request.query))


async def _api_outages(request: web.Request) -> web.Response:
    return await _api(request, lambda src: api.outages(src, request.query))


async def _api_commune(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    return await _api(request, lambda src: api.commune(src, code, request.query))


async def _api_inventory(request: web.Request) -> web.Response:
    src = request.app[SOURCE]
    return _json(api.inventory(src, show_address=_signed_in(src)))


def _user(request: web.Request) -> str:
    """The signed-in user (the guard has checked the password already)."""
    header = request.headers.get("Authorization", "")
    try:
        return base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


async def _write(request: web.Request, answer: Callable[[Source, str, float], Any]) -> web.Response:
    """A write through the API: only with basic auth configured (the signed-in user is recorded as who did it),
    a JSON body, one at a time with the reports; errors as JSON naming the parameter."""
    src = request.app[SOURCE]
    if not _signed_in(src):
        return _json({"error": "writes need basic auth configured (web.config: basic_auth_users): they record "
                               "who made them"}, 403)
    if request.content_type != "application/json":
        return _json({"error": "the body must be JSON (Content-Type: application/json)"}, 415)
    user = _user(request)
    now = time.time()
    try:
        async with request.app[API_REPORTS]:
            body = await asyncio.to_thread(answer, src, user, now)
    except BadParameter as e:
        return _json({"error": str(e), "parameter": e.name}, 400)
    except NoHistory as e:
        return _json({"error": str(e)}, 503)
    return _json(body)


async def _api_maintenance(request: web.Request) -> web.Response:
    return await _api(request, lambda src: api.maintenance_list(src, request.query, time.time()))


async def _api_maintenance_add(request: web.Request) -> web.Response:
    try:
        body = await request.json() if request.content_type == "application/json" else None
    except ValueError:
        return _json({"error": "the body is not valid JSON"}, 400)
    return await _write(request, lambda src, user, now: api.maintenance_add(src, body, user, now))


async def _api_maintenance_end(request: web.Request) -> web.Response:
    try:
        window_id = int(request.match_info["id"])
    except ValueError:
        return _json({"error": "the window id is a number", "parameter": "id"}, 400)
    return await _write(request, lambda src, user, now: api.maintenance_end(src, window_id, user, now))


async def _api_outage_note(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    try:
        body = await request.json() if request.content_type == "application/json" else None
    except ValueError:
        return _json({"error": "the body is not valid JSON"}, 400)
    return await _write(request, lambda src, user, now: api.outage_note_add(src, ident, body, user, now))


async def _api_openapi(request: web.Request) -> web.Response:
    return _json(api.OPENAPI)


async def _healthz(request: web.Request) -> web.Response:
    src = request.app[SOURCE]
    snap = src.snapshot
    stale_after = 3 * src.cfg.icmp.interval_s
    age = time.time() - snap.taken_at
    if snap.standby is not None:  # healthy while it can see the store, to take over when the active one stops
        problem = src.health_problem()
        return web.Response(status=503 if problem else 200,
                            text=f"unhealthy standby: {problem}\n" if problem else "ok: standby\n")
    if snap.sweeps == 0:
        return web.Response(status=503, text="starting: no sweep has finished yet\n")
    if age > stale_after:
        return web.Response(status=503, text=f"stale: last sweep finished {age:.0f} s ago\n")
    problem = src.health_problem()
    if problem:  # monitoring goes on, but what it sees is not kept: the figures of the day will lack it
        return web.Response(status=503, text=f"unhealthy: {problem}\n")
    return web.Response(text=f"ok: {snap.sweeps} sweeps, last {age:.0f} s ago\n")


def make_app(source: Source) -> web.Application:
    """The aiohttp application serving ``source`` (basic auth and headers from its web configuration file)."""
    connections = Connections(source.cfg.web.max_connections)
    app = web.Application(middlewares=[connections.track, _guard(source.cfg.web_config)])
    app[SOURCE] = source
    app[LIMITS] = connections
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status.json", _status_json)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _page)
    app.router.add_get("/node/{code}", _commune)
    app.router.add_get("/area/{area}", _page)
    app[API_REPORTS] = asyncio.Semaphore(2)
    app.router.add_get("/api/rates", _api_rates)
    app.router.add_get("/api/outages", _api_outages)
    app.router.add_get("/api/communes/{code}", _api_commune)
    app.router.add_get("/api/inventory", _api_inventory)
    app.router.add_get("/api/openapi.json", _api_openapi)
    app.router.add_get("/api/maintenance", _api_maintenance)
    app.router.add_post("/api/maintenance", _api_maintenance_add)
    app.router.add_post("/api/maintenance/{id}/end", _api_maintenance_end)
    app.router.add_post("/api/outages/{id}/notes", _api_outage_note)
    return app


async def start_server(source: Source, listen: str) -> tuple[web.AppRunner, str]:
    """Start serving on HOST:PORT (port 0 picks a free one), or on the socket passed by LISTEN_FDS when there is
    one; return the runner and the base URL."""
    sock = passed_socket()
    if sock is not None:
        log.info("serving on the socket passed by LISTEN_FDS, not web.listen",
                 extra={"address": str(sock.getsockname()[:2])})
    else:
        sock = bind_socket(listen)
    web_config = source.cfg.web_config
    try:
        tls = TlsFiles(web_config.tls_server_config, web_config.path) \
            if web_config is not None and web_config.tls_server_config is not None else None
    except BaseException:
        sock.close()
        raise
    app = make_app(source)
    if tls is not None:
        async def watch(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(tls.watch())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(watch)
    connections = app[LIMITS]
    connections.cap = connection_cap(source.cfg.web.max_connections)
    # keepalive_timeout also runs from the moment a connection is made (aiohttp 3.14): an idle or slow client
    # is closed once it has not sent a whole request head for that long.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=source.cfg.web.idle_timeout_s)
    await runner.setup()
    site = _Site(runner, sock, ssl_context=tls.context if tls else None, connections=connections)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        sock.close()
        raise ListenError(f"cannot serve on {listen}: {os.strerror(e.errno).lower() if e.errno else e}") from None
    return runner, site.name
