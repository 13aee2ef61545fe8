"""Official unit lists and inventory skeletons built from them."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from inventory import units
from inventory.importer import SkeletonError, build_skeleton
from inventory.load import parse_inventory

SHIPPED = Path(units.__file__).parent / "dak_lak.csv"


def test_shipped_dak_lak_list_has_the_2025_division() -> None:
    with SHIPPED.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 102
    assert Counter(r["kind"] for r in rows) == {"xã": 88, "phường": 14}
    assert {(r["province_code"], r["province_name"]) for r in rows} == {("66", "Đắk Lắk")}
    by_code = {r["code"]: r["name"] for r in rows}
    assert len(by_code) == 102
    # A reused code: 24133 was Phường Thành Công before 1 July 2025.
    assert by_code["24133"] == "Phường Buôn Ma Thuột"
    # Former Phú Yên is part of Đắk Lắk now.
    assert by_code["22015"] == "Phường Tuy Hòa"


@pytest.mark.parametrize("name", ["Đắk Lắk", "dak lak", "DAK LAK", "daklak", "Đăk Lăk", "Tỉnh Đắk Lắk", "66", "066"])
def test_for_province_matches_names_without_diacritics_or_case(name: str) -> None:
    found = units.for_province(name)
    assert found is not None and len(found) == 102
    assert units.Unit("24133", "Phường Buôn Ma Thuột", "phường", "66", "Đắk Lắk") in found


def test_dak_lak_needs_no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units, "full_list_available", lambda: False)
    found = units.for_province("dak lak")
    assert found is not None and len(found) == 102
    assert units.provinces() == [("66", "Đắk Lắk")]
    assert units.for_province("Hà Nội") is None


@pytest.mark.parametrize("name", ["Atlantis", "", "99", "Thành phố"])
def test_unknown_province_is_none(name: str) -> None:
    assert units.for_province(name) is None


def test_normalize_name() -> None:
    assert {units.normalize_name(n) for n in ("Đắk Lắk", "dak_lak", "Tỉnh  Đắk Lắk", "ĐẮK LẮK")} == {"daklak"}
    assert units.normalize_name("TP. Hồ Chí Minh") == units.normalize_name("Thành phố Hồ Chí Minh") == "hochiminh"


# With the optional vietnam-provinces package (GPL-3.0; installed in tests).


def test_shipped_list_is_what_the_package_gives() -> None:
    pytest.importorskip("vietnam_provinces")
    out = io.StringIO()
    units.write_csv(units._from_package("66"), out)
    assert out.getvalue() == SHIPPED.read_text(encoding="utf-8")


def test_all_34_provinces_and_3321_units() -> None:
    pytest.importorskip("vietnam_provinces")
    provinces = units.provinces()
    assert len(provinces) == 34
    assert ("01", "Thành phố Hà Nội") in provinces and ("66", "Đắk Lắk") in provinces
    lists = {code: units.for_province(code) or [] for code, _ in provinces}
    assert sum(len(v) for v in lists.values()) == 3321
    every = [u for v in lists.values() for u in v]
    assert all(len(u.code) == 5 and u.code.isdigit() for u in every)
    # The package has double spaces in 10 names; they are cleaned.
    assert all(u.name == " ".join(u.name.split()) for u in every)


@pytest.mark.parametrize("name", ["Hà Nội", "ha noi", "Thành phố Hà Nội", "1", "01"])
def test_other_provinces_by_name_or_code(name: str) -> None:
    pytest.importorskip("vietnam_provinces")
    found = units.for_province(name)
    assert found is not None and len(found) == 126
    # Codes keep their leading zeros.
    assert found[0] == units.Unit("00004", "Phường Ba Đình", "phường", "01", "Thành phố Hà Nội")


def test_aliases() -> None:
    pytest.importorskip("vietnam_provinces")
    assert units.for_province("TP HCM") == units.for_province("Hồ Chí Minh") == units.for_province("79")


# Skeletons


def test_dak_lak_skeleton_loads_cleanly() -> None:
    text = build_skeleton("dak lak")
    assert text.startswith("# TSLCD inventory for Đắk Lắk (province code 66): 102 communes,\n")
    assert "(88 xã, 14 phường)" in text
    for field in ("address", "snmp", "uplink", "parent", "area"):
        assert f"#   {field} " in text
    inv = parse_inventory(text, source="dak_lak.yaml", fmt="yaml", snmp_profiles=set())
    assert len(inv.nodes) == 102
    assert all(n.kind == "commune" and n.address == "" and n.snmp is None for n in inv.nodes)
    assert inv.provinces == ("Đắk Lắk",)
    node = next(n for n in inv.nodes if n.code == "24133")
    assert (node.name, node.source) == (
        "Phường Buôn Ma Thuột",
        "dak_lak.yaml:" + str(_line_of(text, '"24133"')),
    )


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_ha_noi_skeleton_loads_cleanly() -> None:
    pytest.importorskip("vietnam_provinces")
    inv = parse_inventory(build_skeleton("Hà Nội"), source="ha_noi.yaml", fmt="yaml")
    assert len(inv.nodes) == 126
    assert inv.nodes[0].code == "00004"


def test_every_province_skeleton_loads_cleanly() -> None:
    pytest.importorskip("vietnam_provinces")
    total = 0
    for code, _ in units.provinces():
        total += len(parse_inventory(build_skeleton(code), source=f"{code}.yaml", fmt="yaml").nodes)
    assert total == 3321


def test_unknown_province_lists_the_known_ones() -> None:
    pytest.importorskip("vietnam_provinces")
    with pytest.raises(SkeletonError, match=r"^unknown province 'Atlantis'; known provinces: 01 Thành phố Hà Nội, "):
        build_skeleton("Atlantis")


def test_without_the_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units, "full_list_available", lambda: False)
    with pytest.raises(SkeletonError) as raised:
        build_skeleton("Hà Nội")
    assert str(raised.value) == (
        "no unit list for province 'Hà Nội': only Đắk Lắk is shipped; the lists of all 34 provinces come"
        " with the optional package vietnam-provinces (GPL-3.0): pip install 'tslcd-monitor[units]'"
    )
    assert "Phường Buôn Ma Thuột" in build_skeleton("Đắk Lắk")
