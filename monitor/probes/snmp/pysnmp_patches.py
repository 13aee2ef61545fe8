"""Patches to pysnmp 7.1 internals that make a first poll of 20,000 routers fit its interval.

Kept apart and named as such: both depend on pysnmp's private names, fall back to
pysnmp's own code when those change, and must be re-checked on any pysnmp upgrade.

- ``fast_configure``: registers a target without writing SNMP-TARGET-MIB rows for each.
- ``PeerKeysUsm``: keeps what pysnmp learns of each v3 agent in dicts, not usmUserTable rows, and forgets an
  agent's engine time after 300 s without news of it (pysnmp forgets it 300 s after each answer, in use or not).
- ``guard_receive``: a datagram pysnmp cannot digest is dropped and reported, never an exception
  escaping into the event loop (and a pending request it broke ends at its deadline, see the poller).
- ``get_varbind_list``: hlapi's ``get_cmd`` sending a VarBindList built once (``varbind_list``) instead of
  building one per request, and encoded once (an entry of its own in pyasn1's BER encoder map).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyasn1.codec.ber import encoder as ber_encoder
from pyasn1.type import univ
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.entity.rfc3413 import config as target_config
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto import error as pysnmp_error
from pysnmp.proto.api import v2c
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

_TARGETS = "tslcdTargets"  # engine user context: target name -> get_target_address's answer
_TEMPLATES = "tslcdTargetTemplates"  # engine user context: (params name, domain) -> a real row's answer
_original_get_target_address = target_config.get_target_address
_VALUES: dict[tuple[Any, int], Any] = {}


def _shared(kind: Any, value: int) -> Any:
    """One pyasn1 value object (immutable) for every target with this timeout or retry count, not one each."""
    found = _VALUES.get((kind, value))
    if found is None:
        found = _VALUES[(kind, value)] = kind(value)
    return found


def _get_target_address(snmp_engine: Any, name: Any) -> Any:
    """pysnmp's get_target_address, answering first for the targets ``fast_configure`` registered."""
    found = (snmp_engine.get_user_context(_TARGETS) or {}).get(name)
    return found if found is not None else _original_get_target_address(snmp_engine, name)


def fast_configure(engine: SnmpEngine, auth: CommunityData | UsmUserData,
                    target: UdpTransportTarget | Udp6TransportTarget, context_name: bytes) -> None:
    """What hlapi's ``LCD.configure`` does for a target, without writing SNMP-TARGET-MIB rows for each.

    Writing a target's rows through pysnmp's MIB instrumentation costs about 1.7 ms of CPU
    (34 s for 20,000 targets, more than half the first poll). The first target of each
    credentials set and transport is configured by LCD (real rows); every other one is put
    straight into the map pysnmp's command generator reads targets from (the same values
    pysnmp would have derived from its rows), and into LCD's own cache, so get_cmd/bulk_cmd
    find it and write nothing. Anything unexpected falls back to ``LCD.configure``.
    """
    if target_config.get_target_address is not _get_target_address:
        target_config.get_target_address = _get_target_address  # looked up at call time by get_target_info
    lcd = LCD._get_cache(engine)
    params = lcd["parm"].get((auth.securityName, auth.security_level, auth.message_processing_model))
    templates = engine.get_user_context(_TEMPLATES) or {}
    template = templates.get((params[0], target.TRANSPORT_DOMAIN)) if params else None
    key = (params[0] if params else None, target.TRANSPORT_DOMAIN, target.transport_address, target.timeout,
           target.retries, target.tagList, target.iface)
    auth_key = auth.communityIndex if isinstance(auth, CommunityData) else (auth.userName, auth.securityEngineId)
    known = lcd["auth"].get(auth_key)
    if known is auth or known is None:
        same = known is auth
    elif isinstance(auth, UsmUserData):
        same = isinstance(known, UsmUserData) and not LCD._usm_auth_changed(known, auth)
    else:  # another profile's CommunityData with the same community
        same = isinstance(known, CommunityData) and (known.communityName, known.tag, known.securityName) == (
            auth.communityName, auth.tag, auth.securityName)
    if template is None or not same:  # the first target of its kind, or other keys: LCD, with rows
        addr_name, params_name = LCD.configure(engine, auth, target, context_name)
        if (params_name, target.TRANSPORT_DOMAIN) not in templates:
            templates[(params_name, target.TRANSPORT_DOMAIN)] = _original_get_target_address(engine, addr_name)
            engine.set_user_context(**{_TEMPLATES: templates})
        return
    if key in lcd["addr"]:
        return
    domain, addr, timeout, retries, params_name = template
    targets = engine.get_user_context(_TARGETS)
    if targets is None:
        targets = {}
        engine.set_user_context(**{_TARGETS: targets})
    name = f"tslcd{len(targets) + 1}"
    fast = type(addr)(target.transport_address).set_local_address(addr.get_local_address())
    targets[name] = (domain, fast, _shared(type(timeout), int(target.timeout * 100)),
                     _shared(type(retries), target.retries), params_name)
    lcd["addr"][key] = name, 1


