"""The worker's consumer: trending items from the events topic, learning from the feedback topic.

It reads from the end of both topics when the worker starts (no consumer
group offsets, no commits), so every worker sees every record:

* events: every view counts toward trending; a ``click`` or ``purchase``
  with a ``request_id`` is feedback on that recommendation;
* feedback: an ``impression`` record is kept (its shown items and feature
  rows) until feedback for its ``request_id`` arrives, which trains the ranker.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.serving.state import ServiceState

log = logging.getLogger(__name__)


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
        while not stop.is_set():
            for msg in c.consume(500, timeout=0.2):
                if msg.error() is not None:
                    continue
                try:
                    record = orjson.loads(msg.value())
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(record, dict):
                    continue
                if msg.topic() == feedback:
                    kind = record.get("type")
                    state.metrics.consumed.labels(kind=f"feedback:{kind}").inc()
                    if kind == "impression":
                        state.on_impression(record)
                    elif kind in ("click", "purchase") and record.get("request_id"):
                        state.on_feedback(str(record["request_id"]), str(record.get("item_id")))
                else:
                    kind = record.get("event_type")
                    state.metrics.consumed.labels(kind="events").inc()
                    item = record.get("item_id")
                    if kind == "view" and item is not None:
                        t = record.get("event_time_ms")
                        state.trending.see(str(item), t / 1000 if isinstance(t, int | float) else None)
                    elif kind in ("click", "purchase") and record.get("request_id"):
                        state.on_feedback(str(record["request_id"]), str(item))
    finally:
        c.close()
