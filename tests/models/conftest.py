"""A private WORKBENCH_HOME per test: its own MLflow registry (SQLite), artifacts and definitions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench import config
from workbench.config import Settings

RANGE = {"topic": "events", "partitions": {"0": [0, 999], "1": [10, 870]},
         "event_time_ms": [1_795_800_000_000, 1_795_886_400_000]}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    try:
        yield config.reload()
    finally:
        monkeypatch.undo()
        config.reload()