class _BuiltVarBindList(rfc1905.VarBindList):  # type: ignore[misc]  # pyasn1 has no type hints
    """A VarBindList built once and never changed: pyasn1's BER encoder encodes it once (``_EncodedOnce``)."""

    typeId = univ.SequenceOf.getTypeId()  # its own: the encoder picks ``_EncodedOnce`` for it, and only for it


class _EncodedOnce:
    """pyasn1 BER encoder entry for ``_BuiltVarBindList``: pyasn1's own SEQUENCE OF encoding, kept on the list.

    Registered in pyasn1's BER encoder map (``TYPE_MAP``) under that class's own type id: every other value
    is encoded as before. Other options than the defaults pysnmp uses (e.g. indefinite lengths) are passed
    to pyasn1's encoder each time.
    """

    _KEY = "_tslcdBer"

    def encode(self, value: Any, asn1Spec: Any = None, encodeFun: Any = None, **options: Any) -> bytes:  # noqa: N803
        encoder = ber_encoder.TYPE_MAP[univ.SequenceOf.typeId]
        if asn1Spec is not None or options:
            return bytes(encoder.encode(value, asn1Spec, encodeFun, **options))
        done: bytes | None = value.__dict__.get(self._KEY)
        if done is None:
            done = bytes(encoder.encode(value, asn1Spec, encodeFun))
            value.__dict__[self._KEY] = done
        return done


ber_encoder.TYPE_MAP.setdefault(_BuiltVarBindList.typeId, _EncodedOnce())


def varbind_list(oids: Sequence[tuple[int, ...]]) -> Any:
    """The VarBindList pysnmp's GET command generator builds for ``oids`` (values unspecified), to build it once.

    pysnmp builds and encodes a new one for every request (``set_varbinds``: a new ObjectName and VarBind
    per OID, about 0.15 ms of CPU for the 8 OIDs of a poll's GET, then 0.085 ms to encode them). A request
    only encodes it, so one list, encoded once, serves every request for the same OIDs; the datagram equals
    pysnmp's byte for byte (a test).
    """
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(oid), None) for oid in oids])
    built = _BuiltVarBindList()
    for i, varbind in enumerate(pdu.getComponentByPosition(3)):
        built.setComponentByPosition(i, varbind)
    return built


async def get_varbind_list(engine: SnmpEngine, auth: CommunityData | UsmUserData,
                           target: UdpTransportTarget | Udp6TransportTarget, ctx: ContextData,
                           varbinds: Any) -> tuple[Any, Any, Any, Any]:
    """What hlapi's ``get_cmd(..., lookupMib=False)`` does, with a VarBindList from ``varbind_list``.

    The same steps as hlapi (LCD.configure, a GetCommandGenerator's send_pdu, its response
    processing), and the same answer: (error indication, error status, error index, [(ObjectName, value)]).
    """
    addr_name, _ = LCD.configure(engine, auth, target, ctx.contextName)
    future: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

    def done(snmp_engine: Any, handle: Any, error_indication: Any, error_status: Any, error_index: Any,
             binds: Any, cb_ctx: Any) -> None:
        if not future.cancelled():
            future.set_result((error_indication, error_status, error_index, binds))

    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)  # a new request-id, error-status and -index 0
    pdu.setComponentByPosition(3, varbinds, verifyConstraints=False, matchTags=False, matchConstraints=False)
    generator = cmdgen.GetCommandGenerator()
    generator.send_pdu(engine, addr_name, ctx.contextEngineId, ctx.contextName, pdu,
                       generator.process_response_varbinds, (done, None))
    return await future


