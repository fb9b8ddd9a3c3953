"""Replay by event time (seeking and scanning) and by offsets returns exactly the right records."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.taps.test_tap import event, high_watermarks
from workbench.streams import kafka
from workbench.streams.events import encode
from workbench.taps import replay as replay_module
from workbench.taps.records import Decoder
from workbench.taps.replay import replay

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000
# These records carry 2023 timestamps: without this, time retention may delete them mid-test.
KEEP = {"retention.ms": "-1"}


def fill(topic: str, n: int, send_time: Callable[[int], int], event_time: Callable[[int], int]) -> None:
    p = kafka.producer()
    for i in range(n):
        e = event(i, session=f"s{i % 17}", t0=0)
        e["event_time_ms"] = event_time(i)
        p.produce(topic, key=e["session_id"], value=encode(e), timestamp=send_time(i))
    p.produce(topic, key="bad", value=b"garbage", timestamp=send_time(n))
    assert p.flush(30) == 0


def _skews(topic: str) -> list[tuple[int, int] | None]:
    from confluent_kafka import TopicPartition

    c = kafka.consumer()
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(3)}
        d = Decoder("events", topic=topic, events_topic="events")
        return list(replay_module.skew_ranges(c, topic, marks, d).values())
    finally:
        c.close()


def test_event_time_bounds_seek_when_send_time_tracks_event_time(new_topic: Callable[..., str]) -> None:
    topic = new_topic("seek", config=KEEP)
    # sent 2 s after they happened, one event per second of event time
    fill(topic, 3_000, send_time=lambda i: T0 + i * 1_000 + 2_000, event_time=lambda i: T0 + i * 1_000)
    assert all(s is not None and s[0] == 2_000 for s in _skews(topic))
    start, end = T0 + 1_000 * 1_000, T0 + 1_250 * 1_000
    df = replay(topic, datetime.fromtimestamp(start / 1000, tz=UTC), pd.Timestamp(end, unit="ms", tz="UTC"))
    assert sorted(df["event_id"]) == sorted(f"e{i}" for i in range(1_000, 1_250))
    assert df["event_time"].min() == pd.Timestamp(start, unit="ms", tz="UTC")
    for _, g in df.groupby("partition"):
        assert g["offset"].is_monotonic_increasing
    iso = replay(topic, "2023-11-14T22:13:20Z", T0 + 10_000)  # ISO string and epoch ms
    assert sorted(iso["event_id"]) == sorted(f"e{i}" for i in range(10))


def test_event_time_bounds_scan_when_send_time_does_not_track_it(new_topic: Callable[..., str]) -> None:
    topic = new_topic("scan", config=KEEP)
    rng = random.Random(3)
    times = [T0 + rng.randrange(0, 365 * 86_400_000) for _ in range(2_000)]  # a year of history sent now
    fill(topic, 2_000, send_time=lambda i: T0 + 10**10 + i, event_time=lambda i: times[i])
    assert all(s is None for s in _skews(topic))
    start, end = T0 + 100 * 86_400_000, T0 + 130 * 86_400_000
    df = replay(topic, start, end)
    assert sorted(df["event_id"]) == sorted(f"e{i}" for i, t in enumerate(times) if start <= t < end)
    assert df.attrs["malformed"] == {"not_json": 1}


def test_offset_bounds(new_topic: Callable[..., str]) -> None:
    topic = new_topic("offsets", config=KEEP)
    fill(topic, 600, send_time=lambda i: T0 + i, event_time=lambda i: T0 + i)
    marks = high_watermarks(topic)
    df = replay(topic, 10, 20)  # same offsets in every partition, end exclusive
    assert sorted(df.groupby("partition")["offset"].apply(list).to_dict().items()) == [
        (p, list(range(10, 20))) for p in range(3)
    ]
    tail = replay(topic, -3)  # the last 3 records of every partition
    assert tail.groupby("partition").size().sum() == 9 - 1  # one of them is the malformed record
    one = replay(topic, {1: 5}, {1: 8})
    assert one[["partition", "offset"]].values.tolist() == [[1, 5], [1, 6], [1, 7]]
    everything = replay(topic)
    assert len(everything) == 600 and everything.attrs["malformed"] == {"not_json": 1}
    assert len(everything) + 1 == sum(marks.values())  # every record but the malformed one
    mixed = replay(topic, {0: 0, 2: 0}, T0 + 300)
    assert set(mixed["partition"]) <= {0, 2} and (mixed["event_time_ms"] < T0 + 300).all()
    assert len(mixed) == len(everything.query("partition in (0, 2) and event_time_ms < @T0 + 300"))
