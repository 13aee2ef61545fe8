"""History store: rollups, state changes, inventory versions and the hash chain (DESIGN.md, issue 5).

``open_store(cfg)`` gives the configured backend; everything else talks to it through
``HistoryStore``. Pure rollup arithmetic lives in monitor.history.
"""

from __future__ import annotations

from typing import Any

from monitor.store.model import (
    ChangeRow,
    DayHistory,
    DayRow,
    HistoryStore,
    InventoryNode,
    InventoryVersionInfo,
    RecordedInventory,
    RunInfo,
    SampleRow,
    Seal,
    StoreError,
    SweepBatch,
    VerifyResult,
    commune_days,
)
from monitor.store.settings import StoreSettings, describe_url, settings_of, store_url
from monitor.store.sql import SqlStore

__all__ = [
    "ChangeRow",
    "DayHistory",
    "DayRow",
    "HistoryStore",
    "InventoryNode",
    "InventoryVersionInfo",
    "RecordedInventory",
    "RunInfo",
    "SampleRow",
    "Seal",
    "SqlStore",
    "StoreError",
    "StoreSettings",
    "SweepBatch",
    "VerifyResult",
    "commune_days",
    "describe_url",
    "open_store",
    "settings_of",
    "store_url",
]


def open_store(cfg: Any, *, create: bool = True) -> SqlStore:
    """Open (and migrate) the history store the config names; StoreError says which and why if it cannot."""
    return SqlStore(store_url(cfg), create=create)