_USM = "_SnmpUSMSecurityModel__"  # the prefix of SnmpUSMSecurityModel's private (name-mangled) methods
_TIMELINE_TTL_S = 300  # pysnmp's: what it knows of an agent's engine time is forgotten after 300 s without news
_TIMELINE_SWEEP_S = 10.0  # how often the timeline is looked over for entries that old


def guard_receive(engine: SnmpEngine, on_garbage: Callable[[Any, BaseException], None]) -> None:
    """Make the engine drop, and report to ``on_garbage(address, error)``, what it cannot digest.

    pysnmp decodes each received datagram in a callback of the event loop and catches only its own
    errors there: a reply starting with a constructed non-universal BER tag (``a2 00``: 96 of the 256
    first octets, so a third of random noise) raises pyasn1's TypeError (pysnmp issue #82), and an
    SNMPv3 Report without varbinds raises KeyError 'errorIndication' in the command generator and leaves
    its request pending forever (pysnmp issues #122, #241). Either way asyncio logged a traceback for
    every such datagram. Wrapped here: the datagram is dropped, the sender reported once per datagram.
    """
    dispatcher = engine.message_dispatcher
    receive = dispatcher.receive_message

    def receive_message(snmp_engine: Any, domain: Any, address: Any, whole_msg: Any) -> Any:
        try:
            return receive(snmp_engine, domain, address, whole_msg)
        except Exception as e:  # noqa: BLE001  # whatever pysnmp leaves uncaught on a hostile datagram
            on_garbage(address, e)
            return None

    dispatcher.receive_message = receive_message


def _octets(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v.asOctets() if hasattr(v, "asOctets") else v)


