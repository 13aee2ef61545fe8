"""Reading inventories from YAML or CSV into nodes that remember their file and line."""

from __future__ import annotations

import csv
import difflib
import errno
import io
import re
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal, cast

import yaml

from inventory import units
from inventory.model import Inventory, Kind, Node
from inventory.validate import MISSING, InventoryError, Problem, Where, check

__all__ = ["FIELDS", "InventoryError", "Problem", "load_inventory", "parse_inventory"]

FIELDS = (
    "code", "name", "kind", "province", "area", "address", "address6", "snmp", "uplink", "parent",
    "carrier", "circuit_id", "lat", "lon", "active_from", "active_until",
)  # fmt: skip
# "x-" keys are ignored (as in Compose files): a place for YAML anchors shared by nodes.
_UNKNOWN_TOP = "unknown top-level key (expected 'province', 'nodes' or an 'x-' key for anchors)"
_REQUIRED_COLUMNS = ("code", "name")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT_TAG = "tag:yaml.org,2002:int"
_NULL_TAG = "tag:yaml.org,2002:null"
Format = Literal["yaml", "csv"]
# libyaml composes a 20,000-node inventory about 10 times faster than pure Python.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class _Cell:
    """One field's value as written (None when unset), where, and whether it was a bare integer."""

    text: str | None
    source: str
    bare_int: bool = False


@dataclass(slots=True)
class _Entry:
    """One node's fields before conversion."""

    source: str
    prefix: str
    cells: dict[str, _Cell]


def load_inventory(
    path: str | Path,
    *,
    snmp_profiles: Collection[str] | None = None,
    default_province: str | None = None,
    province: str | Sequence[str] | None = None,
) -> Inventory:
    """Load and validate an inventory file (.yaml, .yml or .csv).

    Codes are read as the text written, never as YAML numbers: an unquoted ``00004``
    or ``012`` keeps its digits (YAML 1.1 would read 4 and octal 10). A commune code
    written as a bare number shorter than 5 digits (``code: 4``, or a CSV cell that a
    spreadsheet stripped of its leading zeros) is left-padded to 5 digits. Quote codes
    in YAML all the same: ``code: "00004"``.

    Raises ``FileNotFoundError`` naming the path when there is no such file, and
    :class:`InventoryError` with every problem found (not just the first) otherwise.
    ``snmp_profiles`` are the profile names defined in config (None: not checked);
    ``default_province`` applies to nodes that set none, after the file's own default.
    ``province`` is the config's province: a node naming the same province otherwise ("Thành phố
    Hà Nội" for "Hà Nội", "ha noi", "01") takes the config's spelling, so that every figure
    groups them together; a warning says so when the config's province has no node, or when
    nodes belong to provinces the config does not name. Problems that do not stop the monitor
    (an unknown commune code, those provinces) are ``Inventory.warnings``.
    """
    name = str(path)
    p = Path(path)
    suffix = p.suffix.lower()
    fmt: Format
    if suffix in (".yaml", ".yml"):
        fmt = "yaml"
    elif suffix == ".csv":
        fmt = "csv"
    else:
        raise InventoryError([Problem(name, "", "unknown inventory format: expected a .yaml, .yml or .csv file")])
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "inventory file not found", name) from None
    try:
        # utf-8-sig: spreadsheets save CSV with a byte order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InventoryError([Problem(f"{name}:{line}", "", "not valid UTF-8 (save the file as UTF-8)")]) from None
    return parse_inventory(text, source=name, fmt=fmt, snmp_profiles=snmp_profiles, default_province=default_province,
                           province=province)


