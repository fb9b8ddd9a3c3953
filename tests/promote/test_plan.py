"""The gate, the generated code and the plan, before anything is applied."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.promote.conftest import open_gate, shop_set
from workbench.config import Settings
from workbench.promote import promote
from workbench.promote.codegen import render_entities, render_set_service, render_version
from workbench.promote.store import repo_path, version_objects

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if not path.exists():  # first run writes it; review it and commit it
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; delete the snapshot to accept the new output"


def test_generated_code_is_stable_and_readable() -> None:
    fs = shop_set("events", extra=True)
    _snapshot("shop_v2.py.txt", render_version(fs, 2))
    _snapshot("entities.py.txt", render_entities([f.entity for f in fs.features]))
    _snapshot("shop.py.txt", render_set_service("shop", 2, ["shop_session_v2", "shop_user_v2"]))


def test_generated_code_defines_exactly_the_applied_objects(tmp_path: Path) -> None:
    """Executing the generated modules yields the objects promote applies (same protos)."""
    import sys

    fs = shop_set("events", extra=True)
    (tmp_path / "entities.py").write_text(render_entities([f.entity for f in fs.features]))
    (tmp_path / "shop_v2.py").write_text(render_version(fs, 2))
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        module = importlib.import_module("shop_v2")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shop_v2", None)
        sys.modules.pop("entities", None)
    built = version_objects(fs, 2)
    for view in built.views:
        generated = getattr(module, view.name)
        assert generated == view  # Feast's own equality: schema, entities, ttl, source, tags
    assert module.shop_v2_service == built.service


@pytest.mark.broker
def test_gate_refuses_with_one_clear_line(home: Settings, history: tuple[str, pd.DataFrame]) -> None:
    topic, _ = history
    result = promote(shop_set(topic), progress=False)
    assert result.status == "refused"
    line = result.gate.line()
    assert "\n" not in line and "no evaluation with verdict 'better'" in line and "no skew check" in line
    assert not repo_path().joinpath("shop.py").exists()


@pytest.mark.broker
def test_dry_run_prints_the_plan_and_changes_nothing(home: Settings, history: tuple[str, pd.DataFrame]) -> None:
    topic, frame = history
    fs = shop_set(topic)
    open_gate(fs, frame)
    result = promote(fs, dry_run=True, progress=False)
    assert result.status == "planned" and result.plan is not None
    text = re.sub(r"\b[0-9a-f]{16}\b", "<hash>", result.plan.text)
    text = text.replace(home.feast_project, "<project>").replace(topic, "<topic>")
    _snapshot("plan_first_version.txt", text)
    from workbench.promote.store import open_store

    store = open_store()
    assert store.list_feature_views() == [] and store.list_feature_services() == []
    assert not repo_path().joinpath("shop_v1.py").exists()
