"""The marimo apps: `marimo check` on every one, the review app's panels, and `workbench review` errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.apps.fixtures import LIFT, shop_set
from workbench.apps import app_paths, panels
from workbench.streams.simulator import ShopSimulator

MARIMO = Path(sys.executable).with_name("marimo")


@pytest.mark.parametrize("app", app_paths(), ids=lambda p: p.name)
def test_marimo_check_passes(app: Path) -> None:
    done = subprocess.run([str(MARIMO), "check", "--strict", str(app)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_app_is_found() -> None:
    assert [p.name for p in app_paths()] == ["review.py"]


def _events() -> object:
    ev = ShopSimulator(seed=4, n_users=2000, n_items=30, n_categories=4).frame(
        start_ms=1_750_000_000_000, duration_s=3600)
    return ev.assign(partition=0, offset=np.arange(len(ev)))


def test_definitions_and_live_values_per_feature() -> None:
    fs = shop_set("shop", "events")
    defs = panels.definition_frame(fs)
    assert defs["feature"].tolist() == ["session_views", "item_price"]
    assert defs["hash"].tolist() == [f.hash for f in fs.features]
    ev = _events()
    tables = panels.latest_by_feature(fs, ev, top=5)  # type: ignore[arg-type]
    views = tables["session_views"]
    assert len(views) == 5 and list(views.columns) == ["key", "session_views", "records"]
    assert views["records"].is_monotonic_decreasing
    expected = fs.features[0].backfill(ev)
    key = views["key"].iloc[0]
    last = expected[(expected["key"] == key) & ~expected["late"]]["value"].iloc[-1]
    assert views["session_views"].iloc[0] == last  # the backfill path's newest value for that key
    assert panels.latest_by_feature(fs, ev.iloc[:0]) == {}  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=200))
def test_psi_of_a_sample_against_itself_is_zero(values: list[float]) -> None:
    assert panels.psi(values, values) == pytest.approx(0.0, abs=1e-9)


def test_distribution_figure_marks_drift() -> None:
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(0, 1, 2000).tolist(), "b": rng.normal(0, 1, 2000).tolist()}
    recent = {"a": rng.normal(0, 1, 500).tolist(), "b": rng.normal(2, 1, 500).tolist()}
    fig, scores = panels.distribution_figure(train, recent)
    assert scores["a"] < panels.DRIFT_PSI < scores["b"]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].endswith("stable") and titles[1].endswith("DRIFT")
    marks = [t for t in fig.data if t.name and t.name.startswith("drift")]
    assert len(marks[1].x) > 0  # the shifted feature has marked bins


def test_lift_figure_shows_the_band() -> None:
    from workbench.evaluation.records import EvaluationRecord

    rec = EvaluationRecord(model_spec={}, baseline_hashes=["a"], candidate_hashes=["a", "b"], data_range={},
                           label_delay_ms=0, metrics={}, lift=LIFT, verdict="better", feature_set="s")
    fig = panels.lift_figure([rec], ["b", "a"])
    trace = fig.data[-1]
    assert list(trace.y) == [LIFT["relative"]]
    assert trace.error_y.array[0] == pytest.approx(LIFT["relative_high"] - LIFT["relative"])
    assert trace.error_y.arrayminus[0] == pytest.approx(LIFT["relative"] - LIFT["relative_low"])
    assert "better" in fig.layout.title.text and "+3.80%" in fig.layout.title.text
    assert "no evaluation yet" in panels.lift_figure([], ["a"]).layout.title.text


def test_review_of_an_unknown_set_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench import config
    from workbench.cli import app

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    config.reload()
    try:
        result = CliRunner().invoke(app, ["review", "no_such_set"])
    finally:
        monkeypatch.undo()
        config.reload()
    assert result.exit_code == 1
    assert "no feature set 'no_such_set' in the registry" in str(result.exception)
