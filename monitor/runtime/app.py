"""The one place that wires a running monitor: ICMP engine, history recorder, daily mailer, service.

``tslcd run`` and ``tslcd demo`` both call ``build``; the service never opens a store or
a socket of its own choosing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporters.metrics import SelfMetrics
from inventory.model import Inventory
from monitor.config import Config
from monitor.probes.icmp import IcmpEngine
from monitor.runtime.mailer import Mailer
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Monitor, Sweeper
from monitor.store import open_store


def build(cfg: Config, inventory: Inventory, *, inventory_path: Path | None = None,
          engine: Sweeper | None = None, reload_check: Callable[[Inventory], list[str]] | None = None) -> Monitor:
    """A monitor ready to ``run``: its ICMP engine, its history store (opened and migrated now: call
    this before the event loop) and, when ``email`` is configured and enabled, the daily mailer.

    Raises IcmpPermissionError when no ICMP socket may be opened and StoreError when the
    store cannot be used; nothing is left open then.
    """
    sweeper: Sweeper = engine or IcmpEngine()  # type: ignore[assignment]  # PingResult fits PingStats
    try:
        store = open_store(cfg)
    except BaseException:
        sweeper.close()
        raise
    recorder = Recorder(store, cfg)
    self_metrics = SelfMetrics()
    self_metrics.registry.register(recorder.collector())
    mailer = None
    if cfg.email is not None and cfg.email.enabled:
        mailer = Mailer(cfg, cfg.email, store, registry=self_metrics.registry)
    return Monitor(cfg, inventory, sweeper, inventory_path=inventory_path, self_metrics=self_metrics,
                   recorder=recorder, mailer=mailer, reload_check=reload_check)
