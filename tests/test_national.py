"""One deployment watching several provinces (issue 15, part 4): the audit and the email give the national figure
first, then each province's, and the provinces add up to the nation; a province's own deployment is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from inventory.model import Inventory, Node
from monitor.config import NATIONAL
from monitor.core.history import day_span
from tests.conftest import ScriptedSweeper, small_inventory

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D1 = date(2026, 11, 1)
T0 = day_span(D1, HCM)[0]


@pytest.fixture
async def national(tmp_path: Path) -> AsyncIterator[Any]:
    """Đắk Lắk's small province (5 communes, 4 with a circuit, all up) and Lai Châu (2 communes, one down all
    day), watched by one monitor for a day and a bit."""
    from monitor.config import load_config
    from monitor.lab.demo import inventory_yaml
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Monitor
    from monitor.store import SqlStore

    nodes = [*small_inventory().nodes,
             Node("03541", "Xã Mường Tè", "commune", "Lai Châu", address="127.0.9.1"),
             Node("03542", "Xã Bum Nưa", "commune", "Lai Châu", address="127.0.9.2")]
    inv = Inventory.of(nodes)
    (tmp_path / "inv.yaml").write_text(inventory_yaml(nodes), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "province: [Đắk Lắk, Lai Châu]\ninventory: inv.yaml\nicmp:\n  interval_s: 600\n"
        "states:\n  down_after: 1\n  up_after: 1\nstore:\n  path: h.sqlite\n", encoding="utf-8")
    cfg = load_config(tmp_path / "config.yaml")
    clock = [T0]
    sweeper = ScriptedSweeper()
    sweeper.down = {"127.0.9.2"}
    rec = Recorder(SqlStore(f"sqlite:///{tmp_path}/h.sqlite"), cfg, clock=lambda: clock[0])
    mon = Monitor(cfg, inv, sweeper, clock=lambda: clock[0], recorder=rec)  # type: ignore[arg-type]
    await rec.on_start(inv)
    for k in range(int(1.2 * 86_400 / 600)):
        clock[0] = T0 + 600 * (k + 1)
        await mon.sweep_once()
    try:
        yield mon
    finally:
        await rec.on_stop()


def test_the_audit_gives_the_nation_first_and_the_provinces_add_up(national: Any) -> None:
    from exporters.audit import build_report

    report = build_report(national.recorder.store, national.cfg, D1, D1, now=T0 + 2 * 86_400)
    day = report.daily[0].rate
    assert (day.province, day.communes, day.connected) == (NATIONAL, 7, 5)  # 4 of Đắk Lắk, 1 of Lai Châu
    summary = {(p.province, p.area): p for p in report.summary}
    assert report.summary[0].province == NATIONAL
    assert summary[(NATIONAL, "")].connected_rate == pytest.approx(5 / 7)
    assert summary[("Đắk Lắk", "")].connected_rate == pytest.approx(4 / 5)
    assert summary[("Lai Châu", "")].connected_rate == pytest.approx(1 / 2)


def test_the_email_gives_the_nation_then_one_row_per_province(national: Any) -> None:
    from exporters.email.report import report_from_store

    r = report_from_store(national.recorder.store, national.cfg, D1, now=T0 + 2 * 86_400)
    assert r.province == NATIONAL
    assert (r.connected.count, r.connected.total) == (5, 7)
    rows = {a.area: a for a in r.areas}
    assert set(rows) == {"Đắk Lắk", "Lai Châu"}
    assert sum(a.connected for a in rows.values()) == r.connected.count
    assert sum(a.communes for a in rows.values()) == r.connected.total


def test_the_page_and_metrics_name_the_nation_first(national: Any) -> None:
    from exporters.metrics import render_snapshot
    from exporters.status import render_status_page, status_view

    view = status_view(national.snapshot)
    assert view["national"] and (view["communes"], view["connected"]) == (7, 5)
    assert [p["province"] for p in view["provinces"]] == ["Lai Châu", "Đắk Lắk"]
    html = render_status_page(national.snapshot)
    assert "Mạng TSLCD Toàn quốc" in html and 'id="connection-rate">71.4%' in html
    text = render_snapshot(national.snapshot).text.decode()
    assert 'tslcd_connection_rate_ratio{area="",province="Toàn quốc"} 0.7142857142857143' in text


def test_the_audits_html_links_each_commune_to_its_page_when_the_status_page_has_an_address(national: Any) -> None:
    """Issue 15, part 1: every place a commune is named links to its page; the audit's HTML does so when
    web.public_url says where the status page is, and names them plainly otherwise."""
    from exporters.audit import build_report, render_html

    cfg = national.cfg
    plain = render_html(build_report(national.recorder.store, cfg, D1, D1, now=T0 + 2 * 86_400))
    assert "/node/" not in plain
    web = cfg.web.model_copy(update={"public_url": "https://tslcd.example.gov.vn"})
    linked = render_html(build_report(national.recorder.store, cfg.model_copy(update={"web": web}), D1, D1,
                                      now=T0 + 2 * 86_400))
    assert '<a href="https://tslcd.example.gov.vn/node/03542">03542</a>' in linked  # in the communes and outages
    assert linked.count('href="https://tslcd.example.gov.vn/node/03542"') == 2


def test_a_history_moved_from_sqlite_to_postgresql_keeps_every_figure_and_the_chain(national: Any,
                                                                                     postgres: str) -> None:
    """Issue 14, part 1: `tslcd store migrate` moves the whole history into a real PostgreSQL; the chain verifies
    the same, the audit of the period gives the same figures, and the monitor can go on writing there."""
    import subprocess
    import sys

    from exporters.audit import build_report
    from monitor.lab.postgres import database
    from monitor.store import SqlStore, SweepBatch

    target = database(postgres, "moved_history")
    config = national.cfg.inventory_path.parent / "config.yaml"
    r = subprocess.run([sys.executable, "-m", "monitor.cli", "store", "migrate", "--config", str(config),
                        "--to", target], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).parent.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the chain verifies the same" in r.stdout and "daily:" in r.stdout
    old, new = national.recorder.store, SqlStore(target, create=False)
    try:
        assert new.seals() == old.seals() and new.verify().ok
        now = T0 + 2 * 86_400
        a, b = (build_report(s, national.cfg, D1, D1 + timedelta(days=1), now=now) for s in (old, new))
        assert (a.summary, a.daily, a.communes, a.outages) == (b.summary, b.daily, b.communes, b.outages)
        run = new.start_run(now, max_gap_s=900)  # the sequences go on after the moved ids
        assert run > max(x.id for x in old.runs())
        new.write_sweep(SweepBatch(run, now + 60))
    finally:
        new.close()
    # A store that already holds a history is never written into.
    again = subprocess.run([sys.executable, "-m", "monitor.cli", "store", "migrate", "--config", str(config),
                            "--to", target], capture_output=True, text=True, timeout=300,
                           cwd=Path(__file__).parent.parent)
    assert again.returncode == 1 and "already holds a history" in again.stderr, again.stdout + again.stderr
