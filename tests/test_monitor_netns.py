"""The monitor on real sockets: ICMP to loopback and to namespace test hosts whose links the test cuts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.model import Inventory, Node
from monitor.core.snapshot import Snapshot
from monitor.lab.demo import inventory_yaml
from monitor.probes.icmp import IcmpEngine
from monitor.runtime.service import Monitor
from tests.conftest import write_config

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and raw ICMP need root (CI runs as root)")]

DOWN_AFTER = 2
UP_AFTER = 2


@pytest.fixture
def lab() -> Iterator[object]:
    from monitor.lab.netns import Lab

    with Lab("tslcdt") as lab:
        yield lab


def states(snap: Snapshot) -> dict[str, tuple[str, str | None]]:
    return {ns.node.code: (ns.state, ns.cause) for ns in snap.nodes}


async def test_link_down_then_up_and_children_behind_a_failed_parent(tmp_path: Path, lab: object) -> None:
    from monitor.lab.netns import Lab

    assert isinstance(lab, Lab)
    agg4, agg6 = lab.allocate()
    c1, c1_6 = lab.allocate()
    c2, _ = lab.allocate()
    d1, _ = lab.allocate()
    router = lab.add_router("agg", agg4, agg6)
    lab.add_host("c1", c1, c1_6, behind=router)
    lab.add_host("c2", c2, behind=router)
    direct = lab.add_host("d1", d1)
    p = "Đắk Lắk"
    inv = Inventory.of([
        Node("CORE", "Lõi", "core", p, address="127.0.0.1"),
        Node("AGG", "Tập trung", "aggregation", p, area="A", address=agg4, address6=agg6, parent="CORE"),
        Node("24133", "Phường Buôn Ma Thuột", "commune", p, area="A", address=c1, address6=c1_6, parent="AGG"),
        Node("24121", "Phường Tân An", "commune", p, area="A", address=c2, parent="AGG"),
        Node("22015", "Phường Tuy Hòa", "commune", p, area="B", address=d1, parent="CORE"),
        Node("22045", "Phường Bình Kiến", "commune", p, area="B", address="127.0.0.9", parent="CORE"),
    ])
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    cfg = write_config(tmp_path, path, f"states:\n  down_after: {DOWN_AFTER}\n  up_after: {UP_AFTER}\n")
    with IcmpEngine() as engine:
        mon = Monitor(cfg, inv, engine, inventory_path=path)
        snap = await mon.sweep_once()
        assert {c: s for c, (s, _) in states(snap).items()} == {c: "up" for c in states(snap)}
        v6 = {ns.node.code: ns.ipv6_ok for ns in snap.nodes}
        assert v6["AGG"] is True and v6["24133"] is True and v6["24121"] is None
        assert snap.province_rate().rate == 1.0

        lab.set_link(direct, False)
        snap = await mon.sweep_once()
        assert states(snap)["22015"] == ("up", None)  # one failed sweep is not enough (hysteresis)
        snap = await mon.sweep_once()
        assert states(snap)["22015"] == ("down", None)
        assert snap.province_rate().connected == 3

        lab.set_link(router, False)
        for _ in range(DOWN_AFTER):
            snap = await mon.sweep_once()
        s = states(snap)
        assert s["AGG"] == ("down", None)
        assert s["24133"] == ("unreachable", "AGG") and s["24121"] == ("unreachable", "AGG")
        assert s["22045"] == ("up", None) and s["CORE"] == ("up", None)
        assert snap.province_rate().connected == 1
        assert {ns.node.code: ns.loss for ns in snap.nodes}["24133"] == 1.0

        lab.set_link(router, True)
        lab.set_link(direct, True)
        snap = await mon.sweep_once()
        assert states(snap)["22015"] == ("down", None)  # up_after good sweeps are needed
        # A link coming up takes the kernel a moment (carrier, neighbours): sweep until all are
        # up again, bounded in count.
        sweeps = 1
        while sweeps < 12 and any(s != "up" for s, _ in states(snap).values()):
            snap = await mon.sweep_once()
            sweeps += 1
        assert {c: s for c, (s, _) in states(snap).items()} == {c: "up" for c in states(snap)}
        assert sweeps >= UP_AFTER
        changes = {ns.node.code: ns.changes for ns in snap.nodes}
        assert changes["22015"] == 2 and changes["24133"] == 2 and changes["22045"] == 0
