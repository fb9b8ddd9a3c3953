"""Session features: stream equals backfill at every record, hand-computed values, hashes."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.features.test_conformance import EMBEDDINGS, check, event_streams
from tests.features.test_known_values import both, events
from workbench.config import Settings
from workbench.features import windows as win
from workbench.features.definition import SESSION, USER, Feature, FeatureSet, load, save
from workbench.features.session import (
    EmbeddingTable,
    RecentItems,
    SessionEmbedding,
    register_embeddings,
    session_features,
)
from workbench.recommender.embeddings import ItemEmbeddings

TABLE = EMBEDDINGS  # i1..i3; i4 is deliberately missing: items outside the table are ignored
TYPES = ["view", "add_to_cart", "purchase", "click", "impression"]

SESSION_EXAMPLES = settings(
    max_examples=int(os.environ.get("CONFORMANCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def shop_streams(draw: st.DrawFn) -> pd.DataFrame:
    """The conformance streams, with every event type a session feature counts."""
    frame = draw(event_streams())
    frame["event_type"] = draw(st.lists(st.sampled_from(TYPES), min_size=len(frame), max_size=len(frame)))
    return frame


@SESSION_EXAMPLES
@given(
    events=shop_streams(),
    gap_ms=st.sampled_from([8, 15, 40]),
    grace_ms=st.sampled_from([0, 5]),
    half_life_ms=st.sampled_from([None, 3, 20]),
)
def test_every_session_feature_stream_equals_backfill(
    events: pd.DataFrame, gap_ms: int, grace_ms: int, half_life_ms: int | None
) -> None:
    fs = session_features(gap_ms, grace_ms=grace_ms, embeddings=TABLE, half_life_ms=half_life_ms, last_n=2)
    for feature in fs:
        check(feature, events)


@SESSION_EXAMPLES
@given(
    events=shop_streams(),
    kind=st.sampled_from(["tumbling", "hopping", "sliding", "session"]),
    custom=st.sampled_from(["items", "embedding", "embedding_decay"]),
)
def test_custom_session_aggregations_work_on_every_window_and_entity(
    events: pd.DataFrame, kind: str, custom: str
) -> None:
    # custom aggregations are plug-ins: they must conform on every window, not only sessions
    window = {
        "tumbling": win.Tumbling(size_ms=15, grace_ms=10),
        "hopping": win.Hopping(size_ms=20, step_ms=5),
        "sliding": win.Sliding(size_ms=25, grace_ms=8),
        "session": win.Session(gap_ms=15, grace_ms=5),
    }[kind]
    aggregation = {
        "items": RecentItems("item_id", n=3),
        "embedding": SessionEmbedding("item_id", TABLE),
        "embedding_decay": SessionEmbedding("item_id", TABLE, half_life_ms=7),
    }[custom]
    check(Feature(f"{kind}_{custom}", USER, window, aggregation), events)


@settings(max_examples=100, deadline=None)
@given(
    updates=st.lists(
        st.tuples(st.sampled_from(["i1", "i2", "i3", "i4"]), st.integers(0, 50)), min_size=1, max_size=12
    ),
    split=st.integers(0, 12),
    seed=st.integers(0, 1000),
)
def test_state_does_not_depend_on_order_or_merges(
    updates: list[tuple[str, int]], split: int, seed: int
) -> None:
    """Any arrival order, and any split into two merged sessions, gives the same floats, exactly."""
    for agg in (RecentItems("item_id", n=2), SessionEmbedding("item_id", TABLE, half_life_ms=9)):
        in_order = agg.initialize()
        for item, t in updates:
            in_order = agg.update(in_order, item, t)
        shuffled = list(updates)
        random.Random(seed).shuffle(shuffled)
        a, b = agg.initialize(), agg.initialize()
        for item, t in shuffled[:split]:
            a = agg.update(a, item, t)
        for item, t in shuffled[split:]:
            b = agg.update(b, item, t)
        # json round trip: quixstreams keeps the state as JSON in RocksDB
        merged = json.loads(json.dumps(agg.merge(b, a)))
        assert agg.result(merged) == agg.result(in_order)


# -- values computed by hand ---------------------------------------------------------


def test_session_merge_by_hand() -> None:
    """gap 10: 100 and 118 are two sessions until 109 joins them (windows.py's worked example)."""
    fs = {f.name: f for f in session_features(10, grace_ms=10, embeddings=TABLE, last_n=2)}
    frame = events(
        [100, 118, 109, 97, 98],
        event_type=["view", "add_to_cart", "purchase", "view", "click"],
        item_id=["i1", "i2", "i1", "i3", "i4"],
    )
    assert both(fs["session_events"], frame) == [
        (0, 100, 101, 1),
        (1, 118, 119, 1),
        (2, 100, 119, 3),
        (3, "late"),
        (4, 98, 119, 4),
    ]
    values = {name: [row[-1] for row in both(f, frame)] for name, f in fs.items()}
    assert values["session_views"] == [1, 0, 1, "late", 1]
    assert values["session_add_to_carts"] == [0, 1, 1, "late", 1]
    assert values["session_purchases"] == [0, 0, 1, "late", 1]
    assert values["session_clicks"] == [0, 0, 0, "late", 1]
    assert values["session_dwell_ms"] == [0, 0, 18, "late", 20]
    assert values["session_last_event_ms"] == [100, 118, 118, "late", 118]
    # i1 last seen at 109, i2 at 118; i4 (98) is older than both
    assert values["session_items"] == [["i1"], ["i2"], ["i1", "i2"], "late", ["i1", "i2"]]
    i1, i2 = np.array(TABLE["i1"]), np.array(TABLE["i2"])
    expected = [i1, i2, (i1 + i2) / 2, None, (i1 + i2) / 2]  # i4 is not in the table: ignored
    for got, exp in zip(values["session_embedding"], expected, strict=True):
        if exp is None:
            assert got == "late"
        else:
            assert got == pytest.approx(exp.tolist(), rel=1e-12)


def test_decay_weights_recent_items_by_half_life() -> None:
    f = session_features(1_000, embeddings=TABLE, half_life_ms=100).features[-1]
    assert f.name == "session_embedding"
    frame = events([1000, 1100, 1200, 1150], item_id=["i1", "i2", "i3", "i1"])
    got = [row[-1] for row in both(f, frame)]
    v1, v2, v3 = (np.array(TABLE[i]) for i in ("i1", "i2", "i3"))
    # after the 4th record: i1 last seen at 1150 (weight 2**-0.5), i2 at 1100 (0.5), i3 at 1200 (1)
    w = [2**-0.5, 0.5, 1.0]
    expected = [v1, (0.5 * v1 + v2) / 1.5, (0.25 * v1 + 0.5 * v2 + v3) / 1.75]
    expected.append((w[0] * v1 + w[1] * v2 + w[2] * v3) / sum(w))
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e.tolist(), rel=1e-12)


