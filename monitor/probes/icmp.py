"""ICMP echo sweeps of many hosts over one socket per address family."""

from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import icmplib

from monitor.errors import IcmpPermissionError

__all__ = ["IcmpEngine", "IcmpPermissionError", "PingResult"]

log = logging.getLogger(__name__)

# Linux constants the socket module does not export.
_SOL_RAW: Final = 255
_ICMP_FILTER: Final = 1
_ICMP6_FILTER: Final = 1
_SO_RCVBUFFORCE: Final = 33

_ECHO_REQUEST4: Final = 8
_ECHO_REPLY4: Final = 0
_ECHO_REQUEST6: Final = 128
_ECHO_REPLY6: Final = 129

_V4: Final = 0
_V6: Final = 1

# Same size as ping(8) and fping, so the benchmark compares like with like.
_PAYLOAD_SIZE: Final = 56
_TOKEN_SIZE: Final = 8
_PACKET_SIZE: Final = 8 + _PAYLOAD_SIZE
_SEQ_SPACE: Final = 0x10000

# Batching sends per timer tick keeps the timer cost per packet negligible
# (docs/benchmarks.md: a timer per packet cost more than the packet itself).
_TICK_S: Final = 0.005
# The token bucket never holds more than this many ticks' worth of sends, so a
# late wakeup of the event loop does not turn into a burst larger than planned.
_BURST_TICKS: Final = 2
# Replies handled per readiness callback before yielding to the event loop.
_MAX_DRAIN: Final = 4096
# Ticks an echo may be retried while the socket's send queue is full before
# it is counted lost; the queue drains within microseconds, so this is ample.
_MAX_SEND_RETRIES: Final = 50
_ADDRESS_CACHE_MAX: Final = 200_000
# errno values that mean "the kernel's queue is full right now", not "no route".
_CONGESTED: Final = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EINTR})

# Header fields rewritten per echo: checksum, identifier, sequence.
_HEADER = struct.Struct("!HHH")
_SEQ = struct.Struct("!H")
# type, (identifier << 16 | sequence), token: one unpack per reply.
_REPLY_KEYED = struct.Struct("!B3xIQ")
# Datagram sockets: type, sequence, token (the kernel owns the identifier).
_REPLY_SEQ = struct.Struct("!B5xHQ")
_ECHO_REPLIES: Final = frozenset({_ECHO_REPLY4, _ECHO_REPLY6})
# Kernel receive timestamps: SO_TIMESTAMPNS delivers a struct timespec.
_SO_TIMESTAMPNS: Final = 35
_SCM_TIMESTAMPNS: Final = _SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("=qq")
_ANCBUF: Final = socket.CMSG_SPACE(_TIMESPEC.size)




