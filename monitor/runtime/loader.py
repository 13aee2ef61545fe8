"""A large inventory is loaded in a short-lived process of its own, and only the result comes back.

Parsing and validating 20,000 nodes builds about 120 MB of short-lived Python objects (the YAML
node tree with its marks, the cells, the problems) around the 28 MB the Inventory keeps: the freed
memory stays in the process, fragmented (a monitor's RSS grew by 130 MB at each start), and the
work holds the GIL for seconds. In a child process the peak is that process's, gone when it
exits; the monitor unpickles the Inventory (a few MB) into compact memory. Small files (most
provinces) are loaded in place: a process start costs more than they do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle  # noqa: S403  (between this process and its own child)
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from inventory.load import load_inventory
from inventory.model import Inventory

log = logging.getLogger("tslcd.inventory")

APART_BYTES = 512 * 1024  # about 4,000 nodes of YAML
_TIMEOUT_S = 600.0


def _apart(path: str | Path, threshold: int) -> bool:
    try:
        return Path(path).stat().st_size >= threshold
    except OSError:
        return False  # load_inventory says what is wrong with the path


class _LoaderDied(RuntimeError):
    """The loader process ended without an answer."""


def _apart_now(path: str | Path, kwargs: dict[str, Any]) -> Inventory:
    """``load_inventory`` in a child process (``python -m monitor.runtime.loader``: a plain child, not
    multiprocessing's spawn, which would import the main module's imports into it and leave multiprocessing's
    resource tracker process running for the monitor's life); the call and its answer go through its stdin and
    stdout, pickled; its log lines go where the monitor's do."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # where the parent imports
    try:
        r = subprocess.run([sys.executable, "-m", "monitor.runtime.loader"], input=pickle.dumps((str(path), kwargs)),
                           stdout=subprocess.PIPE, env=env, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _LoaderDied(f"{type(e).__name__}") from e
    if r.returncode != 0 or not r.stdout:
        raise _LoaderDied(f"exit status {r.returncode}")
    ok, value = pickle.loads(r.stdout)  # noqa: S301  (our own child's answer)
    if ok:
        return cast(Inventory, value)
    raise value


def load(path: str | Path, *, threshold: int = APART_BYTES, **kwargs: Any) -> Inventory:
    """``load_inventory(path, **kwargs)``, in a process of its own when the file is ``threshold`` bytes or more;
    the same result and the same exceptions (InventoryError with every problem, OSError)."""
    if not _apart(path, threshold):
        return load_inventory(path, **kwargs)
    try:
        return _apart_now(path, kwargs)
    except _LoaderDied:
        return _in_place(path, kwargs)


async def load_async(path: str | Path, *, threshold: int = APART_BYTES, **kwargs: Any) -> Inventory:
    """``load`` without blocking the event loop (a small file in a thread, a large one in a process)."""
    if not _apart(path, threshold):
        return await asyncio.to_thread(load_inventory, path, **kwargs)
    return await asyncio.to_thread(load, path, threshold=threshold, **kwargs)


def _in_place(path: str | Path, kwargs: dict[str, Any]) -> Inventory:
    log.warning("the inventory loader process died; loading in the monitor's own process", extra={"path": str(path)})
    fn: Callable[..., Inventory] = load_inventory
    return fn(path, **kwargs)


def _child() -> None:
    path, kwargs = pickle.load(sys.stdin.buffer)  # noqa: S301  (from the monitor that started us)
    try:
        out: tuple[bool, Any] = (True, load_inventory(path, **kwargs))
    except Exception as e:  # noqa: BLE001  (InventoryError, OSError...: raised again in the monitor)
        out = (False, e)
    sys.stdout.buffer.write(pickle.dumps(out))


if __name__ == "__main__":  # the loader process: python -m monitor.runtime.loader < (path, kwargs) > answer
    _child()
