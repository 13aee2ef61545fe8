"""History store: rollups, state changes, inventory versions and the hash chain (docs/design.md, issue 5).

``open_store(cfg)`` gives the configured backend; everything else talks to it through
``HistoryStore``. Pure rollup arithmetic lives in monitor.core.history. The only SQL of the product is
here, the email outbox included (outbox.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.errors import StoreError
from monitor.store.model import (
    CauseRow,
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
    SweepBatch,
    VerifyResult,
    commune_days,
)
from monitor.store.sql import SqlStore
from monitor.store.url import describe_url, store_url

if TYPE_CHECKING:
    from monitor.config import Config

__all__ = [
    "CauseRow",
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
    "SweepBatch",
    "VerifyResult",
    "commune_days",
    "describe_url",
    "open_store",
    "store_url",
]


def open_store(cfg: Config, *, create: bool = True) -> SqlStore:
    """Open (and migrate) the history store the config names; StoreError says which and why if it cannot."""
    return SqlStore(store_url(cfg), create=create, tz=cfg.tz)
