"""Inventory skeletons: every official commune and ward of a province, for operators to fill in."""

from __future__ import annotations

import json
from collections import Counter

from inventory import units
from monitor.errors import SkeletonError

__all__ = ["SkeletonError", "build_skeleton"]


def _q(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, and keeps Vietnamese letters readable.
    return json.dumps(text, ensure_ascii=False)


def build_skeleton(province: str) -> str:
    """A commented YAML inventory of every commune, ward and special zone of ``province``
    (name or code, e.g. "Đắk Lắk", "dak lak", "66"), with official codes and names and
    the fields the operator fills in left empty. It loads cleanly with ``load_inventory``."""
    found = units.for_province(province)
    if found is None:
        known = ", ".join(f"{code} {name}" for code, name in units.provinces())
        raise SkeletonError(f"unknown province {province!r}; known provinces: {known}")
    if not found:
        raise SkeletonError(f"province {province!r} has no units in the official list")
    name = found[0].province_name
    kinds = Counter(u.kind for u in found)
    breakdown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    lines = [
        f"# TSLCD inventory for {name} (province code {found[0].province_code}): {len(found)} communes,",
        f"# wards and special zones ({breakdown}) of the division in force since {units.DIVISION_DATE}.",
        "#",
        "# For each node, fill in:",
        "#   address   management IP (IPv4 or IPv6) of the router at the People's Committee;",
        "#             leave it empty while the commune has no TSLCD circuit (it still counts,",
        "#             as not connected)",
        "#   address6  optional second, IPv6 address of a dual-stack router",
        "#   snmp      name of an SNMP profile defined in config.yaml, or leave empty",
        '#   uplink    ifName of the WAN interface whose traffic counts as "in use"',
        "#   carrier   optional: who provides the TSLCD circuit (VNPT, Viettel...), for",
        "#             availability per carrier; circuit_id: the carrier's circuit id",
        "#   parent    code of the upstream node; add your core and aggregation nodes",
        "#             (kind: core / aggregation) to this list",
        "#   area      a grouping for reports: the former district, a cluster...",
        "#   lat, lon  optional, for maps",
        "#",
        "# Keep codes quoted: they are official administrative codes (mã đơn vị hành chính)",
        "# and a code may have leading zeros. A code names a unit only while it is active:",
        "# a node of the previous division needs active_until (e.g. 2025-06-30).",
        "",
        f"province: {_q(name)}",
        "nodes:",
    ]
    for u in found:
        lines += [
            f"  - code: {_q(u.code)}",
            f"    name: {_q(u.name)}",
            "    kind: commune",
            f"    active_from: {units.DIVISION_DATE}",
            '    area: ""',
            '    address: ""',
            "    snmp:",
            "    uplink:",
            "    parent:",
        ]
    return "\n".join(lines) + "\n"
