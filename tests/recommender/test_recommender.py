"""The offline recommender: the same code the service runs, on simulated history."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import pandas as pd
import pytest

from workbench.recommender.feature_sets import PointInTimeItemFeatures, item_features
from workbench.recommender.ranking import FEATURES, ITEM_COLUMNS
from workbench.recommender.recommender import Recommender, session_of

START_MS = 1_767_225_600_000


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    from workbench.streams.simulator import ShopSimulator

    sim = ShopSimulator(seed=4, n_users=600, n_items=300, n_categories=6)
    df = sim.frame(start_ms=START_MS, duration_s=2 * 86_400)
    return df.assign(partition=0, offset=np.arange(len(df)))


@pytest.fixture(scope="module")
def rec(events: pd.DataFrame) -> Recommender:
    return Recommender(dim=16, candidates=80, max_train_prefixes=4_000).fit(events)


def test_recommend_ranks_candidates_and_keeps_what_the_log_needs(rec: Recommender) -> None:
    items = [str(i) for i in rec.embeddings.ids[[5, 9, 12]]]
    out = rec.recommend(items, k=10, session_times=[START_MS, START_MS + 30_000, START_MS + 60_000],
                        now_ms=START_MS + 90_000)  # fmt: skip
    assert len(out.items) == 10 and len(set(out.items)) == 10 and items[-1] not in out.items
    assert out.scores == sorted(out.scores, reverse=True)
    assert set(out.items) <= set(out.candidates) and len(out.candidates) == 80
    assert out.features.shape == (10, len(FEATURES)) and out.item_values.shape == (10, len(ITEM_COLUMNS))
    assert out.propensities == [1.0] * 10 and not out.degraded and out.reason is None
    # the shown items' logged features reproduce their scores: the log is enough to retrain
    assert np.allclose(rec.ranker.score(out.features), out.scores)
    again = rec.recommend(items, k=10, session_times=[START_MS, START_MS + 30_000, START_MS + 60_000],
                          now_ms=START_MS + 90_000)  # fmt: skip
    assert again.items == out.items


def test_unknown_items_get_popular_ones(rec: Recommender) -> None:
    out = rec.recommend(["never-seen"], k=5)
    assert out.reason == "unknown_session" and out.items == rec.popular[:5]


def test_session_of_keeps_the_last_distinct_items_like_the_stream() -> None:
    s = session_of([f"i{j % 13}" for j in range(30)], list(range(30)), now_ms=100)
    assert s.items == [f"i{j % 13}" for j in range(20, 30)] and s.last_event_ms == 29 and s.now_ms == 100


def test_learning_from_feedback_moves_the_clicked_item_up(rec: Recommender) -> None:
    import copy

    model = copy.deepcopy(rec)
    model.item_source = rec.item_source  # data, not model: not copied
    items = [str(i) for i in model.embeddings.ids[[3, 7]]]
    out = model.recommend(items, k=10)
    last = out.items[-1]
    for _ in range(30):
        model.learn(out.features, [i == last for i in out.items])
    # among the logged rows, the clicked one now scores highest
    assert int(np.argmax(model.ranker.score(out.features))) == out.items.index(last)
    with pytest.raises(ValueError, match="feature matrix"):
        model.learn(np.zeros((2, 3)), [True, False])


def test_point_in_time_item_features_equal_the_training_frame(events: pd.DataFrame) -> None:
    from workbench.features.training import training_frame

    fs = item_features()
    pit = PointInTimeItemFeatures(fs, events)
    rng = np.random.default_rng(0)
    items = rng.choice(events["item_id"].unique(), 40)
    times = rng.integers(START_MS, START_MS + 2 * 86_400_000, 40)
    labels = pd.DataFrame({"item_id": items, "label_time_ms": times})
    want = training_frame(labels, fs.features, events)
    for j, (item, t) in enumerate(zip(items, times, strict=True)):
        got = pit.lookup([item], int(t))[0]
        for c, f in enumerate(fs.features):
            w: Any = want[f.name].iloc[j]
            assert (w is None and np.isnan(got[c])) or got[c] == pytest.approx(float(w)), (f.name, item, t)


def test_a_new_embedding_version_flags_the_ranking_model_that_used_the_old_one(rec: Recommender,
                                                                                events: pd.DataFrame) -> None:
    from workbench import models
    from workbench.recommender.artifacts import load, save

    uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
    v1 = save(rec, uri=uri, metrics={"HR@20": 0.5})
    assert v1.depends_on == {"item_embeddings": 1} and v1.metrics["HR@20"] == 0.5
    assert len(v1.feature_hashes) == len(item_features().features) + 3
    assert models.stale("session_ranker", uri=uri) == []
    newer = Recommender(dim=8, candidates=40, max_train_prefixes=500).fit(events.iloc[: len(events) // 2])
    v2 = save(newer, uri=uri, parent=v1)
    assert v2.depends_on == {"item_embeddings": 2} and v2.parent == "session_ranker/1"
    assert [(v.ref, v.stale_because) for v in models.stale("session_ranker", uri=uri)] == [
        ("session_ranker/1", ("item_embeddings/2",))]
    back = load(1, uri=uri)
    assert back.version == "session_ranker/1" and back.embedding_version == "item_embeddings/1"
    assert back.embeddings.fingerprint() == rec.embeddings.fingerprint()
