"""SNMP profiles as pysnmp sees them: protocol objects, engine groups, secrets, and a secret-free description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pysnmp.hlapi.v3arch.asyncio import (
    usm3DESEDEPrivProtocol,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
    usmNoAuthProtocol,
    usmNoPrivProtocol,
)

if TYPE_CHECKING:
    from monitor.config import SnmpProfile

AUTH_PROTOCOLS = {
    "none": usmNoAuthProtocol, "md5": usmHMACMD5AuthProtocol, "sha": usmHMACSHAAuthProtocol,
    "sha224": usmHMAC128SHA224AuthProtocol, "sha256": usmHMAC192SHA256AuthProtocol,
    "sha384": usmHMAC256SHA384AuthProtocol, "sha512": usmHMAC384SHA512AuthProtocol,
}
PRIV_PROTOCOLS = {
    "none": usmNoPrivProtocol, "des": usmDESPrivProtocol, "3des": usm3DESEDEPrivProtocol,
    "aes128": usmAesCfb128Protocol,
    # net-snmp's and snmp_exporter's AES-192/256 use the Blumenthal key extension;
    # Cisco's use the Reeder one (pysnmp's plain usmAesCfb192/256Protocol).
    "aes192": usmAesBlumenthalCfb192Protocol, "aes256": usmAesBlumenthalCfb256Protocol,
    "aes192c": usmAesCfb192Protocol, "aes256c": usmAesCfb256Protocol,
}
PROBE_USER = "tslcd-probe"  # the unknown v3 user a discovery probe asks for


def profile_secrets(profile: SnmpProfile) -> tuple[str, ...]:
    found = []
    for s in (profile.community, profile.auth_key, profile.priv_key):
        if s is not None and s.get_secret_value():
            found.append(s.get_secret_value())
    return tuple(found)


def describe_profile(name: str, p: SnmpProfile) -> str:
    """A one-line, secret-free description of a profile."""
    if p.version == "2c":
        what = "v2c community ***"
    else:
        level = "authPriv" if p.priv_protocol != "none" else ("authNoPriv" if p.auth_protocol != "none"
                                                              else "noAuthNoPriv")
        what = f"v3 user {p.user!r} {level}"
        if p.auth_protocol != "none":
            what += f" auth {p.auth_protocol}"
        if p.priv_protocol != "none":
            what += f" priv {p.priv_protocol}"
        if p.context:
            what += f" context {p.context!r}"
    tries = p.retries + 1
    return (f"profile {name!r}: {what}, port {p.port}, "
            f"timeout {p.timeout_s:g} s x {tries} tr{'y' if tries == 1 else 'ies'}")



def usm_groups(profiles: Mapping[str, SnmpProfile]) -> dict[str, int]:
    """Engine number for each profile: 0, unless it reuses a v3 user name of another group with other keys."""
    groups: list[dict[str, tuple[Any, ...]]] = [{}]
    out: dict[str, int] = {}
    for name in sorted(profiles):
        p = profiles[name]
        if p.version != "3" or not p.user:
            out[name] = 0
            continue
        keys = (p.auth_protocol, p.auth_key, p.priv_protocol, p.priv_key)
        free = [i for i, users in enumerate(groups) if users.get(p.user, keys) == keys]
        if not free:
            groups.append({})
            free = [len(groups) - 1]
        groups[free[0]][p.user] = keys
        out[name] = free[0]
    return out


