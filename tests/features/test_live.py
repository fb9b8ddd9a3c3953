"""The live job on the real broker: what lands in features.<set> equals the backfill."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from workbench.config import Settings
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.backfill import backfill
from workbench.features.definition import SESSION, USER, Feature, FeatureSet, col
from workbench.features.job import run
from workbench.features.skew import same_value
from workbench.streams import kafka
from workbench.streams.events import encode

BASE_MS = 1_700_000_000_000


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    clock = 0
    out = []
    for i in range(n):
        clock = max(0, clock + rng.choice([0, 3, 7, 12, 25, -5, -40]))  # out of order, some late
        session = rng.choice(["s0", "s1", "s2", "s3"])
        out.append(
            {
                "event_id": f"e{i}",
                "event_type": rng.choice(["view", "view", "click"]),
                "event_time_ms": BASE_MS + clock,
                # one user per session: a user spread over partitions is regrouped in
                # consumption order, which a history frame cannot know (see backfill docs)
                "user_id": {"s0": "u0", "s1": "u1", "s2": "u2", "s3": "u3"}[session],
                "session_id": session,
                "item_id": rng.choice(["i1", "i2", "i3"]),
                "category": rng.choice(["books", "toys"]),
                "price": rng.randint(0, 100) / 4,
            }
        )
    return out


def produce(topic: str, events: list[dict[str, Any]], s: Settings) -> pd.DataFrame:
    """Send keyed by session; returns the events with the partition and offset they got."""
    p = kafka.producer(s)
    positions: dict[str, tuple[int, int]] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        positions[json.loads(msg.value())["event_id"]] = (msg.partition(), msg.offset())

    for e in events:
        p.produce(topic, key=e["session_id"].encode(), value=encode(e), on_delivery=delivered)
    assert p.flush(30) == 0
    frame = pd.DataFrame(events)
    frame["partition"] = [positions[e][0] for e in frame.event_id]
    frame["offset"] = [positions[e][1] for e in frame.event_id]
    return frame.sort_values(["partition", "offset"]).reset_index(drop=True)


def read_all(topic: str, s: Settings) -> list[dict[str, Any]]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = kafka.consumer(s)
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out = []
        while ends:
            for m in c.consume(num_messages=500, timeout=1.0):
                if m.error():
                    continue
                out.append({"value": m.value(), "headers": dict(m.headers() or []), "key": m.key(),
                            "timestamp": m.timestamp()[1]})
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
            for tp in c.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:  # transaction markers end a partition early
                    ends.pop(tp.partition, None)
        return out
    finally:
        c.close()


def _topic_setting(topic: str, name: str, s: Settings) -> str:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = kafka.admin(s)  # alive until the future resolves
    entries = client.describe_configs([resource])[resource].result(timeout=10)
    return str(entries[name].value)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("exactly_once", [False, True])
def test_live_updates_equal_backfill(
    broker: Settings, new_topic: Callable[..., str], exactly_once: bool
) -> None:
    source = new_topic("feat", partitions=2)
    features = [
        Feature(
            "views_t",
            SESSION,
            win.Tumbling(size_ms=30, grace_ms=10),
            agg.Count(),
            where=col("event_type") == "view",
            source=source,
        ),
        Feature(
            "spend_h", USER, win.Hopping(size_ms=40, step_ms=20, grace_ms=5), agg.Sum("price"), source=source
        ),
        Feature(
            "items_s", USER, win.Sliding(size_ms=25, grace_ms=10), agg.DistinctCount("item_id"), source=source
        ),
        Feature("last_sess", SESSION, win.Session(gap_ms=20), agg.Last("item_id"), source=source),
    ]
    fs = FeatureSet(f"t{uuid.uuid4().hex[:8]}", features)
    frame = produce(source, make_events(150, seed=3), broker)

    try:
        updates, late_counts = run(fs, timeout=10.0, exactly_once=exactly_once)
    finally:
        shutil.rmtree(broker.home / "state" / f"{fs.name}-{fs.hash}", ignore_errors=True)
    assert updates  # bounded run returned what it produced

    records = read_all(fs.topic, broker)
    written = [json.loads(r["value"]) for r in records]
    # an update's Kafka timestamp is the event time of the record that caused it, for every window kind
    assert [r["timestamp"] for r in records] == [u["event_time_ms"] for u in written]
    late_positions: set[tuple[int, int]] = set()
    for f in features:
        expected = backfill(f, frame)
        late = expected[expected.late]
        late_positions |= set(zip(late.partition, late.offset, strict=True))
        assert late_counts[f.name] == len(late), (f.name, late_counts, len(late))
        exp = expected[~expected.late].sort_values(["partition", "offset", "window_start_ms"])
        got = sorted(
            (u for u in written if u["feature"] == f.name),
            key=lambda u: (u["source_partition"], u["source_offset"], u["window_start_ms"]),
        )
        assert len(got) == len(exp), (f.name, len(got), len(exp), len(written))
        for u, e in zip(got, exp.itertuples(), strict=True):
            assert u["hash"] == f.hash
            assert (u["source_partition"], u["source_offset"], u["key"]) == (e.partition, e.offset, e.key)
            assert (u["window_start_ms"], u["window_end_ms"]) == (e.window_start_ms, e.window_end_ms)
            assert same_value(u["value"], e.value), (f.name, u, e)
    assert late_positions, "the scenario should contain late records"
    dlq = read_all(f"{source}.dlq", broker)
    reasons = {r["headers"]["reason"] for r in dlq}
    assert reasons == {b"late"}
    got_positions = {(int(r["headers"]["source_partition"]), int(r["headers"]["source_offset"])) for r in dlq}
    assert got_positions == late_positions
    # updates carry event-time timestamps (2023 here): time retention on the output topic would
    # delete them as soon as the broker's retention check runs (this test then read nothing)
    assert _topic_setting(fs.topic, "retention.ms", broker) == "-1"
    # the job's own topics: output, repartition and changelogs
    kafka.delete_topics([t for t in kafka.list_topics(s=broker) if fs.name in t], s=broker)


@pytest.mark.broker
@pytest.mark.slow
def test_malformed_events_go_to_the_dlq_and_leave_values_unaffected(
    broker: Settings, new_topic: Callable[..., str]
) -> None:
    source = new_topic("feat_bad", partitions=1)
    feature = Feature("views_t", SESSION, win.Tumbling(size_ms=50, grace_ms=100), agg.Count(),
                      where=col("event_type") == "view", source=source)
    fs = FeatureSet(f"t{uuid.uuid4().hex[:8]}", [feature])
    good = make_events(60, seed=9)
    bad = {  # position in the stream -> (payload, expected reason)
        5: (b"{not json", "not_json"),
        17: (encode({**good[0], "price": "free"}), "wrong_type:price"),
        29: (encode({k: v for k, v in good[1].items() if k != "session_id"}), "missing:session_id"),
        41: (b'{"pad": "' + b"x" * (broker.max_event_bytes + 10) + b'"}', "too_large"),
    }
    p = kafka.producer(broker)
    offsets: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        offsets.append(msg.offset())

    stream, g = [], iter(good)
    for i in range(len(good) + len(bad)):
        event = None if i in bad else next(g)
        stream.append((b"s0", bad[i][0]) if event is None else (event["session_id"].encode(), encode(event)))
    for key, raw in stream:  # one at a time: offsets in send order
        p.produce(source, key=key, value=raw, on_delivery=delivered)
        p.flush(30)
    frame = pd.DataFrame(good).assign(partition=0, offset=[o for i, o in enumerate(offsets) if i not in bad])

    try:
        run(fs, timeout=8.0)
        run(fs, timeout=4.0)  # a second run of the same job reads nothing new and dead-letters nothing twice
    finally:
        shutil.rmtree(broker.home / "state" / f"{fs.name}-{fs.hash}", ignore_errors=True)

    written = [json.loads(r["value"]) for r in read_all(fs.topic, broker)]
    expected = backfill(feature, frame)
    exp = expected[~expected.late]
    got = sorted(written, key=lambda u: (u["source_offset"], u["window_start_ms"]))
    assert [(u["source_offset"], u["value"]) for u in got] == list(zip(exp.offset, exp.value, strict=True))

    dlq = [r for r in read_all(f"{source}.dlq", broker) if r["headers"]["reason"] != b"late"]
    by_offset = {int(r["headers"]["source_offset"]): r for r in dlq}
    assert len(dlq) == len(bad) == len(by_offset)
    for i, (payload, reason) in bad.items():
        r = by_offset[offsets[i]]
        assert r["headers"]["reason"].decode() == reason
        assert r["value"] == payload
    kafka.delete_topics([t for t in kafka.list_topics(s=broker) if fs.name in t], s=broker)
