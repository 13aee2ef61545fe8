"""A large inventory is loaded in a short-lived process of its own, and only the result comes back.

Parsing and validating 20,000 nodes builds about 120 MB of short-lived Python objects (the YAML
node tree with its marks, the cells, the problems) around the 28 MB the Inventory keeps: the freed
memory stays in the process, fragmented (a monitor's RSS grew by 130 MB at each start), and the
work holds the GIL for seconds. In a spawned process the peak is that process's, gone when it
exits; the monitor unpickles the Inventory (a few MB) into compact memory. Small files (most
provinces) are loaded in place: a process start costs more than they do.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

from inventory.load import load_inventory
from inventory.model import Inventory

log = logging.getLogger("tslcd.inventory")

APART_BYTES = 512 * 1024  # about 4,000 nodes of YAML


def _apart(path: str | Path, threshold: int) -> bool:
    try:
        return Path(path).stat().st_size >= threshold
    except OSError:
        return False  # load_inventory says what is wrong with the path


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def load(path: str | Path, *, threshold: int = APART_BYTES, **kwargs: Any) -> Inventory:
    """``load_inventory(path, **kwargs)``, in a process of its own when the file is ``threshold`` bytes or more;
    the same result and the same exceptions (InventoryError with every problem, OSError)."""
    if not _apart(path, threshold):
        return load_inventory(path, **kwargs)
    try:
        with _pool() as pool:
            return pool.submit(load_inventory, path, **kwargs).result()
    except BrokenProcessPool:
        return _in_place(path, kwargs)


async def load_async(path: str | Path, *, threshold: int = APART_BYTES, **kwargs: Any) -> Inventory:
    """``load`` without blocking the event loop (a small file in a thread, a large one in a process)."""
    if not _apart(path, threshold):
        return await asyncio.to_thread(load_inventory, path, **kwargs)
    loop = asyncio.get_running_loop()
    pool = _pool()
    try:
        return await loop.run_in_executor(pool, partial(load_inventory, path, **kwargs))
    except BrokenProcessPool:
        return await asyncio.to_thread(_in_place, path, kwargs)
    finally:
        await asyncio.to_thread(pool.shutdown, wait=True)


def _in_place(path: str | Path, kwargs: dict[str, Any]) -> Inventory:
    log.warning("the inventory loader process died; loading in the monitor's own process", extra={"path": str(path)})
    fn: Callable[..., Inventory] = load_inventory
    return fn(path, **kwargs)
