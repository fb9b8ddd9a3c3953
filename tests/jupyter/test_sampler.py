"""The sidebar's stream sampler against the real broker: counts, rates, DLQ and lag."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.jupyter.fixtures import produce
from workbench.config import Settings
from workbench.jupyter.sampler import StreamSampler

pytestmark = pytest.mark.broker


def _topic(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in snapshot["topics"] if t["name"] == name]
    assert found, f"{name} not in {[t['name'] for t in snapshot['topics']]}"
    return found[0]


def test_counts_rate_and_dlq(broker: Settings, new_topic: Callable[..., str]) -> None:
    from workbench.streams.kafka import ensure_topic, producer

    topic = new_topic("sampler")
    ensure_topic(topic + ".dlq", partitions=1, s=broker)  # new_topic's clean-up deletes <topic>.dlq
    produce(broker, topic, 10)
    p = producer(broker)
    for _ in range(4):
        p.produce(topic + ".dlq", value=b"not json")
    assert p.flush(30) == 0

    sampler = StreamSampler(broker, interval_s=0.5)
    sampler.sample()
    first = sampler.snapshot(start=False)  # samples only when told: exact counts
    assert first["ok"] and first["error"] is None
    row = _topic(first, topic)
    assert row["messages"] == 10 and row["partitions"] == 3 and row["internal"] is False
    assert row["rate_per_s"] is None  # one sample is not a rate
    assert row["dlq"] == {"topic": topic + ".dlq", "messages": 4}
    assert topic + ".dlq" not in [t["name"] for t in first["topics"]]  # shown under its parent

    produce(broker, topic, 30)
    time.sleep(0.2)
    sampler.sample()
    row = _topic(sampler.snapshot(start=False), topic)
    assert row["messages"] == 40
    assert row["rate_per_s"] > 0 and row["history"] == [row["rate_per_s"]]
    sampler.stop()


def test_lag_per_group_without_joining(broker: Settings, new_topic: Callable[..., str]) -> None:
    from confluent_kafka import TopicPartition

    from workbench.streams.kafka import admin, consumer

    topic = new_topic("lag", partitions=1)
    produce(broker, topic, 12)
    group = f"test.lag.{uuid.uuid4().hex[:8]}"
    c = consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        c.close()
    try:
        sampler = StreamSampler(broker)
        sampler.sample()
        row = _topic(sampler.snapshot(start=False), topic)
        assert row["lag"] == {group: 7}
        assert row["lag_total"] == 7
    finally:
        client = admin(broker)  # keep the handle alive until the future resolves
        client.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)


def test_thread_starts_on_request_and_stops_when_idle(broker: Settings) -> None:
    sampler = StreamSampler(broker, interval_s=0.2, idle_stop_s=0.5)
    assert sampler.snapshot()["sampled_at"] is None  # first request starts the thread
    deadline = time.monotonic() + 20
    while sampler.snapshot()["sampled_at"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sampler.snapshot()["sampled_at"] is not None
    thread = sampler._thread
    assert thread is not None
    thread.join(10)  # no requests for idle_stop_s: it exits by itself
    assert not thread.is_alive() and sampler._thread is None
    sampler.stop()


def test_unreachable_broker_is_an_error_not_an_exception() -> None:
    from tests.jupyter.lab import free_port

    s = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    sampler = StreamSampler(s, timeout_s=1.0)
    sampler.sample()
    snap = sampler.snapshot(start=False)
    assert snap["ok"] is False and snap["topics"] == []
    assert snap["error"] and "\n" not in snap["error"]
