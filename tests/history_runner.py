"""`tslcd run` with a scripted sweeper, for the crash test: the real Monitor, Recorder and store.

    python -m tests.history_runner --config F --script S --markers DIR [--hold SECONDS]

The sweeper is scripted, not ICMP: S is a JSON file ``{"down": {"3": ["127.0.0.6"]}}``
(from sweep 3 on, that address does not answer). Each sweep creates DIR/sweep-N as it
starts and then lasts --hold seconds: a slow sweep, the window in which the test kills us.
A scripted sweeper (not ICMP) makes "kill -9 during a sweep" deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inventory.load import load_inventory
from monitor.config import load_config
from monitor.runtime import app, logs
from tests.conftest import FakePing


class FileScriptedSweeper:
    """Answers as the script says, announces each sweep with a marker file, and takes ``hold_s``."""

    def __init__(self, script: Path, markers: Path, hold_s: float) -> None:
        raw = json.loads(script.read_text(encoding="utf-8"))
        self.down = sorted((int(k), set(v)) for k, v in raw.get("down", {}).items())
        self.markers = markers
        self.hold_s = hold_s
        self.n = 0

    async def sweep(self, addresses: Sequence[str], *, count: int, timeout_s: float, pps: int,
                    interval_s: float) -> dict[str, FakePing]:
        self.n += 1
        (self.markers / f"sweep-{self.n}").write_text(repr(time.time()), encoding="utf-8")
        down: set[str] = set()
        for first, addrs in self.down:
            if self.n >= first:
                down = addrs
        await asyncio.sleep(self.hold_s)  # the slow sweep itself (the scenario), not a synchronisation
        return {a: FakePing(False, 1.0, None, None, None, None) if a in down else FakePing(True) for a in addresses}

    def close(self) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="history_runner")
    p.add_argument("--config", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--markers", required=True)
    p.add_argument("--hold", type=float, default=0.3)
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    logs.setup("info")
    inventory = load_inventory(cfg.inventory_path, default_province=cfg.province)
    sweeper = FileScriptedSweeper(Path(args.script), Path(args.markers), args.hold)
    # As `tslcd run` does (monitor.runtime.app.build): the service starts, feeds and stops the recorder.
    monitor = app.build(cfg, inventory, inventory_path=cfg.inventory_path, engine=sweeper)  # type: ignore[arg-type]

    async def go() -> None:
        await monitor.run(ready=lambda url: print(f"ready {url}", flush=True))  # closes the store at the end

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
