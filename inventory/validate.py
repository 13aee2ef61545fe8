"""Inventory rules: every problem of a set of nodes at once, each with its file and line."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from inventory import units
from inventory.model import KINDS, Node
from monitor.errors import InventoryError

__all__ = ["MISSING", "InventoryError", "Problem", "Where", "check", "validate"]

MISSING = "missing required field"
MISSING_PROVINCE = "missing province: set it on the node, or a default for the file (YAML: top-level 'province:')"
_CODE_RE = re.compile(r"\d{5}")
_REFORM = date.fromisoformat(units.DIVISION_DATE)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in an inventory: ``inventory.yaml:42: nodes[3].address: ...``."""

    source: str
    key: str
    message: str
    warning: bool = False  # the node is monitored and counted; `tslcd check --strict` makes it an error

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.key, "warning" if self.warning else "", self.message)
                         if part)




@dataclass(frozen=True, slots=True)
class Where:
    """Where a node was written: ``prefix`` names it in keys ("nodes[3]"; "" for a CSV
    row, whose source already names it) and ``fields`` maps a field to its own line."""

    prefix: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def source(self, node: Node, name: str) -> str:
        return self.fields.get(name, node.source)


def _default_where(i: int, node: Node) -> Where:
    # A CSV row ("nodes.csv:row 7") already says which node it is.
    return Where("" if ":row " in node.source else f"nodes[{i}]")


def validate(nodes: Sequence[Node], *, snmp_profiles: Collection[str] | None = None) -> list[Problem]:
    """Every problem of ``nodes``; ``snmp_profiles`` None means profile names are not checked."""
    return check(nodes, [_default_where(i, n) for i, n in enumerate(nodes)], snmp_profiles=snmp_profiles)


def check(
    nodes: Sequence[Node], where: Sequence[Where], *, snmp_profiles: Collection[str] | None = None
) -> list[Problem]:
    """Like :func:`validate`, with the loader's keys and per-field lines."""
    if len(where) != len(nodes):
        raise ValueError(f"{len(nodes)} nodes but {len(where)} locations")
    problems: list[Problem] = []
    for node, w in zip(nodes, where, strict=True):
        problems += _check_node(node, w, snmp_profiles)
    problems += _check_unique(nodes, where, "code")
    problems += _check_unique(nodes, where, "address")
    problems += _check_parents(nodes, where)
    return problems


CARRIER_MAX = 64


def _check_node(node: Node, w: Where, snmp_profiles: Collection[str] | None) -> list[Problem]:
    out: list[Problem] = []

    def add(name: str, message: str, *, warning: bool = False) -> None:
        out.append(Problem(w.source(node, name), w.key(name), message, warning))

    for name in ("code", "name"):
        if not getattr(node, name).strip():
            add(name, MISSING)
    if not node.province.strip():
        add("province", MISSING_PROVINCE)
    if node.kind not in KINDS:
        add("kind", f"{node.kind!r} is not a valid kind (expected commune, core or aggregation)")
    if node.address:
        ip = _ip(node.address)
        if ip is None:
            add("address", f"{node.address!r} is not a valid IP address")
        elif _unmonitorable(ip):
            add("address", f"{node.address!r} {_unmonitorable(ip)}: a node needs the unicast address of its router")
    if node.address6:
        ip6 = _ip(node.address6)
        if ip6 is None:
            add("address6", f"{node.address6!r} is not a valid IPv6 address")
        elif ip6.version != 6:
            add("address6", f"{node.address6!r} is not an IPv6 address")
        elif _unmonitorable(ip6):
            add("address6", f"{node.address6!r} {_unmonitorable(ip6)}: a node needs the unicast address of its router")
        elif not node.address:
            add("address6", "set but 'address' is empty: put a single address in 'address'")
    if node.active_from and node.active_until and node.active_until < node.active_from:
        add("active_until", f"{node.active_until} is before active_from {node.active_from}")
    if snmp_profiles is not None and node.snmp is not None and node.snmp not in snmp_profiles:
        known = ", ".join(sorted(snmp_profiles)) or "none defined"
        add("snmp", f"unknown SNMP profile {node.snmp!r} (known: {known})")
    for name in ("carrier", "circuit_id"):
        value = getattr(node, name)
        if value is not None and len(value) > CARRIER_MAX:
            add(name, f"{len(value)} characters, at most {CARRIER_MAX} (a carrier's name or its circuit id)")
    if node.circuit_id is not None and node.carrier is None:
        add("circuit_id", "set but 'carrier' is empty: whose circuit is it? (counted under no carrier)",
            warning=True)
    if node.lat is not None and not -90 <= node.lat <= 90:
        add("lat", f"{node.lat} is out of range (-90 to 90)")
    if node.lon is not None and not -180 <= node.lon <= 180:
        add("lon", f"{node.lon} is out of range (-180 to 180)")
    if node.kind == "commune" and node.code.strip():
        message = _commune_code_problem(node)
        if message:
            # A well-formed code the bundled list lacks informs, it does not stop the monitor: the list may be
            # behind the official one (units change by resolution), or the code a draft one.
            add("code", message, warning=_CODE_RE.fullmatch(node.code) is not None)
    return out