def test_items_outside_the_table_are_ignored_and_none_gives_none() -> None:
    agg = SessionEmbedding("item_id", TABLE, half_life_ms=5)
    state = agg.update(agg.update(agg.initialize(), "i4", 10), "nope", 20)
    assert agg.result(state) is None
    # the missing newest item does not shift the weights of the others
    state = agg.update(agg.update(state, "i2", 12), "i3", 7)
    w = 2.0 ** (-5 / 5)
    exp = (np.array(TABLE["i2"]) + w * np.array(TABLE["i3"])) / (1 + w)
    assert agg.result(state) == pytest.approx(exp.tolist(), rel=1e-12)


def test_recent_items_is_distinct_last_n_with_ties_by_value() -> None:
    f = Feature("items", SESSION, win.Session(gap_ms=100), RecentItems("item_id", n=3))
    frame = events([10, 20, 30, 25, 40, 40], item_id=["a", "b", "c", "a", "e", "d"])
    got = [row[-1] for row in both(f, frame)]
    assert got == [
        ["a"],
        ["a", "b"],
        ["a", "b", "c"],
        ["b", "a", "c"],  # a moved to 25
        ["a", "c", "e"],
        ["c", "d", "e"],  # d and e tie at 40: ordered by value
    ]


# -- hashes: the table's version is part of the definition ----------------------------


def test_table_fingerprint_is_part_of_the_hash() -> None:
    base = session_features(60_000, embeddings=TABLE)
    changed = {**TABLE, "i3": [-0.25, 0.5, 0.06]}
    assert session_features(60_000, embeddings=dict(TABLE)).hash == base.hash
    assert session_features(60_000, embeddings=changed).hash != base.hash
    assert session_features(60_000, embeddings=TABLE, half_life_ms=1_000).hash != base.hash
    emb_hashes = {
        f.name: f.hash for f in session_features(60_000, embeddings=changed) if f.name != "session_embedding"
    }
    # only the embedding feature changes with the table
    assert emb_hashes == {f.name: f.hash for f in base if f.name != "session_embedding"}


