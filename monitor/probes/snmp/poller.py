"""SNMP polling (pysnmp only): one engine, bounded requests, uplink discovery, failures classified as results.

This package is the only code that talks to pysnmp and catches its errors. A poll
of a node returns one ``SnmpReading``; a failure is a reading with a ``Reason``, never an
exception out of ``SnmpPoller.poll``.

What a poll does (issue 4):

- **First contact** with a node that has an ``uplink``: one GETBULK reads sysDescr,
  sysObjectID, sysUpTime and sysName (as non-repeaters) together with the ifName column
  (as the repeater); ifAlias and then ifDescr are walked only when no ifName is the
  uplink's name (exact, then ignoring case). Its ifIndex is cached. When more than
  ``discovery_batch`` nodes are new (a start), their discoveries are spread over the
  ``discovery_polls`` polls after the first; a node waiting for its turn gets the GET of the system group
  only (an OK reading without uplink, which says so).
- **Every poll**: one GET of sysUpTime, sysName, the cached ifIndex's name (to notice
  when the ifIndex moves, which triggers the discovery again in the same poll),
  ifOperStatus, ifHCIn/OutOctets (ifIn/OutOctets where the agent has no 64-bit
  counters: decided once, at the first GET that asks for both) and ifIn/OutErrors.
  sysDescr and sysObjectID are read again only after a reboot (sysUpTime went back).
- **Failures** are readings with a bounded ``Reason`` and a precise detail. A timeout is
  diagnosed with a small GET with the same credentials (answered: the agent is slow or the
  request too big) and then an SNMPv3 discovery probe, to tell "nothing answers" from "an
  agent answers, but not to our credentials": for v2c that is the signature of a wrong
  community (agents drop unknown communities silently, so a wrong community otherwise
  looks exactly like a timeout), for v3 authPriv of a wrong privacy key (agents drop what
  they cannot decrypt). v3 reports (usmStatsWrongDigests, UnknownUserNames,
  DecryptionErrors...) are classified directly.

Scale (docs/benchmarks.md, "SNMP poll"): v2c requests go without pysnmp's engine, on its
protocol API and a socket of ours (``V2cChannel``: a fifth to a quarter less CPU a GET; the engine is
used for v2c only by the diagnosis's SNMPv3 discovery probe). v3: one SnmpEngine per process (one
more per v3 user name reused with other keys). Every UDP socket's receive buffer is enlarged,
requests in flight are capped by one semaphore, one UdpTransportTarget per node is created (and,
v3, registered) once, all together before the requests, numeric OIDs are in pre-built ObjectTypes
shared by every node, ``lookupMib=False``, and a GET's VarBindList is built once for each set of
OIDs and shared by every request asking them (``varbind_list``: pysnmp builds one per request).
v3 targets after the first of each credentials set are registered without SNMP-TARGET-MIB rows
(``fast_configure``), and more than
``discovery_batch`` new uplinks are discovered over the ``discovery_polls`` polls after the
first, so that the first poll after a start fits the interval too. What pysnmp learns of
each v3 agent (engine ID, localized keys) is kept in dicts (``PeerKeysUsm``), not in
usmUserTable rows.

The readings, and the pure folding the service does with them (``plan_poll``,
``fold_readings``, ``uplink_deltas``, ``snmp_status``), are in monitor.core.snmp; the pysnmp
patches in monitor.probes.snmp.pysnmp_patches; profile handling in monitor.probes.snmp.profiles.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import VB_PROCESSOR
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

from monitor.core import counters
from monitor.core.snmp import Reason, SnmpReading, UplinkReading
from monitor.probes.snmp.oids import (
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_IN_ERRORS,
    IF_IN_OCTETS,
    IF_NAME,
    IF_OPER_STATUS,
    IF_OUT_ERRORS,
    IF_OUT_OCTETS,
    NAME_COLUMNS,
    NAMES,
    OID,
    SCALARS,
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    oid_name,
)
from monitor.probes.snmp.profiles import AUTH_PROTOCOLS, PRIV_PROTOCOLS, PROBE_USER, profile_secrets, usm_groups
from monitor.probes.snmp.pysnmp_patches import (
    PeerKeysUsm,
    fast_configure,
    get_varbind_list,
    guard_receive,
    varbind_list,
)
from monitor.probes.snmp.v2c import V2cChannel, open_udp_socket
from monitor.text import scrub

if TYPE_CHECKING:
    from inventory.model import Node
    from monitor.config import SnmpProfile

log = logging.getLogger("tslcd.snmp")

SNMP_UNKNOWN_PDU_HANDLERS = "1.3.6.1.6.3.11.2.1.3"  # SNMP-MPD-MIB snmpUnknownPDUHandlers
_GARBAGE_KEPT = 1024  # senders of undigestible datagrams remembered for the diagnosis (oldest forgotten)
_VARBIND_LISTS_KEPT = 4096  # GET varbind lists kept (one per distinct set of OIDs: uplink ifIndexes differ)

__all__ = ["SnmpPoller"]


class _Failed(Exception):
    """Internal: a poll step failed; turned into a reading before leaving the poller."""

    def __init__(self, reason: Reason, detail: str, sent: int = 0) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.sent = sent  # requests a diagnosis sent



# ---------------------------------------------------------------- the poller


@dataclass
class _NodeCache:
    """What the poller remembers of one node between polls (I/O-side; counters live in SnmpTrack)."""

    key: tuple[Any, ...]  # address, port, profile, uplink: any change starts afresh
    target: UdpTransportTarget | Udp6TransportTarget | None = None
    probe_target: UdpTransportTarget | Udp6TransportTarget | None = None
    if_index: int | None = None
    column: OID = IF_NAME  # the column whose value named the uplink
    match_value: str = ""
    bits: int | None = None  # None until a GET has shown whether ifHC*Octets exist
    need_sys: bool = True  # read sysDescr/sysObjectID in the next poll
    last_uptime: counters.Uptime | None = None
    not_found_at: float | None = None
    get_plan: tuple[OID, ...] | None = None  # the GET's OIDs
    discover_at: int | None = None  # the poll (SnmpPoller._polls) of its first uplink discovery, None: at once


@dataclass(frozen=True, slots=True)
class _Names:
    rows: dict[OID, dict[int, str]]  # column -> ifIndex -> name
    pages: int
    complete: bool


Trace = Callable[[str], None]


def _vb(oid: OID) -> ObjectType:
    return ObjectType(ObjectIdentity(rfc1902.ObjectName(oid)))


def _is_exception_value(v: Any) -> bool:
    return isinstance(v, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView)


def _type_name(v: Any) -> str:
    return type(v).__name__


def _text(v: Any) -> str:
    return bytes(v.asOctets()).decode("utf-8", "replace").rstrip("\x00").strip()


def _show(v: Any) -> str:
    """A value for a transcript: type and value, strings quoted."""
    if isinstance(v, rfc1902.OctetString):
        return f'{_type_name(v)} "{_text(v)}"'
    if isinstance(v, univ.ObjectIdentifier):
        return f"{_type_name(v)} {'.'.join(str(x) for x in v)}"
    if _is_exception_value(v):
        return _type_name(v)
    if isinstance(v, univ.Integer):
        return f"{_type_name(v)} {int(v)}"
    return _type_name(v)



class SnmpPoller:
    """Polls nodes over SNMP v2c/v3; ``poll`` never raises for a node's failure.

    One pysnmp engine (one UDP socket) serves every profile, except that pysnmp keeps one
    set of keys per v3 user name in an engine: profiles that reuse a user name with other
    keys each get an engine of their own (else their keys would replace each other's and
    be copied, wrong, into the per-agent entries pysnmp makes at first contact).
    Engines are made inside the running event loop at the first poll (and again if a later
    poll runs in another loop). ``close()`` releases their sockets.
    """

    def __init__(self, profiles: Mapping[str, SnmpProfile], *, max_in_flight: int = 200,
                 max_repetitions: int = 20, max_pages: int = 50, rediscover_after_s: float = 600.0,
                 diagnose: bool = True, rcvbuf_bytes: int = 4 << 20, discovery_polls: int = 5,
                 discovery_batch: int = 2000,
                 clock: Callable[[], float] = time.time) -> None:
        if min(max_in_flight, max_repetitions, max_pages, discovery_polls, discovery_batch) < 1:
            raise ValueError("max_in_flight, max_repetitions, max_pages, discovery_polls and discovery_batch "
                             "must be at least 1")
        self.profiles = dict(profiles)
        self.max_in_flight = max_in_flight
        self.max_repetitions = max_repetitions
        self.max_pages = max_pages
        self.rediscover_after_s = rediscover_after_s
        self.discovery_polls = discovery_polls
        self.discovery_batch = discovery_batch
        self._polls = 0  # polls started (discovery slots are counted in polls)
        self.diagnose = diagnose
        self.rcvbuf_bytes = rcvbuf_bytes
        self.clock = clock
        self.rcvbuf_effective: int | None = None
        self._group = usm_groups(self.profiles)
        self._engines: dict[int, asyncio.Future[SnmpEngine]] = {}
        self._v2c: V2cChannel | None = None  # v2c requests, without the engine (made in _ready)
        self._v6: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._auth: dict[str, CommunityData | UsmUserData] = {}
        self._probe_auth = UsmUserData(PROBE_USER)
        self._contexts: dict[str, ContextData] = {}
        self._nodes: dict[str, _NodeCache] = {}
        self._vb_cache: dict[OID, ObjectType] = {}
        self._vbl_cache: dict[tuple[OID, ...], Any] = {}
        self._plans: dict[tuple[Any, ...], tuple[OID, ...]] = {}  # (need_sys, ifIndex, column, bits) -> OIDs
        self._secrets = tuple(s for p in self.profiles.values() for s in profile_secrets(p))
        # Senders of datagrams pysnmp could not digest (address -> what went wrong), read by the diagnosis.
        self._garbage: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def engines(self) -> int:
        """How many pysnmp engines (UDP sockets) the profiles need."""
        return max(self._group.values(), default=0) + 1

    async def _ready(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.close()
        self._loop = loop
        self._sem = asyncio.Semaphore(self.max_in_flight)
        self._v2c = V2cChannel(self._on_garbage, rcvbuf_bytes=self.rcvbuf_bytes)
        self._auth.clear()
        for cache in self._nodes.values():
            cache.target = cache.probe_target = None

    async def _engine(self, profile_name: str) -> SnmpEngine:
        group = self._group.get(profile_name, 0)
        made = self._engines.get(group)
        if made is not None and made.done() and (made.cancelled() or made.exception() is not None):
            made = None  # making it failed last time (e.g. no socket): try again
        if made is None:  # the first of many concurrent callers makes it; the others wait for it
            made = self._engines[group] = asyncio.ensure_future(self._make_engine())
        return await asyncio.shield(made)

    async def _make_engine(self) -> SnmpEngine:
        engine = SnmpEngine()
        if PeerKeysUsm.usable():
            engine.security_models[SnmpUSMSecurityModel.SECURITY_MODEL_ID] = PeerKeysUsm()
        else:  # a pysnmp without these internals: correct, but each new agent costs a walk of its users
            log.warning("pysnmp's USM internals changed: keeping its own USM (slow with many v3 agents)")
        await self._open_transport(engine, udp.DOMAIN_NAME, udp.UdpAsyncioTransport, socket.AF_INET)
        guard_receive(engine, self._on_garbage)
        # Resolve OIDs now: the first resolution loads the engine's MIB view (about 0.1 s of CPU),
        # which would otherwise stall the loop while the first requests' timers run.
        VB_PROCESSOR.make_varbinds(engine.cache, self._vbs(SCALARS))
        return engine

    def _on_garbage(self, address: Any, error: BaseException) -> None:
        """A datagram from ``address`` that pysnmp could not digest: dropped; the diagnosis will say so."""
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        if len(self._garbage) >= _GARBAGE_KEPT and host not in self._garbage:
            self._garbage.pop(next(iter(self._garbage)))
        self._garbage[host] = f"{type(error).__name__}"
        log.debug("a datagram that is not a usable SNMP message was dropped",
                  extra={"from": host, "error": type(error).__name__})

    async def _open_transport(self, engine: SnmpEngine, domain: tuple[int, ...], cls: Any, family: int) -> None:
        """Register a transport whose socket has a large receive buffer.

        One engine sends everything through one UDP socket: with the default buffer, 2,000
        GETs in flight gave 256 answers (issue 4). Buffers are sized before the first packet.
        """
        sock = open_udp_socket(family, self.rcvbuf_bytes)
        if family == socket.AF_INET:
            self.rcvbuf_effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        transport = cls()
        loop = asyncio.get_running_loop()
        # What pysnmp's open_client_mode does, but on our socket (its buffers set before the first packet).
        transport._lport = asyncio.ensure_future(loop.create_datagram_endpoint(lambda: transport, sock=sock))
        pysnmp_config.add_transport(engine, domain, transport)
        await transport._lport

    def close(self) -> None:
        """Close the engines' sockets and timers. Idempotent; the next poll opens them again."""
        engines, self._engines, self._loop, self._v6 = self._engines, {}, None, set()
        if self._v2c is not None:
            self._v2c.close()
            self._v2c = None
        for made in engines.values():
            if not made.done() or made.cancelled() or made.exception() is not None:
                made.cancel()
                continue
            try:
                made.result().close_dispatcher()
            except Exception:  # closing after the loop is gone must not mask the caller's error
                log.debug("closing an SNMP engine failed", exc_info=True)

    def forget(self, codes: Iterable[str]) -> None:
        """Drop what is cached of nodes that left the inventory."""
        for code in codes:
            self._nodes.pop(code, None)

    # -- polling --------------------------------------------------------------------------------

    async def poll(self, nodes: Sequence[Node], *, spread_s: float = 0.0) -> list[SnmpReading]:
        """Poll every node once; one reading per node, in order. Never raises for a node's failure.

        At most ``max_in_flight`` requests are in flight; ``spread_s`` spreads the nodes'
        starts evenly over that many seconds instead of starting them as fast as slots free.

        Three phases, because pysnmp rebuilds a map of all its targets (O(targets)) at the
        first v2c answer after any target is added: adding targets while answers arrive
        made a first poll quadratic (23 ms per node at 2,000 nodes). So new targets are all
        registered first, then every node is polled, then the nodes that timed out are
        diagnosed (their probe targets registered together too).
        """
        await self._ready()
        start, cpu = time.monotonic(), time.thread_time()
        self._polls += 1
        self._spread_discovery(nodes)
        await self._register(nodes, probes=False)
        deferred: dict[int, str] = {}

        async def one(i: int) -> SnmpReading:
            return await self.poll_node(nodes[i], _deferred=(deferred, i))

        readings = await self._each(len(nodes), one, spread_s)
        if deferred and self.diagnose:
            order = sorted(deferred)
            await self._register([nodes[i] for i in order], probes=True)

            async def diagnose(j: int) -> SnmpReading:
                i = order[j]
                return await self._diagnose_later(nodes[i], readings[i], deferred[i])

            for i, r in zip(order, await self._each(len(order), diagnose, 0.0), strict=True):
                readings[i] = r
        tally = Tally(r.reason.value for r in readings)
        # cpu_s: CPU time of the event loop's thread during the poll (in the SNMP worker: the poll's own).
        log.info("snmp poll", extra={"probe": "snmp", "nodes": len(nodes), "duration_s":
                                     round(time.monotonic() - start, 3), "cpu_s": round(time.thread_time() - cpu, 3),
                                     **{f"n_{k}": v for k, v in tally.items()}})
        return readings

    def _spread_discovery(self, nodes: Sequence[Node]) -> None:
        """Give each node seen for the first time a poll for its uplink discovery, within ``discovery_polls``.

        A discovery (a GETBULK of 24 values, then the GET) costs about 2.5 ms of CPU, twice a
        steady GET: 20,000 at once made the first poll miss the interval. When more than
        ``discovery_batch`` nodes are new, their discoveries are spread evenly over the
        ``discovery_polls`` polls AFTER this one, which already pays for their new targets
        (and, for v3, the engine discovery with each agent: with a third of the discoveries
        too, the first v3 poll of 20,000 nodes took 63 s). Fewer new nodes are all discovered
        at once. Until its turn, a node's GET reads the system group only (sysUpTime,
        sysName, sysDescr, sysObjectID): its reading is OK, with no uplink yet, and says so.
        """
        fresh = []
        for node in nodes:
            profile = self.profiles.get(node.snmp or "")
            if profile is None or not node.address or not node.uplink:
                continue
            cache = self._cache(node, profile)
            if cache.discover_at is None and cache.if_index is None and cache.not_found_at is None:
                fresh.append(cache)
        if len(fresh) <= self.discovery_batch:
            for cache in fresh:
                cache.discover_at = self._polls
            return
        polls = min(self.discovery_polls, -(-len(fresh) // self.discovery_batch))
        for k, cache in enumerate(fresh):
            cache.discover_at = self._polls + 1 + k * polls // len(fresh)

    async def _each(self, n: int, fn: Callable[[int], Any], spread_s: float) -> list[SnmpReading]:
        """Run ``fn(i)`` for i in range(n) on at most ``max_in_flight`` workers (no task per node)."""
        results: list[SnmpReading | None] = [None] * n
        queue = iter(range(n))
        start = time.monotonic()
        step = spread_s / n if n and spread_s > 0 else 0.0

        async def worker() -> None:
            for i in queue:
                if step:
                    delay = start + i * step - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                results[i] = await fn(i)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.max_in_flight, n))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    async def _register(self, nodes: Iterable[Node], *, probes: bool) -> None:
        """Add the nodes' targets (or probe targets) to pysnmp's LCD now, all together (see ``poll``).

        get_cmd would write each target as SNMP-TARGET-MIB rows on its first use (about 1.7 ms
        of CPU each: 34 s for 20,000 targets); ``fast_configure`` writes rows only for the first
        target of each credentials set and registers the others directly (about 0.05 ms each).
        The loop gets a turn every 50 targets.
        """
        done = 0
        for node in nodes:
            profile = self.profiles.get(node.snmp or "")
            if profile is None or not node.address:
                continue
            cache = self._cache(node, profile)
            if (cache.probe_target if probes else cache.target) is not None:
                continue
            try:
                engine = await self._engine(node.snmp or "")
                target = await self._target(engine, node.address, profile.port, profile.timeout_s,
                                            0 if probes else profile.retries)
                auth = self._auth_for(node.snmp or "", profile)
                if not isinstance(auth, CommunityData):  # v2c requests go without the engine (V2cChannel)
                    fast_configure(engine, auth, target, self._context(profile).contextName)
                if probes:
                    fast_configure(engine, self._probe_auth, target, b"")
            except Exception:  # left for the poll itself to report, node by node
                continue
            if probes:
                cache.probe_target = target
            else:
                cache.target = target
            done += 1
            if done % 50 == 0:
                await asyncio.sleep(0)

    async def poll_node(self, node: Node, *, trace: Trace | None = None,
                        _deferred: tuple[dict[int, str], int] | None = None) -> SnmpReading:
        """Poll one node; ``trace`` receives a line per request and per value read (for ``tslcd snmp probe``).

        A timeout is diagnosed at once (see ``_diagnose``), unless ``poll`` defers it.
        """
        t0 = time.monotonic()
        requests = [0]
        got: dict[str, Any] = {}
        profile = self.profiles.get(node.snmp or "")
        secrets = profile_secrets(profile) if profile else ()
        try:
            if not node.address:
                raise _Failed(Reason.NOT_POLLED, "the node has no address")
            if profile is None:
                raise _Failed(Reason.LOCAL_ERROR, f"no SNMP profile named {node.snmp!r} in the config")
            await self._ready()
            reading = await self._poll(node, profile, requests, got, trace, _deferred)
        except _Failed as f:
            reading = SnmpReading(node.code, self.clock(), f.reason, scrub(f.detail, secrets), **got)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or a pysnmp surprise: one node's failure, never the poll's
            what = scrub(f"{type(e).__name__}: {e}", self._secrets + secrets)
            # Where it happened (file:line and source), without the exception's text in a traceback.
            where = " | ".join(f"{f.filename}:{f.lineno} {f.line}" for f in traceback.extract_tb(e.__traceback__))
            log.error("SNMP poll of a node failed unexpectedly", extra={"code": node.code, "error": what,
                                                                         "where": where})
            reading = SnmpReading(node.code, self.clock(), Reason.LOCAL_ERROR, what, **got)
        reading = replace(reading, requests=requests[0], duration_s=time.monotonic() - t0)
        if trace:
            trace(f"result: {reading.reason.value}" + (f": {reading.detail}" if reading.detail else ""))
        return reading

    async def _diagnose_later(self, node: Node, reading: SnmpReading, kind: str) -> SnmpReading:
        """The deferred diagnosis of a node whose poll timed out; its reading with the reason found."""
        t0 = time.monotonic()
        profile = self.profiles[node.snmp or ""]
        try:
            engine = await self._engine(node.snmp or "")
            failed = await self._diagnose(engine, node, profile, self._cache(node, profile),
                                          self._auth_for(node.snmp or "", profile), self._context(profile), kind,
                                          None)
        except _Failed as f:
            failed = f
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failed = _Failed(reading.reason, f"{reading.detail} (diagnosis failed: {type(e).__name__})")
        return replace(reading, reason=failed.reason, detail=scrub(failed.detail, profile_secrets(profile)),
                       requests=reading.requests + failed.sent,
                       duration_s=reading.duration_s + time.monotonic() - t0)

    def _cache(self, node: Node, profile: SnmpProfile) -> _NodeCache:
        key = (node.address, profile.port, node.snmp, node.uplink, profile.timeout_s, profile.retries)
        cache = self._nodes.get(node.code)
        if cache is None or cache.key != key:
            cache = self._nodes[node.code] = _NodeCache(key)
        return cache

    def _auth_for(self, name: str, p: SnmpProfile) -> CommunityData | UsmUserData:
        auth = self._auth.get(name)
        if auth is None:
            if p.version == "2c":
                community = p.community.get_secret_value() if p.community else ""
                auth = CommunityData(community, mpModel=1)
            else:
                auth = UsmUserData(
                    p.user or "",
                    authKey=p.auth_key.get_secret_value() if p.auth_key and p.auth_protocol != "none" else None,
                    privKey=p.priv_key.get_secret_value() if p.priv_key and p.priv_protocol != "none" else None,
                    authProtocol=AUTH_PROTOCOLS[p.auth_protocol], privProtocol=PRIV_PROTOCOLS[p.priv_protocol])
            self._auth[name] = auth
        return auth

    def _context(self, p: SnmpProfile) -> ContextData:
        ctx = self._contexts.get(p.context)
        if ctx is None:
            ctx = self._contexts[p.context] = ContextData(contextName=p.context.encode())
        return ctx

    async def _target(self, engine: SnmpEngine, address: str, port: int, timeout_s: float,
                      retries: int) -> UdpTransportTarget | Udp6TransportTarget:
        try:
            if ":" in address:
                if id(engine) not in self._v6:
                    await self._open_transport(engine, udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport,
                                               socket.AF_INET6)
                    self._v6.add(id(engine))
                return await Udp6TransportTarget.create((address, port), timeout=timeout_s, retries=retries)
            return await UdpTransportTarget.create((address, port), timeout=timeout_s, retries=retries)
        except Exception as e:
            raise _Failed(Reason.LOCAL_ERROR, f"bad address {address!r}: {type(e).__name__}") from None

    async def _send(self, engine: SnmpEngine, auth: CommunityData | UsmUserData,
                    target: UdpTransportTarget | Udp6TransportTarget, ctx: ContextData, oids: Sequence[OID],
                    bulk: tuple[int, int] | None, secrets: Iterable[str], kind: str) -> tuple[Any, Any, Any, Any]:
        """One request behind the in-flight semaphore; pysnmp's exceptions become LOCAL_ERROR failures.

        A GET sends the VarBindList built once for its OIDs (``_varbind_list``); a GETBULK, pysnmp's own.
        v2c requests go through ``V2cChannel`` (pysnmp's protocol API on a socket of ours), v3 through
        the engine.
        """
        assert self._sem is not None and self._v2c is not None
        # pysnmp ends a request after its tries; a hostile reply can break that (its request is left pending
        # forever, pysnmp issue #122): no request outlives its tries by more than a second.
        deadline = float(target.timeout) * (int(target.retries) + 1) + 1.0
        async with self._sem:
            try:
                if isinstance(auth, CommunityData):
                    community = auth.communityName
                    sent = self._v2c.request(target.transport_address,
                                             community.encode() if isinstance(community, str) else bytes(community),
                                             oids if bulk else self._varbind_list(oids), bulk=bulk,
                                             timeout_s=float(target.timeout), retries=int(target.retries))
                elif bulk:
                    sent = bulk_cmd(engine, auth, target, ctx, bulk[0], bulk[1], *self._vbs(oids), lookupMib=False)
                else:
                    sent = get_varbind_list(engine, auth, target, ctx, self._varbind_list(oids))
                async with asyncio.timeout(deadline):  # a timer, not a task per request
                    r = await sent
                return r[0], r[1], r[2], r[3]
            except TimeoutError:
                return errind.RequestTimedOut(), 0, 0, []
            except Exception as e:
                raise _Failed(Reason.LOCAL_ERROR, f"{kind} could not be sent: {type(e).__name__}: "
                                                  f"{scrub(str(e), secrets)}") from None

    async def _poll(self, node: Node, profile: SnmpProfile, requests: list[int], got: dict[str, Any],
                    trace: Trace | None, deferred: tuple[dict[int, str], int] | None) -> SnmpReading:
        cache = self._cache(node, profile)
        engine = await self._engine(node.snmp or "")
        if cache.target is None:
            cache.target = await self._target(engine, node.address, profile.port, profile.timeout_s,
                                              profile.retries)
        auth = self._auth_for(node.snmp or "", profile)
        ctx = self._context(profile)
        secrets = profile_secrets(profile)

        async def request(kind: str, oids: Sequence[OID], *,
                          bulk: tuple[int, int] | None = None) -> list[tuple[OID, Any]]:
            requests[0] += 1
            if trace:
                what = f"non-repeaters {bulk[0]}, max-repetitions {bulk[1]}: " if bulk else ""
                trace(f"-> {kind} {what}{', '.join(oid_name(o) for o in oids)}")
            started = time.monotonic()
            assert cache.target is not None
            err, status, index, binds = await self._send(engine, auth, cache.target, ctx, oids, bulk, secrets, kind)
            took = time.monotonic() - started
            if err is not None:
                if trace:
                    trace(f"   {type(err).__name__} after {took:.3f} s")
                if isinstance(err, errind.RequestTimedOut) and self.diagnose:
                    if deferred is not None:
                        deferred[0][deferred[1]] = kind  # poll() diagnoses it after all nodes are polled
                    else:
                        failed = await self._diagnose(engine, node, profile, cache, auth, ctx, kind, trace)
                        requests[0] += failed.sent
                        raise failed
                raise _classify(err, node, profile, kind)
            if status:
                where = ""
                if index and 0 < int(str(index)) <= len(oids):
                    where = f" at {oid_name(oids[int(str(index)) - 1])}"
                text = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
                raise _Failed(Reason.AGENT_ERROR, f"the agent answered {kind} with error-status {text}{where}")
            out = [(tuple(oid), value) for oid, value in binds]
            if trace:
                trace(f"   {len(out)} values in {took * 1000:.1f} ms")
                for oid, value in out:
                    trace(f"   {oid_name(oid)} = {_show(value)}")
            return out

        names: _Names | None = None
        waiting = cache.discover_at is not None and cache.discover_at > self._polls  # its turn comes later
        if node.uplink and cache.if_index is None and self._may_discover(cache) and not waiting:
            names = await self._discover(node, cache, request, got)
        for _ in range(2):  # a GET; once more if the uplink's ifIndex moved and discovery found it again
            plan = self._plan(cache)
            values = dict(await request("GET", plan))
            self._read_system(values, plan, cache, got)
            if not node.uplink:
                return SnmpReading(node.code, self.clock(), Reason.OK, **got)
            if cache.if_index is None and waiting:
                return SnmpReading(node.code, self.clock(), Reason.OK,
                                   f"uplink {node.uplink!r} not looked for yet: its interfaces are read in "
                                   f"{(cache.discover_at or 0) - self._polls} poll(s) (the first polls after a start "
                                   "spread the uplink discoveries)", **got)
            if cache.if_index is None:
                where = f"looked in {names.pages} GETBULK page(s)" if names else "not looked for again yet"
                raise _Failed(Reason.UPLINK_NOT_FOUND,
                              f"no interface has ifName, ifAlias or ifDescr {node.uplink!r} ({where}; "
                              f"{self._seen(names)})")
            uplink = self._read_uplink(values, node.uplink, cache)
            if uplink is not None:
                got["uplink"] = uplink
                return SnmpReading(node.code, self.clock(), Reason.OK, **got)
            moved_from = cache.if_index
            cache.if_index = None
            cache.get_plan = None
            if trace:
                trace(f"   the uplink is no longer ifIndex {moved_from}: looking for it again")
            names = await self._discover(node, cache, request, got)
            if cache.if_index is None:
                raise _Failed(Reason.UPLINK_NOT_FOUND,
                              f"the uplink {node.uplink!r} was ifIndex {moved_from} and is now on no interface "
                              f"({self._seen(names)})")
        raise _Failed(Reason.UPLINK_NOT_FOUND, f"the uplink {node.uplink!r} keeps moving between ifIndexes")

    def _may_discover(self, cache: _NodeCache) -> bool:
        return cache.not_found_at is None or self.clock() - cache.not_found_at >= self.rediscover_after_s

    @staticmethod
    def _seen(names: _Names | None) -> str:
        if names is None:
            return "interfaces not read in this poll"
        found = sorted({n for rows in names.rows.values() for n in rows.values() if n})
        if not found:
            return "the agent has no ifName, ifAlias or ifDescr"
        shown = ", ".join(repr(n) for n in found[:12])
        return f"interfaces: {shown}{' ...' if len(found) > 12 else ''}"

    # -- discovery ------------------------------------------------------------------------------

    async def _discover(self, node: Node, cache: _NodeCache, request: Any, got: dict[str, Any]) -> _Names:
        """GETBULK the system scalars and the interface name columns until the uplink is found.

        Columns are walked one at a time, ifName first: the usual exact ifName match ends
        the discovery after one request of 4 + max_repetitions values.
        """
        uplink = node.uplink or ""
        rows: dict[OID, dict[int, str]] = {c: {} for c in NAME_COLUMNS}
        pages, first, complete = 0, True, True
        beyond: OID | None = None  # the first OID the agent returned past the previous column
        previous: OID | None = None
        for col in NAME_COLUMNS:
            if beyond is not None and previous is not None and col > previous and beyond[:len(col)] > col:
                previous = col
                continue  # the agent's next object after the previous column is already past this one
            cursor, beyond = col, None
            while beyond is None:
                if pages >= self.max_pages:
                    complete = False
                    break
                oids = (SCALARS if first else ()) + (cursor,)
                n_scalar = len(SCALARS) if first else 0
                binds = await request("GETBULK", oids, bulk=(n_scalar, self.max_repetitions))
                pages += 1
                if first:
                    self._read_scalars(binds[:n_scalar], got, cache)
                    first = False
                body = binds[n_scalar:]
                if not body:
                    beyond = (0,)
                for oid, value in body:
                    if oid[:len(col)] != col or len(oid) != len(col) + 1 or _is_exception_value(value) \
                            or oid <= cursor:
                        beyond = oid  # past the end of the column (or a broken agent: stop, never loop)
                        break
                    cursor = oid
                    if isinstance(value, rfc1902.OctetString):
                        rows[col][oid[-1]] = _text(value)
                if any(name == uplink for name in rows[col].values()):
                    break  # an exact match in this column beats anything after it
            previous = col
            if not complete or any(name == uplink for name in rows[col].values()):
                break
        names = _Names(rows, pages, complete)
        found = _match(rows, uplink)
        if found:
            cache.column, cache.if_index, _ = found
            cache.match_value = rows[cache.column][cache.if_index]
            cache.not_found_at = None
        else:
            cache.if_index = None
            cache.not_found_at = self.clock()
        cache.get_plan = None
        return names

    def _read_scalars(self, binds: Sequence[tuple[OID, Any]], got: dict[str, Any], cache: _NodeCache) -> None:
        """The GETBULK non-repeaters: GETNEXT of each scalar, which must come back as scalar.0."""
        wanted = {SYS_DESCR: "sys_descr", SYS_OBJECT_ID: "sys_object_id", SYS_UPTIME: "uptime_ticks",
                  SYS_NAME: "sys_name"}
        if len(binds) < len(SCALARS):
            raise _Failed(Reason.AGENT_ERROR, "the agent's GETBULK answer lacks the system scalars")
        for (oid, value), scalar in zip(binds, SCALARS, strict=False):
            if oid != scalar + (0,) or _is_exception_value(value):
                if scalar == SYS_UPTIME:
                    raise _Failed(Reason.NO_SUCH_OBJECT, "the agent has no sysUpTime.0")
                continue
            if scalar == SYS_UPTIME:
                got["uptime_ticks"] = self._ticks(value)
            elif scalar == SYS_OBJECT_ID and isinstance(value, univ.ObjectIdentifier):
                got["sys_object_id"] = ".".join(str(x) for x in value)
            elif isinstance(value, rfc1902.OctetString):
                got[wanted[scalar]] = _text(value)
        cache.need_sys = False

    # -- the GET ----------------------------------------------------------------------------------

    def _plan(self, cache: _NodeCache) -> tuple[OID, ...]:
        """The GET's OIDs: one tuple for every node that reads the same (about 1.8 KB of OIDs, which 20,000
        nodes each kept of their own), worked out once for each thing to read."""
        key = (cache.need_sys, cache.if_index, cache.column, cache.bits)
        plan = self._plans.get(key)
        if plan is None:
            oids: list[OID] = [SYS_UPTIME + (0,), SYS_NAME + (0,)]
            if cache.need_sys:
                oids += [SYS_DESCR + (0,), SYS_OBJECT_ID + (0,)]
            if cache.if_index is not None:
                i = cache.if_index
                oids += [cache.column + (i,), IF_OPER_STATUS + (i,)]
                if cache.bits != 32:
                    oids += [IF_HC_IN_OCTETS + (i,), IF_HC_OUT_OCTETS + (i,)]
                if cache.bits != 64:
                    oids += [IF_IN_OCTETS + (i,), IF_OUT_OCTETS + (i,)]
                oids += [IF_IN_ERRORS + (i,), IF_OUT_ERRORS + (i,)]
            if len(self._plans) >= _VARBIND_LISTS_KEPT:
                self._plans.clear()  # nodes' caches keep theirs
            plan = self._plans[key] = tuple(oids)
        cache.get_plan = plan
        return plan

    def _varbind_list(self, oids: Sequence[OID]) -> Any:
        """The GET's VarBindList for ``oids``, built once and shared by every node and request asking them."""
        key = tuple(oids)
        vbl = self._vbl_cache.get(key)
        if vbl is None:
            if len(self._vbl_cache) >= _VARBIND_LISTS_KEPT:
                self._vbl_cache.pop(next(iter(self._vbl_cache)))
            vbl = self._vbl_cache[key] = varbind_list(key)
        return vbl

    def _vbs(self, oids: Sequence[OID]) -> tuple[ObjectType, ...]:
        """Pre-built ObjectTypes, one per distinct OID, shared by every node and request.

        Building and resolving an ObjectType costs about 0.1 ms; once resolved it is only
        read, so one instance serves all (sysUpTime.0 for every node, ifName.1 for many).
        """
        out = []
        for oid in oids:
            vb = self._vb_cache.get(oid)
            if vb is None:
                vb = self._vb_cache[oid] = _vb(oid)
            out.append(vb)
        return tuple(out)

    @staticmethod
    def _ticks(value: Any) -> int:
        if not isinstance(value, rfc1902.TimeTicks):
            raise _Failed(Reason.UNEXPECTED_TYPE, f"sysUpTime.0 is {_type_name(value)}, expected TimeTicks")
        return int(value)

    def _read_system(self, values: Mapping[OID, Any], asked: Sequence[OID], cache: _NodeCache,
                     got: dict[str, Any]) -> None:
        missing = [o for o in asked if o not in values]
        if missing:
            raise _Failed(Reason.AGENT_ERROR, f"the agent's answer lacks {', '.join(oid_name(o) for o in missing)}")
        up = values[SYS_UPTIME + (0,)]
        if _is_exception_value(up):
            raise _Failed(Reason.NO_SUCH_OBJECT, f"sysUpTime.0 is {_type_name(up)}")
        ticks = self._ticks(up)
        got["uptime_ticks"] = ticks
        name = values[SYS_NAME + (0,)]
        if isinstance(name, rfc1902.OctetString):
            got["sys_name"] = _text(name)
        if SYS_DESCR + (0,) in values:
            descr, oid = values[SYS_DESCR + (0,)], values[SYS_OBJECT_ID + (0,)]
            if isinstance(descr, rfc1902.OctetString):
                got["sys_descr"] = _text(descr)
            if isinstance(oid, univ.ObjectIdentifier):
                got["sys_object_id"] = ".".join(str(x) for x in oid)
            cache.need_sys = False
        now = self.clock()
        if counters.restarted(cache.last_uptime, ticks, now):
            cache.need_sys = True  # a reboot may be a new firmware: read sysDescr/sysObjectID again
            cache.get_plan = None
        cache.last_uptime, _ = counters.next_uptime(cache.last_uptime, ticks, now)

    def _read_uplink(self, values: Mapping[OID, Any], uplink: str, cache: _NodeCache) -> UplinkReading | None:
        """The uplink's values, or None when its ifIndex no longer names it (it moved)."""
        i = cache.if_index
        assert i is not None
        key = values[cache.column + (i,)]
        if _is_exception_value(key) or not isinstance(key, rfc1902.OctetString) or \
                _text(key).casefold() != cache.match_value.casefold():
            return None

        def need(col: OID, kind: type, kind_name: str) -> Any:
            v = values[col + (i,)]
            if _is_exception_value(v):
                raise _Failed(Reason.NO_SUCH_OBJECT, f"{oid_name(col + (i,))} is {_type_name(v)}")
            if not isinstance(v, kind):
                raise _Failed(Reason.UNEXPECTED_TYPE,
                              f"{oid_name(col + (i,))} is {_type_name(v)}, expected {kind_name}")
            return int(v)  # type: ignore[call-overload]

        def optional(col: OID) -> int | None:
            v = values[col + (i,)]
            if _is_exception_value(v):
                return None
            if not isinstance(v, rfc1902.Counter32):
                raise _Failed(Reason.UNEXPECTED_TYPE, f"{oid_name(col + (i,))} is {_type_name(v)}, "
                                                      "expected Counter32")
            return int(v)

        oper = values[IF_OPER_STATUS + (i,)]
        if _is_exception_value(oper):
            raise _Failed(Reason.NO_SUCH_OBJECT, f"ifOperStatus.{i} is {_type_name(oper)}")
        if getattr(oper, "tagSet", None) != rfc1902.Integer32.tagSet:
            raise _Failed(Reason.UNEXPECTED_TYPE, f"ifOperStatus.{i} is {_type_name(oper)}, expected INTEGER")
        hc_in = values.get(IF_HC_IN_OCTETS + (i,))
        if cache.bits is None:
            # The first GET asked for both widths: keep 64 bits when the agent has them.
            cache.bits = 32 if hc_in is None or _is_exception_value(hc_in) else 64
            cache.get_plan = None
        if cache.bits == 64:
            rx = need(IF_HC_IN_OCTETS, rfc1902.Counter64, "Counter64")
            tx = need(IF_HC_OUT_OCTETS, rfc1902.Counter64, "Counter64")
        else:
            rx = need(IF_IN_OCTETS, rfc1902.Counter32, "Counter32")
            tx = need(IF_OUT_OCTETS, rfc1902.Counter32, "Counter32")
        return UplinkReading(uplink, i, NAMES[cache.column], int(oper), cache.bits, rx, tx,
                             optional(IF_IN_ERRORS), optional(IF_OUT_ERRORS))

    # -- failures -------------------------------------------------------------------------------

    async def _diagnose(self, engine: SnmpEngine, node: Node, profile: SnmpProfile, cache: _NodeCache,
                        auth: CommunityData | UsmUserData, ctx: ContextData, kind: str,
                        trace: Trace | None) -> _Failed:
        """After a timeout: does the agent answer a small GET with our credentials, or anything at all?

        A slow agent answers the small GET; an agent that drops our credentials (a wrong v2c
        community, a wrong v3 privacy key) still answers an SNMPv3 discovery probe (an
        unknown noAuthNoPriv user); a dead one answers neither. One try each.
        """
        waited = _waited(node, profile, kind)
        if cache.probe_target is None:
            cache.probe_target = await self._target(engine, node.address, profile.port, profile.timeout_s, 0)
        secrets = profile_secrets(profile)
        if trace:
            trace("-> diagnosis: a small GET (sysUpTime.0) with the same credentials, one try")
        small, _, _, _ = await self._send(engine, auth, cache.probe_target, ctx, (SYS_UPTIME + (0,),), None,
                                          secrets, "GET")
        if small is None:
            if trace:
                trace("   answered: the agent is slow, or the request too big")
            return _Failed(Reason.TIMEOUT, f"{waited}, but it answers a small GET with the same credentials: "
                                           "the agent is slow or the request too big (raise timeout_s?)", 1)
        if not isinstance(small, errind.RequestTimedOut):
            failed = _classify(small, node, profile, kind)
            failed.sent = 1
            return failed
        if trace:
            trace("   no answer either")
            trace("-> diagnosis: SNMPv3 discovery with an unknown user, one try")
        probe, _, _, _ = await self._send(engine, self._probe_auth, cache.probe_target, ContextData(),
                                          (SYS_UPTIME + (0,),), None, secrets, "probe")
        alive = not isinstance(probe, errind.RequestTimedOut)
        if trace:
            trace(f"   {'answered (' + type(probe).__name__ + ')' if alive else 'no answer either'}")
        # An agent answers discovery with a USM counter (usmStatsUnknownEngineIDs, ...UnknownUserNames), which
        # pysnmp maps to its own error indications. Our request sent back (an echo service) reaches pysnmp as
        # a request it has no handler for: a "report" of snmpUnknownPDUHandlers; another OID, another protocol.
        reported = str(probe) if isinstance(probe, errind.ReportPduReceived) else ""
        if reported and (reported.startswith(SNMP_UNKNOWN_PDU_HANDLERS) or not reported.startswith("1.3.6.1.6.3.")):
            return _Failed(Reason.TIMEOUT, f"{waited}; what answers on that port is not an SNMP agent (our request "
                                           f"came back as a report of {reported[:60]}: an echo service, or another "
                                           "protocol)", 2)
        garbage = self._garbage.pop(node.address, None)
        if garbage is not None and not alive:
            return _Failed(Reason.TIMEOUT, f"{waited}; what answers on that port is not a working SNMP agent (it "
                                           f"sent datagrams that are not a usable SNMP message, dropped: "
                                           f"{garbage})", 2)
        if profile.version == "2c" and alive:
            reason, detail = Reason.WRONG_COMMUNITY, (f"{waited}, but an SNMP agent there answers SNMPv3 discovery: "
                                                      "the v2c community is wrong, or not allowed from this address")
        elif profile.version == "2c":
            reason, detail = Reason.TIMEOUT, (f"{waited}; no answer to SNMPv3 discovery either (with SNMP v2c a "
                                              "wrong community looks exactly like this: agents drop requests "
                                              "with an unknown community)")
        elif alive and profile.priv_protocol != "none":
            reason, detail = Reason.PRIVACY_FAILURE, (
                f"{waited}, but the agent answers SNMPv3 discovery: agents drop what they cannot decrypt, so the "
                f"privacy key or protocol ({profile.priv_protocol}) is most likely wrong (or the context name is "
                "unknown to the agent)")
        elif alive:
            reason, detail = Reason.TIMEOUT, (f"{waited}, but the agent answers SNMPv3 discovery: the context "
                                              "name may be unknown to it, or access not granted")
        else:
            reason, detail = Reason.TIMEOUT, f"{waited}; no answer to SNMPv3 discovery either"
        return _Failed(reason, detail, 2)


