"""Official administrative units (communes, wards) of the division in force since 1 July 2025."""

from __future__ import annotations

import csv
import importlib.util
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TextIO

__all__ = [
    "DIVISION_DATE",
    "FIELDS",
    "Unit",
    "codes_for",
    "for_province",
    "full_list_available",
    "normalize_name",
    "provinces",
    "same_province",
    "write_csv",
]

# The 2025 reform (two-level local government) took effect on this date; units
# active before it belong to the previous division and are not in these lists.
DIVISION_DATE = "2025-07-01"

FIELDS = ("code", "name", "kind", "province_code", "province_name")

_HERE = Path(__file__).parent
# Lists shipped with the project, so that these provinces need no GPL package at
# run time. Regenerate with write_csv (see its docstring).
_SHIPPED: dict[str, Path] = {"66": _HERE / "dak_lak.csv"}
_SHIPPED_NAMES: dict[str, str] = {"66": "Đắk Lắk"}
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
    """True when the optional ``vietnam-provinces`` package (all 34 provinces) is installed."""
    return importlib.util.find_spec("vietnam_provinces") is not None


def provinces() -> list[tuple[str, str]]:
    """(code, name) of every province whose unit list is known: all 34 when
    ``vietnam-provinces`` is installed, otherwise only the shipped ones."""
    if not full_list_available():
        return sorted(_SHIPPED_NAMES.items())
    from vietnam_provinces import Province

    return sorted((f"{p.code.value:02d}", p.name) for p in Province.iter_all())


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
    shipped = _SHIPPED.get(province_code)
    if shipped is not None:
        with shipped.open(encoding="utf-8", newline="") as f:
            return tuple(Unit(**row) for row in csv.DictReader(f))
    return tuple(_from_package(province_code))


def _from_package(province_code: str) -> list[Unit]:
    from vietnam_provinces import Province, ProvinceCode, Ward

    province = Province.from_code(ProvinceCode(int(province_code)))
    return sorted(
        (
            Unit(
                code=f"{w.code.value:05d}",
                # The package has stray double spaces ("Phường  Buôn Ma Thuột", 10 names).
                name=" ".join(w.name.split()),
                kind=w.division_type.value,
                province_code=province_code,
                province_name=province.name,
            )
            for w in Ward.iter_by_province(province.code)
        ),
        key=lambda u: u.code,
    )


def for_province(name_or_code: str) -> list[Unit] | None:
    """Every commune, ward and special zone of a province, by code; None when the
    province is unknown (or needs ``vietnam-provinces``, which is not installed).

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


def write_csv(units: Iterable[Unit], out: TextIO) -> None:
    """Write ``units`` in the shipped CSV format. The shipped Đắk Lắk list was made with::

        python -c "import sys; from inventory import units; \\
            units.write_csv(units._from_package('66'), sys.stdout)" > inventory/units/dak_lak.csv
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for u in units:
        writer.writerow([u.code, u.name, u.kind, u.province_code, u.province_name])
