"""SNMP v2c requests on pysnmp's protocol API (``pysnmp.proto.api.v2c``) and a UDP socket of our own.

For v2c, pysnmp's engine (hlapi v3arch) adds to each request what only v3 needs: a second decoding
of every answer to read its version, the message dispatcher's and message processing model's caches
and bookkeeping, and the command generator's callbacks; and each node needs a target registered in the
engine, which keeps pysnmp state for each. Measured (docs/benchmarks.md): 0.81 ms of CPU a steady GET
this way against 1.06 ms through the engine (3,000 nodes, polls alternating); in the whole service at
20,000 nodes, a steady poll's worker CPU went from 21-22 s to 18.3 s and its RSS from 115 to 102 MB.

pysnmp still builds and encodes the messages and pyasn1 decodes the answers: the request is pysnmp's
``GetRequestPDU``/``GetBulkRequestPDU`` in a ``Message``; the answer is decoded against pysnmp's v2c
``Message`` spec, so the values are the same rfc1902/rfc1905 objects the engine gives. An answer is
matched to its request by request-id only, as pysnmp does. A request is sent again with the same
request-id after each timeout, ``retries`` times.

A datagram that does not decode as an SNMP message is reported to ``on_garbage(address, error)`` and
dropped (the poller's diagnosis reads these); a late answer, or a message that is not a response
(our own request sent back by an echo service), is dropped silently.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import errind, rfc1902
from pysnmp.proto.api import v2c

__all__ = ["V2cChannel", "open_udp_socket"]

_MESSAGE = v2c.Message()  # the decoding spec (pysnmp's v2c message processing model keeps one too)
_RESPONSE = v2c.ResponsePDU.tagSet
_VERSION = 1  # SNMPv2c on the wire
_IDS = 1 << 31  # request-ids are 0 .. 2^31 - 1 (RFC 3416: Integer32)


def open_udp_socket(family: int, rcvbuf_bytes: int) -> socket.socket:
    """A non-blocking UDP socket whose receive buffer is ``rcvbuf_bytes`` (as far as the kernel allows).

    One socket carries every request: with the default buffer, 2,000 GETs in flight gave 256 answers
    (issue 4). The buffer is sized before the first packet; SO_RCVBUFFORCE (CAP_NET_ADMIN) goes past
    ``net.core.rmem_max``, SO_RCVBUF up to it.
    """
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf_bytes)
            break
        except OSError:
            continue
    return sock


class V2cChannel(asyncio.DatagramProtocol):
    """GET and GETBULK requests of SNMP v2c, any number in flight, over one socket per address family.

    ``request`` returns what pysnmp's hlapi returns: (error indication, error status, error index,
    [(ObjectName, value)]), the indication ``RequestTimedOut`` when no try was answered.
    """

    def __init__(self, on_garbage: Callable[[Any, BaseException], None], *, rcvbuf_bytes: int = 4 << 20) -> None:
        self.on_garbage = on_garbage
        self.rcvbuf_bytes = rcvbuf_bytes
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._transports: dict[int, asyncio.Future[asyncio.DatagramTransport]] = {}
        self._next_id = random.randrange(_IDS)
        self._communities: dict[bytes, Any] = {}

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        made = self._transports.get(family)
        if made is not None and made.done() and (made.cancelled() or made.exception() is not None):
            made = None  # opening failed last time: try again
        if made is None:
            made = self._transports[family] = asyncio.ensure_future(self._open(family))
        return await asyncio.shield(made)

    async def _open(self, family: int) -> asyncio.DatagramTransport:
        sock = open_udp_socket(family, self.rcvbuf_bytes)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        return transport

    def close(self) -> None:
        """Close the sockets; requests in flight end as timeouts. Idempotent; the next request opens them again."""
        transports, self._transports = self._transports, {}
        for made in transports.values():
            if made.done() and not made.cancelled() and made.exception() is None:
                made.result().close()
            else:
                made.cancel()

    def _request_id(self) -> int:
        for _ in range(len(self._pending) + 1):
            self._next_id = (self._next_id + 1) % _IDS
            if self._next_id not in self._pending:
                break
        return self._next_id

    def _community(self, community: bytes) -> Any:
        """One OctetString per community, shared by every message (pyasn1 values are immutable)."""
        value = self._communities.get(community)
        if value is None:
            value = self._communities[community] = rfc1902.OctetString(community)
        return value

    def _message(self, community: bytes, request_id: int, varbinds: Any, bulk: tuple[int, int] | None) -> bytes:
        if bulk is None:
            pdu = v2c.GetRequestPDU()
            v2c.apiPDU.set_defaults(pdu)
            # A VarBindList built (and encoded) once for these OIDs (pysnmp_patches.varbind_list).
            pdu.setComponentByPosition(3, varbinds, verifyConstraints=False, matchTags=False, matchConstraints=False)
        else:
            pdu = v2c.GetBulkRequestPDU()
            v2c.apiBulkPDU.set_defaults(pdu)
            v2c.apiBulkPDU.set_non_repeaters(pdu, bulk[0])
            v2c.apiBulkPDU.set_max_repetitions(pdu, bulk[1])
            v2c.apiBulkPDU.set_varbinds(pdu, [(rfc1902.ObjectName(oid), v2c.null) for oid in varbinds])
        v2c.apiPDU.set_request_id(pdu, request_id)
        msg = v2c.Message()
        v2c.apiMessage.set_defaults(msg)  # version 2c
        msg.setComponentByPosition(1, self._community(community), verifyConstraints=False)
        v2c.apiMessage.set_pdu(msg, pdu)
        return bytes(encoder.encode(msg))

    async def request(self, address: tuple[Any, ...], community: bytes, varbinds: Any, *,
                      bulk: tuple[int, int] | None = None, timeout_s: float,
                      retries: int) -> tuple[Any, Any, Any, list[tuple[Any, Any]]]:
        """A GET of ``varbinds`` (a VarBindList from ``varbind_list``), or with ``bulk`` = (non-repeaters,
        max-repetitions) a GETBULK of ``varbinds`` (a sequence of OIDs), to ``address`` (host, port)."""
        transport = await self._transport(socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET)
        loop = asyncio.get_running_loop()
        request_id = self._request_id()
        datagram = self._message(community, request_id, varbinds, bulk)
        try:
            for _ in range(max(0, retries) + 1):
                answer = self._pending[request_id] = loop.create_future()
                transport.sendto(datagram, address)
                try:
                    async with asyncio.timeout(timeout_s):
                        pdu = await answer
                except TimeoutError:
                    continue
                return (None, v2c.apiPDU.get_error_status(pdu), v2c.apiPDU.get_error_index(pdu, muteErrors=True),
                        v2c.apiPDU.get_varbinds(pdu))
        finally:
            self._pending.pop(request_id, None)
        return errind.RequestTimedOut(), 0, 0, []

    # -- asyncio.DatagramProtocol -----------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            msg, _ = decoder.decode(data, asn1Spec=_MESSAGE)
            version = int(msg.getComponentByPosition(0))
            pdu = v2c.apiMessage.get_pdu(msg)
            request_id = int(v2c.apiPDU.get_request_id(pdu))
        except Exception as e:  # noqa: BLE001  # whatever pyasn1 makes of a hostile datagram
            self.on_garbage(addr, e)
            return
        if version != _VERSION or pdu.tagSet != _RESPONSE:
            return  # not an answer to us (an echo of our own request, another protocol's version)
        answer = self._pending.get(request_id)
        if answer is not None and not answer.done():
            answer.set_result(pdu)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable) arrive here; the request they concern ends at its timeout."""
