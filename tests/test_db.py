from pathlib import Path

import pytest

from workbench import config, db


def test_engine_follows_reloaded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "a"))
    config.reload()
    first = db.engine()
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "b"))
    config.reload()
    second = db.engine()
    monkeypatch.undo()
    config.reload()
    assert str(first.url).endswith("a/workbench.db") and str(second.url).endswith("b/workbench.db")
