"""Rebuild the bundled lists of administrative units (inventory/units/*.csv) and their SOURCE.md.

    pip install 'vietnamadminunits==1.0.4' 'vietnam-provinces==2025.10.1'
    python scripts/units_build.py

Sources (both on PyPI):
- vietnamadminunits (MIT): the 3,321 units in force since 1 July 2025 with the codes of
  Quyết định 19/2025/QĐ-TTg as the statistics office publishes them (table admin_units of
  its dataset.db), the 10,040 units of the division before (admin_units_legacy), and which
  new unit each old one became (converter_2025.json).
- vietnam-provinces 2025.10.1 (GPL-3.0; only read here, not shipped): its codes are those of
  the *draft* decision. Only the pairs (draft code, official code) where they differ are kept,
  matched by province and name: public facts of the two decisions, so that `tslcd check` can
  suggest the official code for a draft one.

When units change again (provinces merge and rename units by resolution), update the
package versions above once they follow the change, run this script, check `git diff
inventory/units`, and run the tests (tests/test_units.py pins known facts).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import sqlite3
import sys
import unicodedata
from datetime import date
from importlib import resources
from pathlib import Path

from inventory.units import FIELDS  # the bundled CSV's columns, as the loader reads them

OUT = Path(__file__).resolve().parent.parent / "inventory" / "units"


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c) and c.isalnum()).lower()


def _kind(ward_type: str) -> str:
    return {"Xã": "xã", "Phường": "phường", "Đặc khu": "đặc khu"}.get(ward_type, ward_type.lower())


def _province_name(full: str) -> str:
    # As people write them (and vietnam-provinces did): "Đắk Lắk" without "Tỉnh", "Thành phố Hà Nội" with its
    # prefix (which tells the city from a namesake); units.same_province matches every spelling.
    return full.removeprefix("Tỉnh ")


def main() -> int:
    data = resources.files("vietnamadminunits") / "data"
    db = sqlite3.connect(str(data / "dataset.db"))
    units = sorted(db.execute("select wardCode, ward, wardType, provinceCode, province, provinceKey, wardKey "
                              "from admin_units").fetchall())
    assert len(units) == 3321 and len({u[3] for u in units}) == 34, "not the 2025 division"
    with (OUT / "units.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FIELDS)
        for code, name, kind, pcode, pname, _, _ in units:
            w.writerow((code, " ".join(name.split()), _kind(kind), pcode, _province_name(pname)))

    new_by_key = {(pk, wk): code for code, _, _, _, _, pk, wk in units}
    conv = json.loads((data / "converter_2025.json").read_text(encoding="utf-8"))
    old_to_new: dict[str, str] = {}  # "province_district_ward" key -> the new unit's code
    for pk, wards in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_wk, olds in wards.items():
            for old in olds:
                if (pk, new_wk) in new_by_key:
                    old_to_new.setdefault(old, new_by_key[(pk, new_wk)])
    for pk, olds in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, news in olds.items():
            default = next((n for n in news if n.get("isDefaultNewWard")), news[0] if news else None)
            if default and (pk, default["newWardKey"]) in new_by_key:
                old_to_new[old] = new_by_key[(pk, default["newWardKey"])]
    legacy = db.execute("select wardCode, ward, district, provinceCode, provinceKey, districtKey, wardKey "
                        "from admin_units_legacy where wardCode <> '' order by wardCode").fetchall()
    with (OUT / "replaced.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("old_code", "old_name", "old_district", "new_code"))
        for code, name, district, _pcode, pk, dk, wk in legacy:
            w.writerow((code, " ".join(name.split()), " ".join((district or "").split()),
                        old_to_new.get(f"{pk}_{dk}_{wk}", "")))

    from vietnam_provinces import Province, Ward

    official = {(u[3], _key(u[1])): u[0] for u in units}
    new_codes = {u[0] for u in units}
    drafts = []
    for p in Province.iter_all():
        for wd in Ward.iter_by_province(p.code):
            pcode, dcode = f"{p.code.value:02d}", f"{wd.code.value:05d}"
            real = official.get((pcode, _key(wd.name)))
            # Only draft codes that are no official code: one that is (another unit's, the two lists permuted
            # some within a province) cannot be told from a right one.
            if real is not None and real != dcode and dcode not in new_codes:
                drafts.append((dcode, real, " ".join(wd.name.split()), pcode))
    drafts.sort()
    with (OUT / "draft_2025.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("draft_code", "official_code", "name", "province_code"))
        w.writerows(drafts)

    sums = {n: hashlib.sha256((OUT / n).read_bytes()).hexdigest() for n in ("units.csv", "replaced.csv",
                                                                            "draft_2025.csv")}
    vau = importlib.metadata.version("vietnamadminunits")
    vp = importlib.metadata.version("vietnam-provinces")
    (OUT / "SOURCE.md").write_text(f"""# Where the bundled lists of units come from

Built by `scripts/units_build.py` on {date.today().isoformat()} (see its docstring to rebuild them).

| file | rows | what | source | sha256 |
|---|---:|---|---|---|
| units.csv | {len(units)} | the units in force since 1 July 2025 (34 provinces), official codes of Quyết định 19/2025/QĐ-TTg | vietnamadminunits {vau} (MIT), dataset.db table admin_units | {sums['units.csv']} |
| replaced.csv | {len(legacy)} | the units of the division before 1 July 2025, and the new unit each became (blank: not known) | vietnamadminunits {vau} (MIT), admin_units_legacy and converter_2025.json | {sums['replaced.csv']} |
| draft_2025.csv | {len(drafts)} | codes of the 2025 draft decision that are no official code, with the official code of the unit | vietnam-provinces {vp} (its codes follow the draft), matched by province and name with units.csv | {sums['draft_2025.csv']} |

`tests/test_units.py` checks these checksums and known facts (34 provinces, 3,321 units;
00082 is Phường Cửa Nam, 24472 Xã Hòa Sơn, 23938 Xã Ia Mơ).
""", encoding="utf-8")
    print(f"units {len(units)}, replaced {len(legacy)} ({sum(1 for k in old_to_new)} mapped), drafts {len(drafts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
