"""The loop's pure parts: routing tables, the feedback join, ranking losses, pairwise updates, drift size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.learning.feedback import FeedbackJoin
from workbench.learning.triggers import DriftTrigger
from workbench.serving.routing import RoutingError, RoutingTable

REFS = ["r/1", "r/2", "r/3", "r/4"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(REFS), st.sampled_from(["shadow", "canary", "arm", "champion", "retired"])),
                max_size=30))
def test_any_sequence_of_stage_changes_keeps_the_table_consistent(changes: list[tuple[str, str]]) -> None:
    table = RoutingTable(champion="r/1", arms=("r/1",))
    for ref, stage in changes:
        try:
            new = table.with_stage(ref, stage, share=0.2)
        except RoutingError:
            assert (stage == "retired" and ref == table.champion) or (stage in ("shadow", "canary")
                                                                      and ref == table.champion)
            continue
        assert new.generation == table.generation + 1
        was_champion, table = ref == table.champion, new
        expected = None if stage == "retired" else "champion" if stage == "arm" and was_champion else stage
        assert table.stage_of(ref) == expected  # the champion made an arm stays the champion (it is one)
        assert table.champion in table.arms and len(set(table.arms)) == len(table.arms)
        roles = [*table.arms, *table.shadows, *([table.canary] if table.canary else [])]
        assert len(roles) == len(set(roles)), table  # one role per version
        assert (table.canary is None) == (table.canary_share == 0.0)
        assert RoutingTable.from_json(table.to_json()) == table


def test_bad_stage_changes_are_refused() -> None:
    table = RoutingTable(champion="r/1", arms=("r/1",))
    with pytest.raises(RoutingError, match="unknown stage"):
        table.with_stage("r/2", "live")
    with pytest.raises(RoutingError, match="share"):
        table.with_stage("r/2", "canary", share=1.5)


def _impression(rid: str, t: int, items: list[str], scores: list[float]) -> dict[str, object]:
    return {"type": "impression", "request_id": rid, "served_at_ms": t, "model_version": "m/1", "role": "champion",
            "items": items, "scores": scores, "features": [[float(j)] for j in range(len(items))]}


def test_the_join_waits_for_the_window_and_keeps_every_click() -> None:
    join = FeedbackJoin(attribution_ms=100)
    join.add(_impression("a", 0, ["x", "y", "z"], [0.3, 0.2, 0.1]))
    join.add(_impression("b", 50, ["x", "y"], [0.3, 0.2]))
    join.add({"type": "click", "request_id": "a", "item_id": "z"})
    join.add({"event_type": "click", "request_id": "a", "item_id": "x"})  # a click event on the events topic
    join.add({"type": "click", "request_id": "nobody", "item_id": "x"})
    join.add({"type": "impression", "request_id": "c", "served_at_ms": 0, "degraded": True, "items": ["x"],
              "features": []})  # trending: not a ranking version's decision
    (a,) = join.due(120)
    assert a.request_id == "a" and a.clicked.tolist() == [True, False, True] and len(join) == 1
    assert join.orphan_clicks == 1
    assert a.rank_loss() == pytest.approx(1 - (1 / 1 + 1 / 3) / 2)
    (b,) = join.due(150)
    assert not b.any_click and np.isnan(b.rank_loss())


def test_pairwise_updates_move_the_ranking_toward_clicked_items() -> None:
    from workbench.recommender.ranking import FEATURES, Ranker
    from workbench.recommender.recommender import Recommender

    rng = np.random.default_rng(0)
    rec = Recommender()
    rec.ranker = Ranker()
    rec.ranker.learn_many(rng.normal(size=(500, len(FEATURES))), rng.random(500) < 0.5)  # a scaler and weights
    intercept = rec.ranker.model["LogisticRegression"].intercept
    before = rec.ranker.weights()[FEATURES[3]]
    for _ in range(300):  # users click the item with the largest feature 3
        X = rng.normal(size=(8, len(FEATURES)))
        assert rec.learn_pairs(X, X[:, 3] == X[:, 3].max()) == 7
    assert rec.ranker.weights()[FEATURES[3]] > before + 0.5
    assert rec.ranker.model["LogisticRegression"].intercept == pytest.approx(intercept, abs=1e-9)
    assert rec.learn_pairs(np.zeros((3, len(FEATURES))), [False] * 3) == 0  # no click: nothing to rank


def test_drift_min_change_ignores_small_real_shifts() -> None:
    rng = np.random.default_rng(1)
    small = np.r_[rng.exponential(1.0, 20_000), rng.exponential(1.04, 20_000)]
    big = np.r_[rng.exponential(1.0, 4000), rng.exponential(1.5, 4000)]
    assert DriftTrigger(direction="up").scan(small)  # ADWIN alone: a 4% shift in a long stream is a drift
    assert not DriftTrigger(direction="up", min_change=0.1).scan(small)
    # ADWIN first sees the big shift as +6% (its window still holds the old level); the trigger waits for 10%
    fired = DriftTrigger(direction="up", min_change=0.1).scan(big)
    assert len(fired) == 1 and 4000 <= fired[0].position < 4600, fired


def test_a_reset_starts_a_fair_race_here_and_in_the_store(tmp_path: object) -> None:
    from workbench.learning.bandits import PosteriorStore, ThompsonRouter

    store = PosteriorStore(f"sqlite:///{tmp_path}/b.db")
    with ThompsonRouter("race", ["old", "new"], store=store) as router:
        router.update_many("old", 700, 1000)
        router.update_many("new", 3, 3)
    router = ThompsonRouter("race", store=store)
    assert router.posterior("old") == (701.0, 301.0)
    router.reset()
    assert router.posteriors() == {"old": (1.0, 1.0), "new": (1.0, 1.0)}
    assert ThompsonRouter("race", store=store).posteriors() == {"old": (1.0, 1.0), "new": (1.0, 1.0)}
