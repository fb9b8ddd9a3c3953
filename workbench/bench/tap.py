"""``workbench bench tap``: tap throughput into a DataFrame vs a plain JSON consumer.

One topic of ``events`` small JSON events (reused across runs when it already
holds exactly that many) is read, alternately and ``ROUNDS`` times each, by

* the **baseline**: a plain confluent-kafka consumer that assigns every
  partition, consumes in batches and ``json.loads`` every value; and
* the **candidate**: ``Tap(since="earliest")`` whose buffer holds every event,
  timed from start until ``df()`` returns all of them (decoding, validating,
  buffering and building the typed frame included).

The best round of each is reported (the least disturbed by other load), with
their ratio. Both use the same fetch settings (``CONSUMER_CONF``), so the ratio
measures only the tap's own work. Note the tap decodes with orjson (see
``workbench.taps.records``) while the baseline uses ``json.loads`` as specified.

The tap's resident memory is measured in a fresh interpreter: the RSS growth
from before the tap starts until its buffer holds ``buffer_rows`` rows. It
includes librdkafka's prefetch queue and allocator slack besides the rows
themselves, which are estimated separately (``buffer_rows_python_mb``); a plain
consumer with the same settings that read as many records and kept none gives
the librdkafka share (``plain_consumer_rss_delta_mb``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from workbench.config import settings
from workbench.streams import kafka
from workbench.streams.events import EVENT_TYPES, encode

ROUNDS = 2
PARTITIONS = 3
DISTINCT_PAYLOADS = 4096


def _payloads(t0_ms: int) -> list[tuple[bytes, bytes]]:
    """Pre-encoded (key, value) pairs, cycled while producing; realistic size and shape."""
    out = []
    for i in range(DISTINCT_PAYLOADS):
        e: dict[str, Any] = {
            "event_id": f"ev-{i:08d}",
            "event_type": EVENT_TYPES[i % 3],
            "event_time_ms": t0_ms + i,
            "user_id": f"u{i % 977}",
            "session_id": f"s{i % 1999}",
            "item_id": f"i{(i * 7919) % 5003}",
            "category": f"cat{i % 23}",
            "price": round(1 + (i % 500) * 0.37, 2),
        }
        out.append((e["session_id"].encode(), encode(e)))
    return out


def _count(topic: str) -> int:
    from confluent_kafka import TopicPartition

    c = kafka.consumer()
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            hi - lo for lo, hi in (c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts)
        )
    finally:
        c.close()


def prepare(events: int) -> tuple[str, float | None]:
    """The bench topic holding exactly ``events`` events; (name, seconds spent producing or None)."""
    topic = f"bench.tap.{events}"
    if topic in kafka.list_topics() and _count(topic) == events:
        return topic, None
    kafka.delete_topics([topic]) if topic in kafka.list_topics() else None
    kafka.ensure_topic(topic, partitions=PARTITIONS, config={"retention.ms": "-1"})
    conf: dict[str, Any] = {"linger.ms": 50, "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000}
    p = kafka.producer(None, **conf)
    payloads = _payloads(int(time.time() * 1000))
    started = time.perf_counter()
    produce = p.produce
    for i in range(events):
        key, value = payloads[i % DISTINCT_PAYLOADS]
        try:
            produce(topic, value, key)
        except BufferError:
            p.poll(0.05)
            produce(topic, value, key)
        if i % 50_000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError("the bench topic could not be filled")
    return topic, time.perf_counter() - started


def baseline(topic: str, events: int, loads: Callable[[bytes], Any] = json.loads) -> float:
    """Events/s of a plain consumer that assigns, consumes batches and decodes each value with ``loads``."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from workbench.taps.tap import CONSUMER_CONF

    c = kafka.consumer(None, **CONSUMER_CONF)  # the tap's fetch settings: the ratio measures only its work
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        started = time.perf_counter()
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        n = 0
        while n < events:
            for m in c.consume(num_messages=10_000, timeout=1.0):
                if m.error() is None:
                    loads(m.value())
                    n += 1
        return events / (time.perf_counter() - started)
    finally:
        c.close()


def candidate(topic: str, events: int) -> float:
    """Events/s of a tap from start at earliest until df() holds all events."""
    from workbench.taps.tap import Tap

    started = time.perf_counter()
    tap = Tap(topic, since="earliest", max_rows=events, max_bytes=2**40).start()
    try:
        if not tap.wait(events, timeout=300):
            raise RuntimeError(f"tap read only {tap._buffer.appended} of {events} events: {tap.error}")
        df = tap.df()
        elapsed = time.perf_counter() - started
    finally:
        tap.stop()
    if len(df) != events:
        raise RuntimeError(f"df() holds {len(df)} rows, expected {events}")
    return events / elapsed


