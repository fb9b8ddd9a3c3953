"""The feature job's output step: each feature update produced to ``features.<set>``.

``StreamingDataFrame.to_topic`` builds a Row, runs the topic's key and value
serializers through their context objects and wrappers, and polls the
producer after every message: on the bench workload (py-spy) that was about
15 µs per update, against about 4.5 µs here, most of it librdkafka's own
``produce``. :class:`UpdateWriter`
produces the same message (key: the entity key as UTF-8; value: the update
as JSON by quixstreams' own ``dumps``; timestamp: the update's event
time) on the **same** producer, with the same delivery callback, so nothing
about the guarantees changes:

* under exactly-once the message is inside the checkpoint's transaction
  (the transaction is begun on that producer when the checkpoint starts);
* a delivery error is latched by quixstreams' callback and raised by the
  checkpoint's flush, before offsets are committed, and by the next write;
* the checkpoint flushes the producer before it commits, so no update is
  lost between polls.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UpdateWriter"]

# how many produces between two polls (delivery callbacks are served then, and at flush)
_POLL_EVERY = 256


class UpdateWriter:
    """An ``update(..., metadata=True)`` step producing each update to ``topic``.

    ``producer`` is the StreamingDataFrame's producer (quixstreams'
    ``InternalProducer``): its librdkafka producer and delivery callback are
    used directly.
    """

    def __init__(self, producer: Any, topic: str) -> None:
        from quixstreams.utils.json import dumps  # what the topic's JSON serializer runs

        self._internal = producer
        self._kafka = producer._producer._producer  # quixstreams Producer -> confluent_kafka Producer
        self._on_delivery = producer._on_delivery
        self.topic = topic
        self._dumps = dumps
        self._unpolled = 0

    def __call__(self, update: dict[str, Any], _key: Any, _timestamp: int, _headers: Any) -> None:
        internal = self._internal
        if internal._error is not None:
            internal._raise_for_error()  # fail fast, as the next to_topic would
        value = self._dumps(update)
        key = str(update["key"]).encode()
        kafka = self._kafka
        for attempt in range(3):
            try:
                kafka.produce(self.topic, value, key, timestamp=update["event_time_ms"],
                              on_delivery=self._on_delivery)
                break
            except BufferError:
                if attempt == 2:
                    raise
                kafka.poll(1.0)  # librdkafka's queue is full: serve deliveries, then retry
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            kafka.poll(0)
