"""What every `tslcd` command shares: one handler of the error tree, and how problems are printed."""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TextIO, TypeVar

from monitor.config import Config
from monitor.errors import ConfigError, InventoryError, TslcdError

F = TypeVar("F", bound=Callable[..., int])

DEFAULT_CONFIG = "config.yaml"


def print_error(e: TslcdError, *, prefix: str = "tslcd", file: TextIO | None = None) -> None:
    """``prefix: message``; a config or inventory error lists every problem, one per line."""
    out = file or sys.stderr
    if isinstance(e, ConfigError | InventoryError):
        what = "configuration" if isinstance(e, ConfigError) else "inventory"
        print(f"{prefix}: invalid {what} ({len(e.problems)} problem(s)):", file=out)
        for p in e.problems:
            print(f"  {p}", file=out)
    else:
        print(f"{prefix}: {e}", file=out)


def handles_errors(status: int, prefix: str = "tslcd") -> Callable[[F], F]:
    """Turn any TslcdError out of a command into its message on standard error and exit status ``status``
    (or the error's own ``exit_status`` where it has one). Anything else is a bug and keeps its traceback."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                return fn(*args, **kwargs)
            except TslcdError as e:
                # A command that takes an ``err`` stream (tests pass one) says it there.
                err = signature.bind_partial(*args, **kwargs).arguments.get("err")
                print_error(e, prefix=prefix, file=err)
                return e.exit_status or status

        return run  # type: ignore[return-value]

    return wrap


def refuse_overwrite(path: Path, force: bool) -> None:
    """A command that writes ``path`` keeps an existing file unless --force (TslcdError: exit 1, said as such)."""
    if path.exists() and not force:
        raise TslcdError(f"{path} exists; pass --force to overwrite it")


def iso_date(text: str) -> date:
    """An argparse type: a date written YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def load_inventory_for(cfg: Config) -> Any:
    """The inventory the config names, loaded as the monitor loads it (raises InventoryError; with
    ``strict_inventory`` also for its warnings)."""
    from monitor.runtime import loader

    try:  # a large file in a process of its own: its parse leaves nothing behind in the monitor
        inv = loader.load(cfg.inventory_path, snmp_profiles=set(cfg.snmp_profiles),
                          default_province=cfg.default_province, province=cfg.watched)
    except OSError as e:
        raise TslcdError(f"cannot read the inventory {cfg.inventory_path}: {e.strerror}") from None
    if cfg.strict_inventory and inv.warnings:  # the operator asked that warnings stop, as `check --strict`
        raise InventoryError(inv.warnings)
    return inv


__all__ = ["DEFAULT_CONFIG", "handles_errors", "iso_date", "load_inventory_for", "refuse_overwrite", "print_error"]