_MEMORY_CODE = """
import gc, json, sys, psutil
from workbench.taps.tap import Tap
topic, rows = sys.argv[1], int(sys.argv[2])
import pandas, confluent_kafka  # loaded before the baseline, they are not the tap's memory
proc = psutil.Process()
gc.collect()
before = proc.memory_info().rss
tap = Tap(topic, since="earliest", max_rows=rows).start()
ok = tap.wait(rows, timeout=120)
gc.collect()
after = proc.memory_info().rss
tap.stop()
sample = tap._buffer.rows(last=1000)
# the rows' own Python objects; small ints and None are shared, so this slightly overcounts
row_bytes = sum(sys.getsizeof(r) + sum(sys.getsizeof(v) for v in r if v is not None) for r in sample)
print(json.dumps({"ok": ok, "rows": len(tap._buffer), "buffer_bytes": tap._buffer.nbytes,
                  "rows_python_mb": round(row_bytes / len(sample) * len(tap._buffer) / 2**20, 1),
                  "rss_delta_mb": round((after - before) / 2**20, 1)}))
"""


_PLAIN_MEMORY_CODE = """
import gc, json, sys, psutil
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from orjson import loads
from workbench.streams import kafka
from workbench.taps.tap import CONSUMER_CONF
topic, rows = sys.argv[1], int(sys.argv[2])
import pandas
proc = psutil.Process()
gc.collect()
before = proc.memory_info().rss
c = kafka.consumer(None, **CONSUMER_CONF)
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
n = 0
while n < rows:
    for m in c.consume(10_000, timeout=1.0):
        loads(m.value())
        n += 1
gc.collect()
print(json.dumps({"rss_delta_mb": round((proc.memory_info().rss - before) / 2**20, 1)}))
c.close()
"""


def _subprocess_json(code: str, topic: str, rows: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, topic, str(rows)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def memory(topic: str, rows: int) -> dict[str, Any]:
    """RSS growth of a tap whose buffer holds ``rows`` rows, and of a plain consumer that read as many.

    Both run in fresh interpreters; the plain consumer (same fetch settings,
    keeps nothing) shows how much of the tap's figure is librdkafka's.
    """
    result = _subprocess_json(_MEMORY_CODE, topic, rows)
    result["plain_consumer_rss_delta_mb"] = _subprocess_json(_PLAIN_MEMORY_CODE, topic, rows)["rss_delta_mb"]
    return result


def run(events: int, buffer_rows: int) -> dict[str, Any]:
    """Produce (or reuse) the topic, then measure baseline and tap alternately; JSON-ready."""
    topic, produce_s = prepare(events)
    import pandas  # noqa: F401  # a one-time import of the process, not part of any throughput
    from orjson import loads as orjson_loads

    base: list[float] = []
    base_orjson: list[float] = []
    tap: list[float] = []
    for _ in range(ROUNDS):
        base.append(baseline(topic, events))
        tap.append(candidate(topic, events))
        base_orjson.append(baseline(topic, events, orjson_loads))
    mem = memory(topic, min(buffer_rows, events))
    best_base, best_tap = max(base), max(tap)
    return {
        "benchmark": "tap",
        "topic": topic,
        "events": events,
        "bootstrap": settings().bootstrap,
        "produced_events_per_s": round(events / produce_s) if produce_s else "reused",
        "baseline_json_consumer_events_per_s": round(best_base),
        "tap_to_dataframe_events_per_s": round(best_tap),
        "ratio": round(best_tap / best_base, 3),
        "target_ratio": 0.5,
        # the same plain consumer decoding with orjson, as the tap does: its overhead beyond decoding
        "baseline_orjson_consumer_events_per_s": round(max(base_orjson)),
        "ratio_vs_orjson_baseline": round(best_tap / max(base_orjson), 3),
        "rounds": {
            "baseline": [round(x) for x in base],
            "tap": [round(x) for x in tap],
            "baseline_orjson": [round(x) for x in base_orjson],
        },
        "tap_memory": {
            "buffer_rows": mem["rows"],
            "buffer_payload_mb": round(mem["buffer_bytes"] / 2**20, 1),
            "buffer_rows_python_mb": mem["rows_python_mb"],
            "rss_delta_mb": mem["rss_delta_mb"],
            "plain_consumer_rss_delta_mb": mem["plain_consumer_rss_delta_mb"],
        },
    }
