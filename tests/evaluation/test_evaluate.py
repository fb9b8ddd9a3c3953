"""wb.evaluate on the simulator: known signal wins, noise does not, peeking is caught, records persist."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from river import linear_model, preprocessing

from workbench import config
from workbench.evaluation import records
from workbench.evaluation.evaluate import FeatureFrame, evaluate
from workbench.evaluation.labels import purchase_within
from workbench.evaluation.progressive import LeakageError
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import SESSION, Entity, Feature, col
from workbench.streams.simulator import ShopSimulator

START_MS = 1_750_000_000_000


@pytest.fixture(scope="module")
def shop() -> tuple[ShopSimulator, pd.DataFrame]:
    sim = ShopSimulator(seed=11, n_users=1_500, n_items=400, n_categories=8)
    ev = sim.frame(start_ms=START_MS, duration_s=2 * 86_400)
    return sim, ev.assign(partition=0, offset=np.arange(len(ev)))


@pytest.fixture
def isolated_records(tmp_path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    config.reload()
    yield
    monkeypatch.undo()
    config.reload()


def _model() -> preprocessing.StandardScaler:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def _per_view(ev: pd.DataFrame, name: str, values: np.ndarray) -> FeatureFrame:
    views = ev[ev["event_type"] == "view"]
    frame = pd.DataFrame({"event_id": views["event_id"].to_numpy(), "value": values,
                          "at": views["event_time_ms"].to_numpy() - 1})
    return FeatureFrame(name, frame, key="event_id", value="value", time="at", source_time="at")


BASELINE = [Feature("session_views", SESSION, win.Sliding(size_ms=1_800_000), agg.Count(),
                    where=col("event_type") == "view")]


def test_ground_truth_signal_is_better_and_noise_is_not(shop, isolated_records) -> None:
    sim, ev = shop
    views = ev[ev["event_type"] == "view"]
    users = {u: i for i, u in enumerate(sim.user_ids)}
    items = {it: i for i, it in enumerate(sim.item_ids)}
    truth = sim.affinity(views["user_id"].map(users).to_numpy(), views["item_id"].map(items).to_numpy(),
                         views["event_time_ms"].to_numpy())
    noise = np.random.default_rng(0).standard_normal(len(views))
    label = purchase_within(minutes=30)

    better = evaluate(_model(), label=label, baseline=BASELINE,
                      candidate=[*BASELINE, _per_view(ev, "true_affinity", np.asarray(truth))],
                      source=ev, feature_set="truth", chart=False)
    noisy = evaluate(_model(), label=label, baseline=BASELINE,
                     candidate=[*BASELINE, _per_view(ev, "noise", noise)], source=ev, chart=False)
    assert better.verdict == "better", better.summary()
    assert noisy.verdict != "better", noisy.summary()
    assert better.counts["labelled"] > 5_000 and better.counts["missing"] > 0

    rec = records.get(better.record_id)  # type: ignore[arg-type]
    assert rec is not None and rec.verdict == "better" and rec.feature_set == "truth"
    assert rec.baseline_hashes == [BASELINE[0].hash]
    assert rec.data_range["partitions"] == {"0": [0, len(ev) - 1]}
    assert rec.data_range["event_time_ms"] == [int(ev["event_time_ms"].min()), int(ev["event_time_ms"].max())]


def test_a_window_joined_at_its_start_is_caught_peeking(shop) -> None:
    _, ev = shop
    user_day = Feature("user_views_1h", Entity("user", "user_id"), win.Tumbling(size_ms=3_600_000), agg.Count())
    from workbench.features.backfill import backfill

    out = backfill(user_day, ev.head(20_000))
    final = out.groupby(["key", "window_start_ms"], as_index=False).agg(
        value=("value", "last"), newest=("event_time_ms", "max"))
    # the classic mistake: a window's final count joined as of the window's start
    leaky = FeatureFrame("user_views_1h", final, key="user_id", value="value", time="window_start_ms",
                         source_time="newest")
    leaky.frame["user_id"] = leaky.frame["key"]
    with pytest.raises(LeakageError, match="newer than the prediction time"):
        evaluate(_model(), label=purchase_within(30), baseline=[], candidate=[leaky], source=ev.head(20_000),
                 record=False, chart=False)