class PeerKeysUsm(SnmpUSMSecurityModel):  # type: ignore[misc]  # pysnmp has no type hints here
    """pysnmp's USM, keeping what it learns of each agent (engine ID, localized keys) in dicts, not MIB rows.

    At its first exchange with an agent's SNMP engine, pysnmp copies the user's row in
    usmUserTable into a new row for that engine (keys localized to it), through its MIB
    instrumentation: about 0.9 ms of CPU each. Worse, any new row makes the next request
    rebuild pysnmp's (engine ID, security name) -> user map by walking every row: with one
    engine per commune router, a first poll is quadratic (15 ms per new agent at 2,000
    agents, 33 ms at 4,000: about 28 minutes of CPU for 20,000; bench/usm_engines.py). Here
    the per-agent user entry is the same tuple pysnmp would have made (same protocols, keys
    localized by pysnmp's own services), kept in a dict: about 0.05 ms per agent, no walks. The
    configured users (the local rows, the wildcard, user changes) stay pysnmp's: the dicts
    are dropped whenever usmUserTable changes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.peers: dict[tuple[bytes, bytes], tuple[Any, ...]] = {}  # (agent engine ID, user name) -> user info
        self._names: dict[tuple[bytes, bytes], Any] = {}  # (agent engine ID, security name) -> user name
        self._version: Any = None
        self._sweep_at = 0.0  # time.monotonic() of the next look over the timeline for old entries

    @staticmethod
    def usable() -> bool:
        """pysnmp still has the private methods this class replaces (checked before each engine is made)."""
        stock = vars(SnmpUSMSecurityModel())
        return (all(callable(getattr(SnmpUSMSecurityModel, _USM + m, None))
                    for m in ("sec2usr", "get_user_info", "clone_user_info", "expire_timeline_info"))
                and all(_USM + a in stock for a in ("timeline", "timelineExpQueue", "expirationTimer")))

    def _SnmpUSMSecurityModel__expire_timeline_info(self) -> None:  # noqa: N802
        """pysnmp's expiry of its timeline (each agent engine's boots and time), by each entry's age.

        pysnmp queues an agent's engine ID for expiry 300 s later (3,000 timer ticks) at every
        authenticated message from it, and at each queued expiry deletes the engine's entry, however
        recently it was refreshed. From 300 s after the first answers on, busy engines lose their entry
        while in use: a request sent then carries boots and time 0, the agent refuses it
        (usmStatsNotInTimeWindows), and pysnmp sends it again after the report (apparently pysnmp
        issue #245, lextudio/pysnmp): up to twice the messages and their CPU (bench: 8 s of CPU a poll
        became 10-13 s). The queue itself holds one engine ID per message received in the last 300 s
        (a decoded OctetString each).
        Here the queue is emptied at every tick, and an entry is deleted only once it has not been
        updated for 300 s (pysnmp's own timestamp, the 4th field of the entry), looked over every 10 s.
        Entries of another shape (a pysnmp that changed them) are left to pysnmp's own expiry: an exception
        here would end pysnmp's timer task, and with it every request's timeout.
        """
        self._SnmpUSMSecurityModel__timelineExpQueue.clear()
        self._SnmpUSMSecurityModel__expirationTimer += 1
        now = time.monotonic()
        if now < self._sweep_at:
            return
        self._sweep_at = now + _TIMELINE_SWEEP_S
        timeline = self._SnmpUSMSecurityModel__timeline
        oldest = int(time.time()) - _TIMELINE_TTL_S  # the entries' timestamps are pysnmp's int(time.time())
        try:
            old = [k for k, v in timeline.items() if v[3] <= oldest]
        except (TypeError, IndexError):  # not pysnmp 7.1's (boots, time, time, int(time.time())) entries
            return
        for engine_id in old:
            del timeline[engine_id]

    def _current(self, mib_builder: Any) -> None:
        (column,) = mib_builder.import_symbols("SNMP-USER-BASED-SM-MIB", "usmUserEngineID")
        if column.branchVersionId != self._version:  # users were (re)configured: forget what was derived
            self._version = column.branchVersionId
            self.peers.clear()
            self._names.clear()

    def _SnmpUSMSecurityModel__sec2usr(self, snmpEngine: Any, securityName: Any,  # noqa: N802, N803
                                       securityEngineID: Any = None) -> Any:  # noqa: N803
        if securityEngineID is not None:
            self._current(snmpEngine.get_mib_builder())
            found = self._names.get((_octets(securityEngineID), _octets(securityName)))
            if found is not None:
                return found
        return getattr(SnmpUSMSecurityModel, _USM + "sec2usr")(self, snmpEngine, securityName, securityEngineID)

    def _SnmpUSMSecurityModel__get_user_info(self, mibInstrumController: Any, securityEngineID: Any,  # noqa: N802, N803
                                             userName: Any) -> Any:  # noqa: N803
        self._current(mibInstrumController.get_mib_builder())
        found = self.peers.get((_octets(securityEngineID), _octets(userName)))
        if found is not None:
            return found
        return getattr(SnmpUSMSecurityModel, _USM + "get_user_info")(mibInstrumController, securityEngineID, userName)

    def _SnmpUSMSecurityModel__clone_user_info(self, snmpEngine: Any, securityEngineID: Any,  # noqa: N802, N803
                                               userName: Any) -> Any:  # noqa: N803
        """What pysnmp's __clone_user_info returns, from the local user's row, without writing a row."""
        builder = snmpEngine.get_mib_builder()
        self._current(builder)
        (local_id,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
        (users,) = builder.import_symbols("SNMP-USER-BASED-SM-MIB", "usmUserEntry")
        (keys,) = builder.import_symbols("PYSNMP-USM-MIB", "pysnmpUsmKeyEntry")
        row = users.getInstIdFromIndices(local_id.syntax, userName)  # NoSuchInstanceError: pysnmp's answer too

        def col(entry: Any, n: int) -> Any:
            return entry.getNode(entry.name + (n,) + row).syntax

        name, security_name, auth, priv = col(users, 2), col(users, 3), col(users, 5), col(users, 8)
        if auth not in self.AUTH_SERVICES:
            raise pysnmp_error.StatusInformation(errorIndication=errind.unsupportedAuthProtocol)
        if priv not in self.PRIV_SERVICES:
            raise pysnmp_error.StatusInformation(errorIndication=errind.unsupportedPrivProtocol)
        auth_key = self.AUTH_SERVICES[auth].localize_key(col(keys, 3), securityEngineID)
        priv_key = self.PRIV_SERVICES[priv].localize_key(auth, col(keys, 4), securityEngineID)
        # A protocol that localizes nothing (noAuth, noPriv) leaves the column as a new row has it.
        auth_key = col(keys, 1) if auth_key is None else col(keys, 1).clone(auth_key)
        priv_key = col(keys, 2) if priv_key is None else col(keys, 2).clone(priv_key)
        info = (name, security_name, auth, auth_key, priv, priv_key)
        engine_id = _octets(securityEngineID)
        self.peers[(engine_id, _octets(name))] = info
        self._names.setdefault((engine_id, _octets(security_name)), name)
        return info

