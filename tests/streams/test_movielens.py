"""MovieLens 100k: the frame, a missing data set, and a full replay to the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.streams import read_back
from workbench.config import Settings
from workbench.errors import DataMissingError
from workbench.streams.events import encode, validate
from workbench.streams.movielens import movielens_events, movielens_frame, replay_movielens


@pytest.fixture(scope="module")
def frame():  # type: ignore[no-untyped-def]
    return movielens_frame()


def test_frame_has_every_rating_in_time_order(frame) -> None:  # type: ignore[no-untyped-def]
    assert len(frame) == 100_000 and frame["event_id"].is_unique
    assert frame["event_time_ms"].is_monotonic_increasing
    assert set(frame["rating"]) == {1, 2, 3, 4, 5} and set(frame["event_type"]) == {"view"}
    assert frame.groupby("item_id")["price"].nunique().max() == 1
    sample = list(movielens_events(frame.iloc[::997]))
    assert all(validate(encode(e))[1] is None for e in sample)


def test_sessions_cut_by_the_inactivity_gap(frame) -> None:  # type: ignore[no-untyped-def]
    gaps = frame.groupby("session_id")["event_time_ms"].agg(lambda t: t.diff().max())
    assert gaps.dropna().max() <= 1800 * 1000
    assert (frame.groupby("session_id")["user_id"].nunique() == 1).all()
    assert movielens_frame(gap_s=60)["session_id"].nunique() > frame["session_id"].nunique()


def test_missing_data_set_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError) as err:
        movielens_frame(data_dir=tmp_path)
    message = str(err.value)
    assert "pip install --no-deps recbole" in message and "\n" not in message


@pytest.mark.broker
def test_replay_sends_all_ratings_in_time_order(
    broker: Settings, new_topic: Callable[..., str], frame  # type: ignore[no-untyped-def]
) -> None:
    topic = new_topic("ml")
    out = replay_movielens(0, topic=topic, s=broker)
    assert out["produced"] == 100_000 and out["errors"] == 0
    records = read_back(topic, broker)
    assert len(records) == 100_000
    order = {eid: n for n, eid in enumerate(frame["event_id"])}
    by_partition: dict[int, list[dict]] = {}  # type: ignore[type-arg]
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        assert r["key"] == r["value"]["session_id"]
        by_partition.setdefault(r["partition"], []).append(r["value"])
    assert len(by_partition) > 1
    for values in by_partition.values():
        times = [v["event_time_ms"] for v in values]
        assert times == sorted(times)
        # within a partition, produce order is the frame's (global) order
        ranks = [order[v["event_id"]] for v in values]
        assert ranks == sorted(ranks)
    assert sorted(order[r["value"]["event_id"]] for r in records) == list(range(100_000))


@pytest.mark.broker
def test_replay_speedup_compresses_time(broker: Settings, new_topic: Callable[..., str], frame) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic("mlpace")
    first = frame["event_time_ms"].iloc[:300]
    span_s = (first.iloc[-1] - first.iloc[0]) / 1000
    speedup = span_s / 1.0  # the 300 events should take about one second
    start = time.monotonic()
    out = replay_movielens(speedup, limit=300, topic=topic, s=broker)
    assert out["produced"] == 300
    assert time.monotonic() - start >= 0.8