def parse_inventory(
    text: str,
    *,
    source: str,
    fmt: Format,
    snmp_profiles: Collection[str] | None = None,
    default_province: str | None = None,
    province: str | Sequence[str] | None = None,
) -> Inventory:
    """Like :func:`load_inventory`, from text already read; ``source`` names it in messages."""
    if fmt == "yaml":
        entries, file_province, problems = _parse_yaml(text, source)
        default_province = file_province or default_province
    else:
        entries, problems = _parse_csv(text, source)
    nodes: list[Node] = []
    where: list[Where] = []
    for entry in entries:
        node, w = _build(entry, default_province, problems)
        nodes.append(node)
        where.append(w)
    if not entries and not problems:
        problems.append(Problem(source, "nodes", "no nodes defined"))
    rejected = {p.key for p in problems}
    problems += [
        p
        for p in check(nodes, where, snmp_profiles=snmp_profiles)
        # A value the loader rejected (a list for a name, a column absent from the
        # CSV header) is reported once, not again as missing.
        if not (p.key in rejected and p.message == MISSING)
    ]
    errors = sorted((p for p in problems if not p.warning), key=_position)
    if errors:
        raise InventoryError(errors)
    warnings = [p for p in problems if p.warning]
    if province is not None and nodes:
        nodes, more = _align_province(nodes, province, source)
        warnings += more
    return Inventory.of(nodes, source=source, warnings=[str(p) for p in sorted(warnings, key=_position)])


def _align_province(nodes: list[Node], province: str | Sequence[str], source: str) -> tuple[list[Node], list[Problem]]:
    """Nodes of the config's province (or one of its provinces) written another way take its spelling; warnings
    for the rest."""
    watched = (province,) if isinstance(province, str) else tuple(province)
    named = repr(watched[0]) if len(watched) == 1 else f"provinces ({len(watched)})"
    same: dict[str, str | None] = {}
    out: list[Node] = []
    others: dict[str, Node] = {}
    for n in nodes:
        if n.province not in same:
            same[n.province] = next((w for w in watched if units.same_province(n.province, w)), None)
        spelled = same[n.province]
        if spelled is not None:
            out.append(n if n.province == spelled else replace(n, province=spelled))
        else:
            out.append(n)
            others.setdefault(n.province, n)
    what = "province" if len(watched) == 1 else "provinces"
    warnings = [Problem(n.source or source, "province", f"{n.province!r} is not the config's {what} "
                        f"{named if len(watched) == 1 else ''}".rstrip() + ": its communes count in that province's "
                        "own figures, not in the config's", True)
                for n in others.values()]
    if len(others) == len(same):
        warnings.insert(0, Problem(source, "", f"no node belongs to the config's {what} {named} "
                                   f"(the inventory names {', '.join(sorted(repr(p) for p in others))})", True))
    return out, warnings


def _position(p: Problem) -> tuple[int, int]:
    """Sort key putting problems in file order (stable within one line)."""
    m = re.search(r":(?:row )?(\d+)$", p.source)
    return (1, int(m.group(1))) if m else (0, 0)


def _build(entry: _Entry, default_province: str | None, problems: list[Problem]) -> tuple[Node, Where]:
    """Convert one entry's text into a Node; conversion problems go to ``problems`` and
    the field stays unset, so that the rules still check everything else."""
    where = Where(entry.prefix, {k: c.source for k, c in entry.cells.items()})

    def text(name: str) -> str | None:
        cell = entry.cells.get(name)
        return None if cell is None else cell.text

    def bad(name: str, message: str) -> None:
        problems.append(Problem(where.fields[name], where.key(name), message))

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        if _DATE_RE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        bad(name, f"{value!r} is not a valid date (expected YYYY-MM-DD)")
        return None

    def number(name: str) -> float | None:
        value = text(name)
        if value is None:
            return None
        try:
            # Spreadsheets in Vietnamese locale write a decimal comma: 12,6675.
            return float(value.replace(",", ".") if "." not in value else value)
        except ValueError:
            bad(name, f"{value!r} is not a number")
            return None

    def shown(name: str, fallback: str | None = None) -> str:
        """A text people read (pages, reports, metrics): NFC, control and bidi-override characters neutralised."""
        value = _nfc(text(name) or fallback)
        clean = _UNSHOWABLE.sub("\ufffd", value)
        if clean != value and name in where.fields:
            problems.append(Problem(where.fields[name], where.key(name), "control or bidirectional-override "
                                    "characters replaced by U+FFFD (they would garble pages, reports and metrics)",
                                    True))
        return clean

    kind = text("kind") or "commune"
    code = text("code") or ""
    code_cell = entry.cells.get("code")
    if kind == "commune" and code_cell is not None and code_cell.bare_int and code.isdigit() and len(code) < 5:
        # A number lost its leading zeros (YAML int, spreadsheet cell): official codes have 5 digits.
        code = code.zfill(5)
    node = Node(
        code=code,
        name=shown("name"),
        # Checked by the rules with everything else, so one run reports all problems.
        kind=cast(Kind, kind),
        province=shown("province", default_province),
        area=shown("area"),
        address=text("address") or "",
        address6=text("address6") or "",
        snmp=text("snmp"),
        uplink=text("uplink"),
        parent=text("parent"),
        carrier=shown("carrier") or None,
        circuit_id=shown("circuit_id") or None,
        lat=number("lat"),
        lon=number("lon"),
        active_from=day("active_from"),
        active_until=day("active_until"),
        source=entry.source,
    )
    return node, where


