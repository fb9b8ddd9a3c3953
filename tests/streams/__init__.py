"""Tests of workbench.streams; ``read_back`` reads a whole topic without touching any group."""

from __future__ import annotations

import json
import time
from typing import Any

from workbench.config import Settings


def read_back(topic: str, s: Settings, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every record of ``topic`` as dicts (partition, offset, key, value), via assign() and no commits."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from workbench.streams.kafka import consumer

    c = consumer(s)
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        total = 0
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < total and time.monotonic() < deadline:
            for m in c.consume(10_000, timeout=0.5):
                if m.error() is None:
                    out.append({"partition": m.partition(), "offset": m.offset(),
                                "key": m.key().decode(), "value": json.loads(m.value())})
        assert len(out) == total, f"read {len(out)} of {total} records"
        return out
    finally:
        c.close()