def _waited(node: Node, profile: SnmpProfile, kind: str) -> str:
    tries = profile.retries + 1
    return (f"{kind}: no answer from {node.address}:{profile.port} within {profile.timeout_s:g} s x {tries} "
            f"tr{'y' if tries == 1 else 'ies'}")


def _classify(err: Any, node: Node, profile: SnmpProfile, kind: str) -> _Failed:
    """A pysnmp error indication as a reason and a precise detail."""
    name = type(err).__name__
    if isinstance(err, errind.RequestTimedOut):
        if profile.version == "2c":
            return _Failed(Reason.TIMEOUT, f"{_waited(node, profile, kind)} (with SNMP v2c a wrong community "
                                           "looks exactly like this: agents drop requests with an unknown "
                                           "community)")
        return _Failed(Reason.TIMEOUT, _waited(node, profile, kind))
    if isinstance(err, errind.WrongDigest | errind.AuthenticationFailure | errind.AuthenticationError):
        return _Failed(Reason.AUTH_FAILURE, f"{kind}: the agent reports a wrong digest ({name}, "
                                            f"usmStatsWrongDigests): the auth key or protocol "
                                            f"({profile.auth_protocol}) is wrong")
    if isinstance(err, errind.UnknownUserName):
        return _Failed(Reason.UNKNOWN_USER, f"{kind}: the agent has no SNMPv3 user {profile.user!r} "
                                            "(usmStatsUnknownUserNames)")
    if isinstance(err, errind.DecryptionError):
        return _Failed(Reason.PRIVACY_FAILURE, f"{kind}: the agent could not decrypt the request "
                                               f"(usmStatsDecryptionErrors): the privacy key or protocol "
                                               f"({profile.priv_protocol}) is wrong")
    if isinstance(err, errind.UnsupportedSecurityLevel):
        return _Failed(Reason.V3_REPORT, f"{kind}: the agent does not support this security level for user "
                                         f"{profile.user!r} (usmStatsUnsupportedSecLevels)")
    if isinstance(err, errind.NotInTimeWindow | errind.UnknownEngineID):
        return _Failed(Reason.V3_REPORT, f"{kind}: SNMPv3 time or engine synchronisation failed ({name})")
    if isinstance(err, errind.ReportPduReceived):
        return _Failed(Reason.V3_REPORT, f"{kind}: the agent sent a Report ({err})")
    if isinstance(err, errind.EncryptionError | errind.NoEncryption):
        return _Failed(Reason.LOCAL_ERROR, f"{kind}: pysnmp cannot encrypt ({err}): install cryptography>=47")
    return _Failed(Reason.LOCAL_ERROR, f"{kind}: {name}: {err}")


def _match(rows: Mapping[OID, Mapping[int, str]], uplink: str) -> tuple[OID, int, str] | None:
    """The (column, ifIndex, how) naming ``uplink``: ifName, ifAlias, ifDescr; exact, then ignoring case."""
    if not uplink:
        return None
    folded = uplink.casefold()
    for how in ("exact", "casefold"):
        for col in NAME_COLUMNS:
            hits = sorted(i for i, name in rows.get(col, {}).items()
                          if name and (name == uplink if how == "exact" else name.casefold() == folded))
            if hits:
                return col, hits[0], how
    return None

