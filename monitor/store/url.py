"""Where the history store lives for a given config, and its URL as it may be shown (password masked)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Config


def store_url(cfg: Config) -> str:
    """The SQLAlchemy URL of the config's store; a relative path is relative to the config file."""
    s = cfg.store
    if s.url is not None:
        return s.url.get_secret_value()
    path = s.path if s.path.is_absolute() else Path(cfg.source).parent / s.path
    return f"sqlite:///{path.resolve()}"


def describe_url(url: str) -> str:
    """The URL with any password masked, for messages and reports (secrets never appear in them)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
