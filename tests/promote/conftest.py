"""An isolated production repo per test: its own home, Feast project and events topic."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.features.test_live import make_events, produce
from workbench.config import Settings, reload
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import SESSION, USER, Feature, FeatureSet, col


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: Settings) -> Iterator[Settings]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_FEAST_PROJECT", f"t{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("WORKBENCH_JOB_COMMIT_INTERVAL_S", "0.2")
    yield reload()
    monkeypatch.undo()
    reload()


def shop_set(topic: str, name: str = "shop", extra: bool = False) -> FeatureSet:
    features = [
        Feature("session_views", SESSION, win.Session(gap_ms=60_000), agg.Count(),
                where=col("event_type") == "view", source=topic),
        Feature("user_price_5m", USER, win.Tumbling(size_ms=300_000, grace_ms=60_000), agg.Mean("price"),
                source=topic),
    ]  # fmt: skip
    if extra:
        features.append(Feature("session_items", SESSION, win.Session(gap_ms=60_000), agg.LastN("item_id", n=3),
                                source=topic))
    return FeatureSet(name, features)


def open_gate(fs: FeatureSet, history: pd.DataFrame) -> None:
    """A real skew check over the history, and a passing evaluation record for the set's hashes."""
    from workbench.evaluation.records import EvaluationRecord, save

    report = fs.check_skew(history)
    assert report.mismatch_count == 0, report
    save(EvaluationRecord(
        model_spec={"class": "test"}, baseline_hashes=[], candidate_hashes=sorted(f.hash for f in fs.features),
        data_range={}, label_delay_ms=0, metrics={}, verdict="better", feature_set=fs.name,
        lift={"relative": 0.1, "relative_low": 0.02, "relative_high": 0.2},
    ))  # fmt: skip


@pytest.fixture
def history(home: Settings, new_topic: Callable[..., str]) -> tuple[str, pd.DataFrame]:
    topic = new_topic("promote")
    return topic, produce(topic, make_events(400, seed=5), home)


def online(fs_name: str, rows: list[dict[str, Any]], env: str = "local") -> dict[str, list[Any]]:
    """What a plain Feast reader gets from the FeatureService ``fs_name``."""
    from feast import FeatureStore

    from workbench.promote.store import repo_path

    store = FeatureStore(repo_path=str(repo_path(env)))
    return dict(store.get_online_features(features=store.get_feature_service(fs_name), entity_rows=rows).to_dict())
