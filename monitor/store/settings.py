"""The ``store:`` section of config.yaml, and where the store lives for a given config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StoreSettings(BaseModel):
    """History store: an SQLite file by default, or any SQLAlchemy URL (PostgreSQL for scale-out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(Path("var/tslcd.sqlite"), description="SQLite file, relative to the config file")
    url: SecretStr | None = Field(None, description="SQLAlchemy URL instead of path, e.g. "
                                  "postgresql+psycopg://tslcd:${TSLCD_DB_PASSWORD}@db/tslcd")
    events_retention_days: int = Field(400, ge=2, le=36_500,
                                       description="raw state changes are kept this long (rollups, outages and "
                                                   "seals forever)")
    samples_flush_sweeps: int = Field(10, ge=1, le=1000,
                                      description="RTT/loss/traffic sums are written every N sweeps (state "
                                                  "changes and heartbeats every sweep)")


def settings_of(cfg: Any) -> StoreSettings:
    """The config's ``store`` section, or the defaults while Config has none."""
    found = getattr(cfg, "store", None)
    return found if isinstance(found, StoreSettings) else StoreSettings()


def store_url(cfg: Any) -> str:
    """The SQLAlchemy URL of the config's store; a relative path is relative to the config file."""
    s = settings_of(cfg)
    if s.url is not None:
        return s.url.get_secret_value()
    path = s.path if s.path.is_absolute() else Path(cfg.source).parent / s.path
    return f"sqlite:///{path.resolve()}"


def describe_url(url: str) -> str:
    """The URL with any password masked, for messages and reports (secrets never appear in them)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