@dataclass(frozen=True, slots=True)
class PingResult:
    """The outcome of one sweep for one address; RTTs are in seconds, in echo order."""

    address: str
    sent: int
    received: int
    rtts: tuple[float, ...]

    @property
    def reachable(self) -> bool:
        """True when at least one echo was answered."""
        return self.received > 0

    @property
    def loss_ratio(self) -> float:
        """Share of echoes not answered within the timeout, 0.0 to 1.0."""
        if self.sent <= 0:
            return 1.0
        return (self.sent - self.received) / self.sent

    @property
    def rtt_min(self) -> float | None:
        """Smallest RTT in seconds, None when no reply."""
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        """Mean RTT in seconds, None when no reply."""
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        """Largest RTT in seconds, None when no reply."""
        return max(self.rtts) if self.rtts else None

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (icmplib's definition), in seconds.

        0.0 for a single reply, None when no reply.
        """
        return jitter(self.rtts)


def jitter(rtts: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive values; 0.0 for one value, None for none."""
    if not rtts:
        return None
    if len(rtts) == 1:
        return 0.0
    return sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (len(rtts) - 1)


def ones_complement_sum(data: bytes | bytearray) -> int:
    """RFC 1071 16-bit one's complement sum of data (odd length padded with a zero byte), folded."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def echo_checksum(base_sum: int, sequence: int) -> int:
    """Checksum of an echo request whose other words sum (one's complement) to base_sum.

    Lets a pre-built packet change only its sequence number per send (RFC 1624
    incremental update) instead of summing all 64 bytes in Python each time.
    """
    s = base_sum + sequence
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_key(identifier: int, sequence: int) -> int:
    """The (identifier, sequence) pair as the one integer raw sockets match replies on."""
    return (identifier & 0xFFFF) << 16 | (sequence & 0xFFFF)


def blocks_needed(echoes: int) -> int:
    """How many 65,536-sequence blocks (identifiers or datagram sockets) carry `echoes` echoes."""
    return max(1, -(-echoes // _SEQ_SPACE))


def _permission_message(privileged: bool | None) -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as f:
            current = " ".join(f.read().split())
    except OSError:
        current = "unknown"
    gid = os.getgid()
    python = os.path.realpath(sys.executable)
    if privileged:
        refused = "raw ICMP sockets were requested (privileged=True) and need root or CAP_NET_RAW"
    elif privileged is None:
        refused = (
            "raw ICMP sockets need root or CAP_NET_RAW, and datagram (ping) sockets are refused:"
            f' net.ipv4.ping_group_range is "{current}", which does not include gid {gid}'
        )
    else:
        refused = (
            "datagram (ping) sockets were requested (privileged=False) and are refused:"
            f' net.ipv4.ping_group_range is "{current}", which does not include gid {gid}'
        )
    return (
        f"cannot open an ICMP socket as uid {os.getuid()} gid {gid}: {refused}. Do one of: run as root;"
        f" grant CAP_NET_RAW, e.g. `setcap cap_net_raw+ep {python}` (or AmbientCapabilities=CAP_NET_RAW"
        ' in the systemd unit); or allow ping sockets with `sysctl -w net.ipv4.ping_group_range="0 2147483647"`'
        f" (any range that includes gid {gid}; persist it in /etc/sysctl.d/)."
    )


class _Sweep:
    """Mutable state of one sweep, shared by its sender and the socket readers."""

    __slots__ = ("all_sent", "count", "done", "last_send_ns", "outstanding", "rtt", "timeout_ns")

    def __init__(self, hosts: int, count: int, timeout_s: float) -> None:
        self.count = count
        self.timeout_ns = int(timeout_s * 1e9)
        # Flat, indexed host * count + echo, so replies land in echo order.
        self.rtt: list[float | None] = [None] * (hosts * count)
        self.outstanding = 0
        self.all_sent = False
        self.done = asyncio.Event()
        self.last_send_ns = 0


# A pending echo: its sweep, its slot in _Sweep.rtt, and its send time (CLOCK_REALTIME ns,
# the clock of the kernel's receive timestamps).
_Pending = tuple[_Sweep, int, int]


def _make_reader(sock: socket.socket, pending: dict[int, _Pending], token: int, kind: str) -> Callable[[], None]:
    """Build the readiness callback that drains `sock` and records replies found in `pending`.

    RTTs use the kernel's receive timestamp (SO_TIMESTAMPNS, as fping does),
    not the time the event loop got round to reading: a loop stalled by other
    work then delays reading but neither inflates RTTs nor turns replies that
    arrived in time into false loss.
    """
    recvmsg_into = sock.recvmsg_into
    time_ns = time.time_ns
    buf = bytearray(2048)
    bufs = [buf]
    pop = pending.pop
    timespec = _TIMESPEC.unpack
    if kind == "raw4":
        fmt, reply_type, keyed = _REPLY_KEYED.unpack_from, _ECHO_REPLY4, True
    elif kind == "raw6":
        fmt, reply_type, keyed = _REPLY_KEYED.unpack_from, _ECHO_REPLY6, True
    else:
        # Ping sockets get only replies to their own identifier (the kernel
        # demultiplexes on it), so the sequence number alone names the echo.
        fmt, reply_type, keyed = _REPLY_SEQ.unpack_from, -1, False
    header_in_packet = kind == "raw4"  # raw IPv4 sockets deliver the IP header too

    def drain() -> None:
        for _ in range(_MAX_DRAIN):
            try:
                n, anc, _flags, _addr = recvmsg_into(bufs, _ANCBUF)
            except BlockingIOError:
                return
            except OSError:
                # A pending socket error is reported once by the kernel; keep draining.
                continue
            off = (buf[0] & 0x0F) << 2 if header_in_packet else 0
            if n < off + 16:
                continue
            kind_, key, tok = fmt(buf, off)
            # Replies to other processes' pings reach every raw socket: the
            # token (random per engine) and the pending key reject them.
            if tok != token or (kind_ != reply_type and (keyed or kind_ not in _ECHO_REPLIES)):
                continue
            entry = pop(key, None)
            if entry is None:
                continue
            if anc and anc[0][1] == _SCM_TIMESTAMPNS:
                sec, nsec = timespec(anc[0][2])
                received_ns = sec * 1_000_000_000 + nsec
            else:
                received_ns = time_ns()
            st, slot, sent_ns = entry
            rtt_ns = received_ns - sent_ns
            if rtt_ns <= st.timeout_ns:
                # max(): a step of the wall clock backwards must not give a negative RTT.
                st.rtt[slot] = max(rtt_ns, 0) / 1e9
            st.outstanding -= 1
            if st.outstanding <= 0 and st.all_sent:
                st.done.set()

    return drain


class _Channel:
    """One open ICMP socket with its table of echoes awaiting a reply."""

    __slots__ = ("owner", "pending", "raw", "reader", "sock", "v6")

    def __init__(self, v6: bool, raw: bool, rcvbuf: int, token: int) -> None:
        cls = icmplib.ICMPv6Socket if v6 else icmplib.ICMPv4Socket
        # icmplib opens the socket and tells a permission problem from any other.
        self.owner: Any = cls(privileged=raw)
        sock: socket.socket = self.owner.sock
        self.sock = sock
        self.v6 = v6
        self.raw = raw
        self.pending: dict[int, _Pending] = {}
        try:
            sock.setblocking(False)
            _set_rcvbuf(sock, rcvbuf)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            if raw and not v6:
                # Queue only echo replies: without it every ICMP packet on the
                # host (our own requests on lo included) fills the buffer.
                sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~(1 << _ECHO_REPLY4) & 0xFFFFFFFF))
            elif raw:
                words = [0xFFFFFFFF] * 8
                words[_ECHO_REPLY6 >> 5] &= ~(1 << (_ECHO_REPLY6 & 31)) & 0xFFFFFFFF
                sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
        except OSError:
            self.owner.close()
            raise
        kind = ("raw6" if v6 else "raw4") if raw else "datagram"
        self.reader = _make_reader(sock, self.pending, token, kind)

    def close(self) -> None:
        self.pending.clear()
        self.owner.close()


def _set_rcvbuf(sock: socket.socket, size: int) -> None:
    # SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; the
    # plain option is silently capped by rmem_max.
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < size:
        log.info("ICMP receive buffer smaller than asked", extra={"asked": size, "got": got})


class _Lane:
    """The sending side of one address family within one sweep."""

    __slots__ = ("base_sum", "block", "buf", "channel", "channels", "ident", "idents", "raw", "seq", "v6")

    def __init__(self, v6: bool, raw: bool, token: int, idents: list[int]) -> None:
        self.v6 = v6
        self.raw = raw
        self.buf = bytearray(_PACKET_SIZE)
        self.buf[0] = _ECHO_REQUEST6 if v6 else _ECHO_REQUEST4
        self.buf[8 : 8 + _TOKEN_SIZE] = token.to_bytes(_TOKEN_SIZE, "big")
        self.channel: _Channel | None = None
        self.idents = idents
        self.ident = 0
        self.block = -1
        # seq starts past the end so that the first send opens block 0.
        self.seq = _SEQ_SPACE
        self.base_sum = 0
        self.channels: list[_Channel] = []


class IcmpEngine:
    """Sends ICMP echo sweeps to many hosts at once over one socket per address family.

    Raw sockets (root or CAP_NET_RAW) are long-lived, one per family, read by
    the event loop and shared by all sweeps; replies are matched by
    (identifier, sequence) plus a per-engine token in the payload. Datagram
    ("ping") sockets, used without privilege, are opened per sweep: the kernel
    owns their identifier, so each socket carries up to 65,536 echoes matched
    by sequence.

    The socket kind is decided at construction, which raises
    IcmpPermissionError when neither is allowed. Sweeps must all run in one
    event loop (a selector loop: the engine uses loop.add_reader).
    """

    def __init__(self, *, privileged: bool | None = None, rcvbuf_bytes: int = 4 << 20) -> None:
        """Open the sockets; privileged=None picks raw when permitted, else datagram."""
        self._rcvbuf = rcvbuf_bytes
        self._token = int.from_bytes(os.urandom(8), "big")
        # Identifiers start at random so that two engines on one host rarely
        # share one; the token in the payload settles the rare collision.
        self._next_ident = int.from_bytes(os.urandom(2), "big")
        self._raw: list[_Channel | None] = [None, None]
        self._unavailable: list[str | None] = [None, None]
        self._active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cache: dict[str, tuple[int, str, tuple[Any, ...]] | None] = {}
        self._closed = False
        self._mode = self._open(privileged)

    def _open(self, privileged: bool | None) -> str:
        if privileged is not False:
            try:
                self._raw[_V4] = _Channel(False, True, self._rcvbuf, self._token)
            except icmplib.SocketPermissionError:
                if privileged:
                    raise IcmpPermissionError(_permission_message(privileged)) from None
            except (icmplib.ICMPSocketError, OSError) as exc:
                self._unavailable[_V4] = str(exc)
            try:
                self._raw[_V6] = _Channel(True, True, self._rcvbuf, self._token)
            except (icmplib.ICMPSocketError, OSError) as exc:
                # A host without IPv6 still sweeps IPv4; IPv6 echoes count as lost.
                self._unavailable[_V6] = str(exc)
            if self._raw[_V4] is not None or self._raw[_V6] is not None:
                return "raw"
            if privileged:
                raise IcmpPermissionError(_permission_message(privileged))
            self._unavailable = [None, None]
        # Probe that ping sockets are allowed now, so misconfiguration fails
        # at startup rather than as 100% loss at the first sweep.
        for v6 in (False, True):
            try:
                _Channel(v6, False, self._rcvbuf, self._token).close()
            except icmplib.SocketPermissionError:
                raise IcmpPermissionError(_permission_message(privileged)) from None
            except (icmplib.ICMPSocketError, OSError) as exc:
                self._unavailable[_V6 if v6 else _V4] = str(exc)
        if self._unavailable[_V4] is not None and self._unavailable[_V6] is not None:
            raise IcmpPermissionError(_permission_message(privileged))
        return "datagram"

    @property
    def mode(self) -> str:
        """The kind of ICMP socket in use: "raw" or "datagram"."""
        return self._mode

    def close(self) -> None:
        """Close the sockets; the engine cannot sweep afterwards."""
        if self._closed:
            return
        self._closed = True
        for ch in self._raw:
            if ch is None:
                continue
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(ch.sock)
            ch.close()
        self._raw = [None, None]
        self._loop = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.close()

    async def sweep(
        self,
        addresses: Sequence[str],
        *,
        count: int = 3,
        timeout_s: float = 1.0,
        pps: int = 10_000,
        interval_s: float = 0.2,
    ) -> dict[str, PingResult]:
        """Send `count` echoes to every address and return one PingResult per address.

        IPv4 and IPv6 may be mixed; duplicates (also two spellings of one
        address) are probed once. Echoes to one host are interval_s apart,
        all sends together at most pps per second, and each echo waits at most
        timeout_s for its reply. A failed send (no route, blackhole, EPERM) is
        a lost echo, never an exception. Raises ValueError for a string that
        is not a usable IP address or for out-of-range arguments.
        """
        if self._closed:
            raise RuntimeError("IcmpEngine is closed")
        if isinstance(addresses, str):
            raise TypeError("addresses must be a sequence of address strings, not one string")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if pps < 1:
            raise ValueError(f"pps must be >= 1, got {pps}")
        if not interval_s >= 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s}")

        index, fams, sockaddrs = self._targets(addresses)
        if not fams:
            return {}
        st = _Sweep(len(fams), count, timeout_s)
        loop = asyncio.get_running_loop()
        lanes = self._lanes(fams, count)
        self._attach(loop)
        try:
            await self._send_all(loop, st, lanes, fams, sockaddrs, pps, interval_s)
            st.all_sent = True
            if st.outstanding > 0:
                try:
                    async with asyncio.timeout(max(0.0, (st.last_send_ns + st.timeout_ns - time.time_ns()) / 1e9)):
                        await st.done.wait()
                except TimeoutError:
                    # Replies that arrived in time may still sit unread if the
                    # loop was busy; read them before declaring the rest lost.
                    self._drain(lanes)
        finally:
            self._detach(loop, lanes)

        rtt = st.rtt
        results: dict[str, PingResult] = {}
        for address, host in index.items():
            got = tuple(r for r in rtt[host * count : (host + 1) * count] if r is not None)
            results[address] = PingResult(address, count, len(got), got)
        return results

    def _targets(self, addresses: Sequence[str]) -> tuple[dict[str, int], list[int], list[tuple[Any, ...]]]:
        """Map each distinct input string to a host index; hosts are distinct addresses."""
        cache = self._cache
        if len(cache) > _ADDRESS_CACHE_MAX:
            cache.clear()
        index: dict[str, int] = {}
        by_canonical: dict[str, int] = {}
        fams: list[int] = []
        sockaddrs: list[tuple[Any, ...]] = []
        bad: list[str] = []
        for address in addresses:
            if address in index:
                continue
            if address in cache:
                parsed = cache[address]
            else:
                parsed = cache[address] = _parse(address)
            if parsed is None:
                bad.append(address)
                continue
            fam, canonical, sockaddr = parsed
            host = by_canonical.get(canonical)
            if host is None:
                host = by_canonical[canonical] = len(fams)
                fams.append(fam)
                sockaddrs.append(sockaddr)
            index[address] = host
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(f"not a usable IP address: {', '.join(repr(b) for b in bad[:5])}{more}")
        return index, fams, sockaddrs

    def _lanes(self, fams: list[int], count: int) -> list[_Lane]:
        echoes = [0, 0]
        for fam in fams:
            echoes[fam] += count
        lanes = []
        for fam in (_V4, _V6):
            idents: list[int] = []
            if self._mode == "raw":
                n = blocks_needed(echoes[fam])
                idents = [(self._next_ident + i) & 0xFFFF for i in range(n)]
                self._next_ident = (self._next_ident + n) & 0xFFFF
            lanes.append(_Lane(fam == _V6, self._mode == "raw", self._token, idents))
        return lanes

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._active:
            if loop is not self._loop:
                raise RuntimeError("IcmpEngine is already sweeping in another event loop")
        else:
            self._loop = loop
            for ch in self._raw:
                if ch is not None:
                    loop.add_reader(ch.sock, ch.reader)
        self._active += 1

    def _detach(self, loop: asyncio.AbstractEventLoop, lanes: list[_Lane]) -> None:
        self._active -= 1
        for lane in lanes:
            for ch in lane.channels:
                if ch.raw:
                    if self._active == 0:
                        ch.pending.clear()
                    else:
                        # Other sweeps share this table: remove only our keys.
                        for ident in lane.idents:
                            for seq in range(_SEQ_SPACE):
                                ch.pending.pop(ident << 16 | seq, None)
                else:
                    loop.remove_reader(ch.sock)
                    ch.close()
        if self._active == 0:
            for raw in self._raw:
                if raw is not None:
                    raw.pending.clear()
                    loop.remove_reader(raw.sock)

    def _drain(self, lanes: list[_Lane]) -> None:
        for lane in lanes:
            for ch in lane.channels:
                ch.reader()

    def _next_block(self, lane: _Lane, loop: asyncio.AbstractEventLoop) -> None:
        """Move a lane to its next 65,536 sequences: a new identifier, or a new datagram socket."""
        lane.block += 1
        lane.seq = 0
        fam = _V6 if lane.v6 else _V4
        if lane.raw:
            lane.channel = self._raw[fam]
            if lane.block >= len(lane.idents):
                # Retried sends use sequences beyond the planned echoes.
                lane.idents.append(self._next_ident)
                self._next_ident = (self._next_ident + 1) & 0xFFFF
            lane.ident = lane.idents[lane.block]
            lane.buf[2:8] = _HEADER.pack(0, lane.ident, 0)
            # IPv6 and datagram sockets get their checksum from the kernel.
            lane.base_sum = 0 if lane.v6 else ones_complement_sum(lane.buf)
            if lane.channel is not None and lane.channel not in lane.channels:
                lane.channels.append(lane.channel)
            return
        lane.channel = None
        if self._unavailable[fam] is not None:
            return
        try:
            ch = _Channel(lane.v6, False, self._rcvbuf, self._token)
        except (icmplib.ICMPLibError, OSError) as exc:
            log.warning("cannot open a datagram ICMP socket; echoes are lost", extra={"error": str(exc)})
            return
        loop.add_reader(ch.sock, ch.reader)
        lane.channel = ch
        lane.channels.append(ch)

    async def _send_all(
        self,
        loop: asyncio.AbstractEventLoop,
        st: _Sweep,
        lanes: list[_Lane],
        fams: list[int],
        sockaddrs: list[tuple[Any, ...]],
        pps: int,
        interval: float,
    ) -> None:
        """Pace every echo out, in rounds over the hosts as fping does."""
        # Items are (earliest send time, host, echo number). Appending at
        # send time + interval keeps the deque sorted by earliest send time.
        queue: collections.deque[tuple[float, int, int]] = collections.deque(
            (0.0, host, 0) for host in range(len(fams))
        )
        cap = max(1.0, pps * _TICK_S * _BURST_TICKS)
        tokens = cap
        last = time.perf_counter()
        retries: dict[int, int] = {}
        # Bounded: each pass sends at least one echo or waits for one to
        # become due; a full send queue costs at most _MAX_SEND_RETRIES passes
        # per echo.
        while queue:
            now = time.perf_counter()
            tokens = min(cap, tokens + (now - last) * pps)
            last = now
            if tokens >= 1.0 and queue[0][0] <= now:
                tokens -= self._send_due(loop, st, queue, lanes, fams, sockaddrs, now, int(tokens), interval, retries)
            if not queue:
                break
            wait = max(_TICK_S, queue[0][0] - now, (1.0 - tokens) / pps)
            await asyncio.sleep(wait)

    def _send_due(
        self,
        loop: asyncio.AbstractEventLoop,
        st: _Sweep,
        queue: collections.deque[tuple[float, int, int]],
        lanes: list[_Lane],
        fams: list[int],
        sockaddrs: list[tuple[Any, ...]],
        now: float,
        budget: int,
        interval: float,
        retries: dict[int, int],
    ) -> int:
        """Send up to `budget` echoes that are due; return how many packets went out (or failed)."""
        # The sender's hot path: locals only, and per packet just the header
        # update (checksum adjusted, not recomputed), the clock and sendto.
        pack_header = _HEADER.pack_into
        pack_seq = _SEQ.pack_into
        time_ns = time.time_ns
        popleft = queue.popleft
        append = queue.append
        count = st.count
        n = 0
        while n < budget and queue:
            item = queue[0]
            if item[0] > now:
                break
            popleft()
            host = item[1]
            k = item[2]
            lane = lanes[fams[host]]
            seq = lane.seq
            if seq >= _SEQ_SPACE:
                self._next_block(lane, loop)
                seq = 0
            lane.seq = seq + 1
            ch = lane.channel
            if ch is not None:
                buf = lane.buf
                if lane.raw:
                    if lane.v6:
                        pack_seq(buf, 6, seq)
                    else:
                        pack_header(buf, 2, echo_checksum(lane.base_sum, seq), lane.ident, seq)
                    key = lane.ident << 16 | seq
                else:
                    pack_seq(buf, 6, seq)
                    key = seq
                n += 1
                sent_ns = time_ns()
                try:
                    ch.sock.sendto(buf, sockaddrs[host])
                except OSError as exc:
                    # A full send queue is local congestion, not loss: retry
                    # next tick. Anything else (no route, blackhole, EPERM from
                    # a firewall) is a lost echo.
                    if exc.errno in _CONGESTED and self._requeue(queue, item, host * count + k, retries):
                        return n
                else:
                    ch.pending[key] = (st, host * count + k, sent_ns)
                    st.outstanding += 1
                    st.last_send_ns = sent_ns
            # else: this family cannot send at all, so the echo is lost.
            if k + 1 < count:
                append((now + interval, host, k + 1))
        return n

    @staticmethod
    def _requeue(
        queue: collections.deque[tuple[float, int, int]],
        item: tuple[float, int, int],
        slot: int,
        retries: dict[int, int],
    ) -> bool:
        """Put an echo the kernel could not queue back at the head; False once it has used its retries."""
        tries = retries.get(slot, 0) + 1
        if tries > _MAX_SEND_RETRIES:
            return False
        retries[slot] = tries
        queue.appendleft(item)
        return True


def _parse(address: str) -> tuple[int, str, tuple[Any, ...]] | None:
    """Family, canonical text and sendto() address of an IP address string; None if it is not one."""
    address = address.strip()
    try:
        # inet_pton is ~20x faster than ipaddress for the common case and as
        # strict (no leading zeros, no short forms such as "127.1").
        canonical = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address))
    except OSError:
        pass
    else:
        return _V4, canonical, (canonical, 0)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    canonical = str(ip)
    if ip.version == 4:
        return _V4, canonical, (canonical, 0)
    try:
        # AI_NUMERICHOST: never a DNS query; resolves a scope such as %eth0.
        info = socket.getaddrinfo(canonical, None, socket.AF_INET6, socket.SOCK_RAW, 0, socket.AI_NUMERICHOST)
    except OSError:
        return None
    sockaddr: tuple[Any, ...] = info[0][4]
    return _V6, canonical, sockaddr
