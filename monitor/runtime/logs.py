"""Structured (JSON-lines) logging with fixed keys; secrets never reach it (they are SecretStr)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else passed in `extra=` is a structured field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class Throttle(logging.Filter):
    """At most ``burst`` records a minute of one kind, for the kinds that can repeat without end: tracebacks
    (an exception logged every sweep while the disk is full) and records of the libraries under us (asyncio's
    "socket.accept() out of system resource" in a tight loop). A kind is logger, level, message template and
    exception type. The next record of a kind let through says how many were left out (``suppressed``).
    tslcd's own structured records without a traceback (state changes, inventory warnings) always pass."""

    def __init__(self, burst: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._kinds: dict[tuple[object, ...], list[float]] = {}  # kind -> [window start, count, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info and record.name.startswith("tslcd"):
            return True
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        kind = (record.name, record.levelno, str(record.msg), exc)
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is None or now - seen[0] >= self.window_s:
            if len(self._kinds) > 1000:  # bounded: forget the kinds of past windows
                self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.window_s}
            suppressed = int(seen[2]) if seen else 0
            self._kinds[kind] = [now, 1, 0]
            if suppressed:
                record.suppressed = suppressed
            return True
        seen[1] += 1
        if seen[1] <= self.burst:
            return True
        seen[2] += 1
        return False


def setup(level: str = "info") -> None:
    """Log JSON lines to stderr at ``level``; idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tslcd", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Throttle())
    handler._tslcd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; keep its warnings (skipped runs) only.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic says "Context impl SQLiteImpl" and the like at every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
