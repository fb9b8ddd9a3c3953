"""The worker's consumer: trending items from the events topic, learning from the feedback topic.

It reads from the end of both topics when the worker starts (no consumer
group offsets, no commits), so every worker sees every record:

* events: every view counts toward trending; a ``click`` or ``purchase``
  with a ``request_id`` is feedback on that recommendation;
* feedback: an ``impression`` record is kept (its shown items and feature
  rows) until feedback for its ``request_id`` arrives, which trains the ranker.

Impressions are most of what every worker consumes (one ~8 KB record per
list served, by any worker), and few ever get a click. So the service tags
each one with a header naming its request (empty when the list has no
feature rows to learn from): a worker keeps the record's bytes under that
id without parsing it, and decodes it only when feedback for it arrives.

>>> kept = KeptImpression(b'{"request_id": "r1", "items": ["a", "b"], "features": [[1.0], [0.0]]}')
>>> items, rows = kept
>>> items, rows
(['a', 'b'], [[1.0], [0.0]])
>>> impression_headers("r1", learnable=True), impression_headers("r2", learnable=False)
([('wb-impression', b'r1')], [('wb-impression', b'')])
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.serving.state import ServiceState

log = logging.getLogger(__name__)
IMPRESSION_HEADER = "wb-impression"  # value: the request id; empty: nothing to learn from (a fallback list)


def impression_headers(request_id: str, learnable: bool) -> list[tuple[str, bytes]]:
    """The Kafka headers of an impression record: what a consuming worker needs to keep or skip it unparsed."""
    return [(IMPRESSION_HEADER, request_id.encode() if learnable else b"")]


class KeptImpression:
    """An impression as its encoded record; unpacks as ``(items, feature_rows)``, parsed on each use."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __iter__(self) -> Iterator[Any]:
        import orjson

        record = orjson.loads(self.raw)
        return iter((record["items"], record["features"]))


def consume_loop(state: ServiceState, stop: threading.Event) -> None:
    import uuid

    import orjson
    from confluent_kafka import TopicPartition

    from workbench.streams.kafka import consumer, partitions, watermarks

    events, feedback = state.events_topic, state.config.feedback_topic
    extra: dict[str, str] = {"group.id": f"wb-serve-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "latest"}
    c = consumer(None, **extra)
    try:
        assigned: list[TopicPartition] = []
        while not stop.is_set() and not assigned:
            try:
                # explicit end offsets (not OFFSET_END, resolved lazily): once assigned, nothing later is missed
                assigned = [TopicPartition(t, p, watermarks(c, t, p)[1]) for t in (events, feedback)
                            for p in partitions(c, t)]  # fmt: skip
            except Exception as exc:  # the broker or a topic is not there yet
                log.warning("consumer waiting for topics: %s", exc)
                stop.wait(2.0)
        c.assign(assigned)
        state.consumer_ready.set()
        counters: dict[str, Any] = {}

        def count(kind: str) -> None:
            counter = counters.get(kind)
            if counter is None:
                counter = counters[kind] = state.metrics.consumed.labels(kind=kind)
            counter.inc()

        while not stop.is_set():
            for msg in c.consume(500, timeout=0.2):
                if msg.error() is not None:
                    continue
                if msg.topic() == feedback:
                    headers = msg.headers()
                    if headers and headers[0][0] == IMPRESSION_HEADER:
                        count("feedback:impression")
                        if headers[0][1]:
                            state.on_impression(headers[0][1].decode(), msg.value())
                        continue
                try:
                    record = orjson.loads(msg.value())
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(record, dict):
                    continue
                if msg.topic() == feedback:
                    kind = record.get("type")
                    count(f"feedback:{kind}")
                    if kind == "impression":  # from a producer that does not tag impressions
                        if record.get("features") and record.get("request_id"):
                            state.on_impression(str(record["request_id"]), msg.value())
                    elif kind in ("click", "purchase") and record.get("request_id"):
                        state.on_feedback(str(record["request_id"]), str(record.get("item_id")))
                else:
                    kind = record.get("event_type")
                    count("events")
                    item = record.get("item_id")
                    if kind == "view" and item is not None:
                        t = record.get("event_time_ms")
                        state.trending.see(str(item), t / 1000 if isinstance(t, int | float) else None)
                    elif kind in ("click", "purchase") and record.get("request_id"):
                        state.on_feedback(str(record["request_id"]), str(item))
    finally:
        c.close()