# C0 and C1 controls (a bell, an escape sequence), and the bidirectional controls that reorder what follows them.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _nfc(value: str | None) -> str:
    # One spelling per name, whatever the editor: NFD "Đắk Lắk" would be another area.
    return unicodedata.normalize("NFC", value) if value else ""


def _unknown(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown field (did you mean {close[0]!r}?)" if close else "unknown field"


# YAML


def _parse_yaml(text: str, path: str) -> tuple[list[_Entry], str | None, list[Problem]]:
    problems: list[Problem] = []
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        try:
            # libyaml and PyYAML word errors differently: report PyYAML's, the same everywhere.
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            return [], None, [_yaml_error(e, path)]
        except RecursionError:
            return [], None, [Problem(path, "", "nested too deeply to read (no inventory needs it)")]
    except RecursionError:
        return [], None, [Problem(path, "", "nested too deeply to read (no inventory needs it)")]
    if root is None:
        return [], None, []

    def line(node: yaml.Node) -> str:
        return f"{path}:{node.start_mark.line + 1}"

    province: str | None = None
    items: yaml.Node | None = root
    if isinstance(root, yaml.MappingNode):
        items = None
        for key, value in _pairs(root, "", path, problems):
            if key.value == "province":
                province = _scalar(value, "province", line(value), problems).text
            elif key.value == "nodes":
                items = value
            elif not key.value.startswith("x-"):
                problems.append(Problem(line(key), key.value, _UNKNOWN_TOP))
    elif not isinstance(root, yaml.SequenceNode):
        problems.append(Problem(line(root), "", "expected a mapping with 'province' and 'nodes', or a list of nodes"))
        return [], province, problems
    if items is None or items.tag == _NULL_TAG:
        return [], province, problems
    if not isinstance(items, yaml.SequenceNode):
        problems.append(Problem(line(items), "nodes", "expected a list of nodes"))
        return [], province, problems
    entries: list[_Entry] = []
    for i, item in enumerate(items.value):
        where = f"nodes[{i}]"
        if not isinstance(item, yaml.MappingNode):
            problems.append(Problem(line(item), where, "expected a mapping of fields (code, name, kind, ...)"))
            continue
        cells: dict[str, _Cell] = {}
        for k, v in _pairs(item, where, path, problems):
            if k.value not in FIELDS:
                problems.append(Problem(line(k), f"{where}.{k.value}", _unknown(k.value, FIELDS)))
                continue
            cells[k.value] = _scalar(v, f"{where}.{k.value}", line(k), problems)
        entries.append(_Entry(line(item), where, cells))
    return entries, province, problems


def _yaml_error(e: yaml.YAMLError, path: str) -> Problem:
    """One problem at the parser's line, worded as PyYAML words it."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else path
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    if not context:
        return Problem(where, "", f"not valid YAML: {problem}")
    opened = getattr(e, "context_mark", None)
    if opened is not None:
        context += f" at line {opened.line + 1}"
    # PyYAML pairs "while parsing X" with what went wrong, and "expected X" with "but found Y".
    if problem.startswith("but "):
        return Problem(where, "", f"not valid YAML: {context}, {problem}")
    return Problem(where, "", f"not valid YAML: {problem} ({context})")


def _pairs(
    mapping: yaml.MappingNode, key: str, path: str, problems: list[Problem]
) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    """The key/value pairs of a mapping, merge keys (``<<: *defaults``) applied;
    a repeated key is reported (PyYAML would silently keep the last one)."""
    try:
        yaml.constructor.SafeConstructor().flatten_mapping(mapping)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or mapping.start_mark
        problems.append(Problem(f"{path}:{mark.line + 1}", key, f"bad merge: {getattr(e, 'problem', e)}"))
    first: dict[str, int] = {}
    for k, v in mapping.value:
        if not isinstance(k, yaml.ScalarNode):
            problems.append(Problem(f"{path}:{k.start_mark.line + 1}", key, "a key must be a plain name"))
            continue
        name = f"{key}.{k.value}" if key else k.value
        if k.value in first:
            problems.append(
                Problem(
                    f"{path}:{k.start_mark.line + 1}",
                    name,
                    f"duplicate field (first at line {first[k.value]})",
                )
            )
            continue
        first[k.value] = k.start_mark.line + 1
        yield k, v


def _scalar(node: yaml.Node, key: str, source: str, problems: list[Problem]) -> _Cell:
    # The text as written, not PyYAML's value: codes keep their leading zeros
    # (YAML 1.1 would read 012 as octal 10) and dates are parsed strictly.
    if not isinstance(node, yaml.ScalarNode):
        what = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
        problems.append(Problem(source, key, f"expected a single value, got a {what}"))
        return _Cell(None, source)
    if node.tag == _NULL_TAG or not node.value.strip():
        return _Cell(None, source)
    return _Cell(node.value.strip(), source, bare_int=node.tag == _INT_TAG)


# CSV


def _parse_csv(text: str, path: str) -> tuple[list[_Entry], list[Problem]]:
    problems: list[Problem] = []
    first_line = text.split("\n", 1)[0]
    # Spreadsheets set to Vietnamese (decimal comma) export with ";".
    delimiter = next((d for d in (",", ";", "\t") if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        rows.extend(reader)
    except csv.Error as e:
        problems.append(Problem(f"{path}:row {len(rows) + 1}", "", f"not valid CSV: {e}"))
    if not rows:
        return [], problems
    header_source = f"{path}:row 1"
    columns: list[str | None] = []
    for n, cell in enumerate(rows[0], start=1):
        name = cell.strip().lower()
        if not name:
            columns.append(None)
        elif name in columns:
            problems.append(Problem(header_source, name, f"duplicate column (column {n})"))
            columns.append(None)
        elif name not in FIELDS:
            problems.append(Problem(header_source, name, _unknown(name, FIELDS)))
            columns.append(None)
        else:
            columns.append(name)
    for name in _REQUIRED_COLUMNS:
        if name not in columns:
            problems.append(Problem(header_source, name, "missing required column"))
    named = {c for c in columns if c}
    entries: list[_Entry] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        source = f"{path}:row {number}"
        cells: dict[str, _Cell] = {}
        for n, raw in enumerate(row):
            value = raw.strip()
            column = columns[n] if n < len(columns) else None
            if column is None:
                header = rows[0][n].strip() if n < len(rows[0]) else ""
                # An unknown column was reported once in the header; a cell under no header was not.
                if value and (not header or n >= len(rows[0])):
                    problems.append(Problem(source, "", f"value {value!r} in column {n + 1}, which has no header"))
                continue
            cells[column] = _Cell(value or None, source, bare_int=value.isdigit())
        for column in named - cells.keys():
            cells[column] = _Cell(None, source)
        entries.append(_Entry(source, "", cells))
    return entries, problems