def _commune_code_problem(node: Node) -> str | None:
    if not _CODE_RE.fullmatch(node.code):
        return f"{node.code!r} is not a valid administrative code (5 digits)"
    # A unit that ended before the reform belongs to the old division: its code is that division's.
    if node.active_until is not None and node.active_until < _REFORM:
        return None
    official = units.codes_for(node.province) if node.province.strip() else None
    if official is None or node.code in official:
        return None
    current = units.by_code()
    draft = units.draft_codes().get(node.code)
    if draft is not None:
        u = current[draft]
        return (f"{node.code!r} is the code of the 2025 draft decision for {u.name} ({u.province_name}); its "
                f"official code (Quyết định 19/2025/QĐ-TTg) is {draft!r}; it is monitored and counted")
    former = units.former_units().get(node.code)
    if former is not None:
        became = current.get(former.new_code)
        now = f"; it became {became.code!r} {became.name}" if became else ""
        return (f"{node.code!r} was {former.name} ({former.district}) in the division before "
                f"{units.DIVISION_DATE}{now} (give the node active_until, or the new unit's code); it is "
                "monitored and counted")
    return (
        f"{node.code!r} is not the code of a current commune or ward of {node.province}"
        f" ({len(official)} units since {units.DIVISION_DATE}; a unit that ended before then"
        " needs active_until); it is monitored and counted"
    )


def _unmonitorable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why an echo to ``ip`` cannot tell whether one router is up ("" when it can)."""
    if ip.is_unspecified:
        return "is the unspecified address"
    if ip.is_multicast:
        return "is a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    return ""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _check_unique(nodes: Sequence[Node], where: Sequence[Where], what: str) -> list[Problem]:
    """Codes (or addresses) shared by nodes whose active intervals overlap: the 2025
    reform reused codes, so sharing one across disjoint intervals is allowed."""
    groups: dict[object, list[tuple[int, str]]] = defaultdict(list)
    for i, node in enumerate(nodes):
        if what == "code":
            if node.code.strip():
                groups[node.code].append((i, "code"))
            continue
        for name in ("address", "address6"):
            ip = _ip(getattr(node, name))
            # A v4 address6 is already reported as such.
            if ip is not None and (name == "address" or ip.version == 6):
                groups[ip].append((i, name))
    out: list[Problem] = []
    for members in groups.values():
        # The first member active for ever overlaps every later one: only the members before it need a look,
        # so 12,000 rows sharing a code cost 12,000 checks, not 72 million.
        open_pos: int | None = None
        for pos, (i, name) in enumerate(members):
            limit = pos if open_pos is None else open_pos
            first = next(((j, other) for j, other in members[:limit] if j != i and nodes[j].overlaps(nodes[i])), None)
            # (An empty interval, active_until before active_from, overlaps nothing, not even that one.)
            if first is None and open_pos is not None and members[open_pos][0] != i \
                    and nodes[members[open_pos][0]].overlaps(nodes[i]):
                first = members[open_pos]
            if open_pos is None and nodes[i].active_from is None and nodes[i].active_until is None:
                open_pos = pos
            if first is None:
                continue
            j, other = first
            ref = where[j].source(nodes[j], other) or where[j].key(other)
            if other != name:
                ref += f" as {other}"
            value = getattr(nodes[i], name)
            out.append(
                Problem(
                    where[i].source(nodes[i], name),
                    where[i].key(name),
                    f"duplicate {what} {value!r} (also at {ref}) among nodes active at the same time",
                )
            )
    return out


def _check_parents(nodes: Sequence[Node], where: Sequence[Where]) -> list[Problem]:
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        by_code[node.code].append(i)
    out: list[Problem] = []

    def add(i: int, message: str) -> None:
        out.append(Problem(where[i].source(nodes[i], "parent"), where[i].key("parent"), message))

    # edges[i]: the nodes child i may hang from (a reused parent code can name several over time).
    edges: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        if node.parent is None:
            continue
        if node.parent == node.code:
            add(i, f"node {node.code!r} is its own parent")
            continue
        candidates = by_code.get(node.parent, [])
        if not candidates:
            add(i, f"unknown parent {node.parent!r}: no node has that code")
            continue
        active = [j for j in candidates if nodes[j].overlaps(node)]
        if not active:
            first = candidates[0]
            ref = where[first].source(nodes[first], "code") or where[first].prefix
            add(i, f"parent {node.parent!r} (at {ref}) is not active at any time this node is")
            continue
        edges[i] = active
    for cycle in _cycles(edges):
        start = min(cycle)
        at = cycle.index(start)
        ordered = cycle[at:] + cycle[:at]
        chain = " -> ".join(repr(nodes[k].code) for k in [*ordered, start])
        add(start, f"parent cycle: {chain}")
    return out


def _cycles(edges: Mapping[int, Sequence[int]]) -> list[list[int]]:
    """One cycle per back edge of a depth-first walk; iterative, since a bad file
    may chain thousands of parents."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    found: list[list[int]] = []
    seen: set[frozenset[int]] = set()
    for root in edges:
        if root in state:
            continue
        path: list[int] = [root]
        state[root] = 1
        stack = [iter(edges.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return found
