"""Official unit lists and inventory skeletons built from them."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from inventory import units
from inventory.importer import SkeletonError, build_skeleton
from inventory.load import parse_inventory

SHIPPED = Path(units.__file__).parent / "units.csv"


def test_shipped_dak_lak_list_has_the_2025_division() -> None:
    with SHIPPED.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["province_code"] == "66"]
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


def test_no_province_needs_a_package() -> None:
    """All 34 provinces are bundled (issue 16: until then only Đắk Lắk was, the rest needed a GPL package)."""
    found = units.for_province("dak lak")
    assert found is not None and len(found) == 102
    assert len(units.provinces()) == 34 and units.full_list_available()
    assert units.for_province("Hà Nội") is not None


@pytest.mark.parametrize("name", ["Atlantis", "", "99", "Thành phố"])
def test_unknown_province_is_none(name: str) -> None:
    assert units.for_province(name) is None


def test_normalize_name() -> None:
    assert {units.normalize_name(n) for n in ("Đắk Lắk", "dak_lak", "Tỉnh  Đắk Lắk", "ĐẮK LẮK")} == {"daklak"}
    assert units.normalize_name("TP. Hồ Chí Minh") == units.normalize_name("Thành phố Hồ Chí Minh") == "hochiminh"


def test_the_bundled_lists_are_the_signed_decision_with_their_provenance() -> None:
    """Checksums as SOURCE.md records them, and facts of Quyết định 19/2025/QĐ-TTg that the draft had wrong."""
    source = (SHIPPED.parent / "SOURCE.md").read_text(encoding="utf-8")
    for name in ("units.csv", "replaced.csv", "draft_2025.csv"):
        digest = hashlib.sha256((SHIPPED.parent / name).read_bytes()).hexdigest()
        assert f"| {name} |" in source and digest in source, name
    assert "vietnamadminunits 1.0.4 (MIT)" in source
    current = units.by_code()
    assert len(current) == 3321 and len(units.provinces()) == 34
    assert current["00082"].name == "Phường Cửa Nam" and current["24472"].name == "Xã Hòa Sơn"
    assert current["23938"].name == "Xã Ia Mơ"
    assert (current["22060"].name, current["22303"].name) == ("Xã Xuân Cảnh", "Xã Phú Hòa 2")
    drafts = units.draft_codes()
    assert drafts["00073"] == "00082" and drafts["24481"] == "24472" and drafts["22066"] == "22060"
    assert drafts["22306"] == "22303" and not set(drafts) & set(current)
    assert units.former_units()["24133"].name == "Phường Thành Công"  # a code reused by the reform


def test_all_34_provinces_and_3321_units() -> None:
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
    found = units.for_province(name)
    assert found is not None and len(found) == 126
    # Codes keep their leading zeros.
    assert found[0] == units.Unit("00004", "Phường Ba Đình", "phường", "01", "Thành phố Hà Nội")


def test_aliases() -> None:
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
    inv = parse_inventory(build_skeleton("Hà Nội"), source="ha_noi.yaml", fmt="yaml")
    assert len(inv.nodes) == 126
    assert inv.nodes[0].code == "00004"


def test_every_province_skeleton_loads_cleanly() -> None:
    total = 0
    for code, _ in units.provinces():
        total += len(parse_inventory(build_skeleton(code), source=f"{code}.yaml", fmt="yaml").nodes)
    assert total == 3321


def test_unknown_province_lists_the_known_ones() -> None:
    with pytest.raises(SkeletonError, match=r"^unknown province 'Atlantis'; known provinces: 01 Thành phố Hà Nội, "):
        build_skeleton("Atlantis")


def _country(tmp: Path, *, draft: bool) -> Path:
    """Every commune of the country as an inventory (CSV), on distinct loopback addresses; with ``draft``, the
    units whose 2025 draft code is no official code carry the draft code."""
    to_draft = {official: d for d, official in units.draft_codes().items()} if draft else {}
    path = tmp / ("country-draft.csv" if draft else "country.csv")
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(("code", "name", "kind", "province", "address"))
        for i, u in enumerate(sorted(units.by_code().values(), key=lambda u: u.code)):
            w.writerow((to_draft.get(u.code, u.code), u.name, "commune", u.province_name,
                        f"127.{100 + i // 62_500}.{i // 250 % 250}.{i % 250 + 1}"))
    return path


def _check(tmp: Path, inventory: Path, *more: str) -> subprocess.CompletedProcess[str]:
    (tmp / "config.yaml").write_text(f"province: Đắk Lắk\ninventory: {inventory}\n", encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "monitor.cli", "check", "--config", str(tmp / "config.yaml"), *more],
                          capture_output=True, text=True, timeout=300)


def test_the_country_with_official_codes_checks_clean_and_with_draft_codes_warns_and_runs(tmp_path: Path) -> None:
    """3,321 communes with the official codes: no code warning. The same with the 114 draft codes: exit 0, one
    warning per draft code naming its CSV row and the official code; --strict refuses them; the monitor takes
    every node."""
    r = _check(tmp_path, _country(tmp_path, draft=False))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3321 nodes" in r.stdout and ".code:" not in r.stdout and ": code: " not in r.stdout
    drafted = _country(tmp_path, draft=True)
    r = _check(tmp_path, drafted)
    assert r.returncode == 0, r.stdout + r.stderr
    code_warnings = [ln for ln in r.stdout.splitlines() if "is the code of the 2025 draft decision" in ln]
    assert len(code_warnings) == len(units.draft_codes()) == 114
    row = next(ln for ln in code_warnings if "'24481'" in ln)
    assert re.search(r"country-draft\.csv:row \d+: code: warning: '24481' is the code of the 2025 draft decision "
                     r"for Xã Hòa Sơn \(Đắk Lắk\); its official code .* is '24472'", row), row
    assert _check(tmp_path, drafted, "--strict").returncode == 1

    from inventory.load import load_inventory
    from monitor.config import load_config
    from monitor.runtime.service import Monitor
    from tests.conftest import ScriptedSweeper

    cfg = load_config(tmp_path / "config.yaml")
    inv = load_inventory(drafted, default_province=cfg.province, province=cfg.province)
    mon = Monitor(cfg, inv, ScriptedSweeper())  # type: ignore[arg-type]
    snap = asyncio.run(mon.sweep_once())
    assert len(snap.nodes) == 3321 and all(ns.state == "up" for ns in snap.nodes)
    assert mon.self_metrics.registry.get_sample_value("tslcd_inventory_warnings") == len(inv.warnings) >= 114