def test_item_embeddings_and_its_frame_fingerprint_alike() -> None:
    ids = np.array(["i1", "i2"])
    emb = ItemEmbeddings(ids, np.array([[0.6, 0.8], [1.0, 0.0]], dtype="float32"))
    assert EmbeddingTable.of(emb).fingerprint == emb.fingerprint()
    assert EmbeddingTable.of(emb.frame()).fingerprint == emb.fingerprint()
    a = SessionEmbedding("item_id", emb)
    b = SessionEmbedding("item_id", emb.frame())
    assert a.spec() == b.spec()


def test_registry_round_trip_finds_the_table_by_fingerprint(tmp_path: Path) -> None:
    fs = session_features(60_000, embeddings=TABLE, half_life_ms=500)
    hashes = save(fs.features, tmp_path)
    for h, f in zip(hashes, fs.features, strict=True):
        assert load(h, tmp_path).hash == f.hash
    fp = register_embeddings(TABLE)
    assert SessionEmbedding("item_id", fp).table is SessionEmbedding("item_id", TABLE).table
    with pytest.raises(LookupError):
        SessionEmbedding("item_id", "0" * 16)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        RecentItems("item_id", n=0)
    with pytest.raises(ValueError):
        SessionEmbedding("item_id", TABLE, half_life_ms=0)
    with pytest.raises(ValueError):
        session_features(60_000, half_life_ms=100)  # a decay without a table
    with pytest.raises(ValueError):
        EmbeddingTable.of({"a": [1.0, math.nan]})


def test_exact_floats_across_many_orders() -> None:
    """Stream and backfill give identical floats, not merely close ones."""
    from workbench.features.backfill import backfill
    from workbench.features.stream import run_stream_on_frame

    f = Feature("e", SESSION, win.Session(gap_ms=50), SessionEmbedding("item_id", TABLE, half_life_ms=3))
    for perm in itertools.islice(itertools.permutations([10, 40, 25, 33, 60]), 20):
        frame = events(list(perm), item_id=["i1", "i2", "i3", "i1", "i2"])
        stream = run_stream_on_frame(f, frame)["value"].tolist()
        history = backfill(f, frame)["value"].tolist()
        assert stream == history


# -- the real pipeline on the real broker ----------------------------------------------


@pytest.mark.broker
@pytest.mark.slow
def test_live_session_features_equal_backfill(broker: Settings, new_topic: Callable[..., str]) -> None:
    """The whole standard set as one quixstreams job: what lands in features.<set> is the backfill."""
    from tests.features.test_live import make_events, produce, read_all
    from workbench.features.backfill import backfill
    from workbench.features.job import run
    from workbench.features.skew import same_value
    from workbench.streams import kafka

    source = new_topic("sess", partitions=2)
    base = session_features(20, grace_ms=10, embeddings=TABLE, half_life_ms=15, last_n=2)
    features = [Feature(f.name, f.entity, f.window, f.aggregation, source=source) for f in base]
    fs = FeatureSet(f"s{uuid.uuid4().hex[:8]}", features)
    frame = produce(source, make_events(120, seed=11), broker)
    try:
        run(fs, timeout=10.0)
    finally:
        shutil.rmtree(broker.home / "state" / f"{fs.name}-{fs.hash}", ignore_errors=True)
    written = [json.loads(r["value"]) for r in read_all(fs.topic, broker)]
    for f in features:
        exp = backfill(f, frame)
        exp = exp[~exp.late].sort_values(["partition", "offset", "window_start_ms"])
        got = sorted(
            (u for u in written if u["feature"] == f.name),
            key=lambda u: (u["source_partition"], u["source_offset"], u["window_start_ms"]),
        )
        assert len(got) == len(exp), (f.name, len(got), len(exp))
        for u, e in zip(got, exp.itertuples(), strict=True):
            assert u["hash"] == f.hash
            assert (u["source_partition"], u["source_offset"], u["key"]) == (e.partition, e.offset, e.key)
            assert (u["window_start_ms"], u["window_end_ms"]) == (e.window_start_ms, e.window_end_ms)
            assert same_value(u["value"], e.value), (f.name, u, e)
    assert any(u["feature"] == "session_embedding" and u["value"] for u in written)
    kafka.delete_topics([t for t in kafka.list_topics(s=broker) if fs.name in t], s=broker)
