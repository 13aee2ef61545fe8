"""Official administrative units (communes, wards) of the division in force since 1 July 2025."""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "DIVISION_DATE",
    "FIELDS",
    "Unit",
    "Former",
    "by_code",
    "codes_for",
    "draft_codes",
    "former_units",
    "for_province",
    "full_list_available",
    "normalize_name",
    "provinces",
    "same_province",
]

# The 2025 reform (two-level local government) took effect on this date; units
# active before it belong to the previous division and are not in these lists.
DIVISION_DATE = "2025-07-01"

FIELDS = ("code", "name", "kind", "province_code", "province_name")

_HERE = Path(__file__).parent
# Every unit of the 34 provinces, and what the lists before and the 2025 draft called them:
# built by scripts/units_build.py from vietnamadminunits (MIT); provenance and checksums in SOURCE.md.
UNITS_CSV = _HERE / "units.csv"
REPLACED_CSV = _HERE / "replaced.csv"
DRAFT_CSV = _HERE / "draft_2025.csv"
# Names in common use that are not the official name, in normalize_name form.
_ALIASES = {"hcm": "hochiminh", "tphcm": "hochiminh", "hcmc": "hochiminh", "saigon": "hochiminh"}


@dataclass(frozen=True, slots=True)
class Unit:
    """One commune-level unit: ``code`` is the 5-digit official code, ``kind`` is
    "xã", "phường" or "đặc khu", ``province_code`` the 2-digit province code."""

    code: str
    name: str
    kind: str
    province_code: str
    province_name: str


def normalize_name(text: str) -> str:
    """Lower-case ``text`` without diacritics or spaces, for lenient matching:
    "Đắk Lắk", "Đăk Lăk", "dak lak", "DakLak" and "dak_lak" all give "daklak"."""
    # "đ" is a letter of its own, not "d" plus a combining mark, so NFD keeps it.
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    words = bare.replace("_", " ").replace(".", " ").split()
    # "Thành phố Hà Nội", "TP. Hồ Chí Minh", "Tỉnh Đắk Lắk": written with or without the prefix.
    for prefix in (["thanh", "pho"], ["tp"], ["tinh"]):
        if words[: len(prefix)] == prefix and len(words) > len(prefix):
            words = words[len(prefix) :]
            break
    return "".join(words)


def full_list_available() -> bool:
    """True: the lists of all 34 provinces are bundled (kept for callers of the time they needed a package)."""
    return True


@lru_cache(maxsize=1)
def _all_units() -> tuple[Unit, ...]:
    with UNITS_CSV.open(encoding="utf-8", newline="") as f:
        return tuple(Unit(**row) for row in csv.DictReader(f))


def provinces() -> list[tuple[str, str]]:
    """(code, name) of the 34 provinces of the current division."""
    return sorted({(u.province_code, u.province_name) for u in _all_units()})


def _province_code(name_or_code: str) -> str | None:
    """The 2-digit code of a province given by name or code, or None if unknown."""
    text = name_or_code.strip()
    if text.isdigit():
        code = f"{int(text):02d}"
        known = dict(provinces())
        return code if code in known else None
    wanted = normalize_name(text)
    wanted = _ALIASES.get(wanted, wanted)
    if not wanted:
        return None
    for code, name in provinces():
        if normalize_name(name) == wanted:
            return code
    return None


@lru_cache(maxsize=256)
def same_province(a: str, b: str) -> bool:
    """Whether two spellings name one province: "Hà Nội", "Thành phố Hà Nội", "TP. Hà Nội", "ha noi" and the
    code "01" do (by code where the province is known, else by the name without prefix or diacritics)."""
    if a.strip() == b.strip():
        return True
    ca, cb = _province_code(a), _province_code(b)
    if ca is not None or cb is not None:
        return ca == cb
    na, nb = normalize_name(a), normalize_name(b)
    return bool(na) and _ALIASES.get(na, na) == _ALIASES.get(nb, nb)


@lru_cache(maxsize=64)
def _units_of(province_code: str) -> tuple[Unit, ...]:
    return tuple(u for u in _all_units() if u.province_code == province_code)


@dataclass(frozen=True, slots=True)
class Former:
    """A unit of the division before 1 July 2025, and the code of the unit it became ("" when not known)."""

    code: str
    name: str
    district: str
    new_code: str


@lru_cache(maxsize=1)
def former_units() -> dict[str, Former]:
    """The units of the division before 1 July 2025, by code (a code reused since names another unit now)."""
    with REPLACED_CSV.open(encoding="utf-8", newline="") as f:
        return {r["old_code"]: Former(r["old_code"], r["old_name"], r["old_district"], r["new_code"])
                for r in csv.DictReader(f)}


@lru_cache(maxsize=1)
def draft_codes() -> dict[str, str]:
    """Codes of the 2025 draft decision that are no official code, mapped to the official code of the unit."""
    with DRAFT_CSV.open(encoding="utf-8", newline="") as f:
        return {r["draft_code"]: r["official_code"] for r in csv.DictReader(f)}


@lru_cache(maxsize=1)
def by_code() -> dict[str, Unit]:
    """Every current unit by its official code."""
    return {u.code: u for u in _all_units()}


def for_province(name_or_code: str) -> list[Unit] | None:
    """Every commune, ward and special zone of a province, by code; None when the province is unknown.

    ``name_or_code`` may be "Đắk Lắk", "dak lak", "Tỉnh Đắk Lắk" or "66".
    """
    code = _province_code(name_or_code)
    if code is None:
        return None
    return list(_units_of(code))


@lru_cache(maxsize=256)
def codes_for(name_or_code: str) -> frozenset[str] | None:
    """The set of official unit codes of a province, or None when unknown (for validation)."""
    found = for_province(name_or_code)
    return None if found is None else frozenset(u.code for u in found)
