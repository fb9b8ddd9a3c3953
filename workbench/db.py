"""The records database: SQLite under the state dir by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.config import settings

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Engine


def engine(url: str | None = None) -> Engine:
    """The engine for ``url``, or for the settings' URL as they are now (they can be reloaded)."""
    return _engine(url or settings().db_url)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, future=True)


def ready(metadata: MetaData, url: str | None = None) -> Engine:
    """An engine with ``metadata``'s tables created (idempotent)."""
    eng = engine(url)
    metadata.create_all(eng)
    return eng
