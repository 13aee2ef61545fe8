"""The OIDs a poll reads, numeric (no MIB lookups), and their names for transcripts."""

from __future__ import annotations

from collections.abc import Iterable

OID = tuple[int, ...]
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1)
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2)
SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3)
SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5)
IF_DESCR: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_OPER_STATUS: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_IN_OCTETS: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)
IF_IN_ERRORS: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 14)
IF_OUT_OCTETS: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 16)
IF_OUT_ERRORS: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 20)
IF_NAME: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_HC_IN_OCTETS: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)
IF_HC_OUT_OCTETS: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10)
IF_ALIAS: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18)
# v3 USM report counters (RFC 3414), as agents name them in Reports.
USM_STATS: OID = (1, 3, 6, 1, 6, 3, 15, 1, 1)

NAMES: dict[OID, str] = {
    SYS_DESCR: "sysDescr", SYS_OBJECT_ID: "sysObjectID", SYS_UPTIME: "sysUpTime", SYS_NAME: "sysName",
    IF_DESCR: "ifDescr", IF_OPER_STATUS: "ifOperStatus", IF_IN_OCTETS: "ifInOctets", IF_IN_ERRORS: "ifInErrors",
    IF_OUT_OCTETS: "ifOutOctets", IF_OUT_ERRORS: "ifOutErrors", IF_NAME: "ifName",
    IF_HC_IN_OCTETS: "ifHCInOctets", IF_HC_OUT_OCTETS: "ifHCOutOctets", IF_ALIAS: "ifAlias",
}
SCALARS: tuple[OID, ...] = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME)  # GETBULK non-repeaters
# How the uplink is looked for, in order of preference.
NAME_COLUMNS: tuple[OID, ...] = (IF_NAME, IF_ALIAS, IF_DESCR)


def oid_name(oid: Iterable[int]) -> str:
    """``ifName.3`` for a known column or scalar, else the dotted OID."""
    t = tuple(oid)
    for n in range(len(t) - 1, 6, -1):
        name = NAMES.get(t[:n])
        if name:
            return name + "".join(f".{x}" for x in t[n:])
    return ".".join(str(x) for x in t)

