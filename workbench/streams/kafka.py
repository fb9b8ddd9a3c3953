"""Kafka client factories and topic helpers, all configured from the settings.

Every client Workbench creates goes through here, so SASL/TLS settings of an
external cluster reach all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.config import Settings, settings
from workbench.errors import BrokerUnavailable, WorkbenchError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

T = TypeVar("T")
# How long a topic may be missing from metadata before we call it absent.
NEW_TOPIC_GRACE_S = 2.0

# Room for a 1 MiB record plus headers on data topics; DLQ records also carry a reason.
TOPIC_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
DLQ_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _conf(s: Settings | None, extra: dict[str, Any]) -> dict[str, Any]:
    conf = (s or settings()).kafka_config()
    conf.update(extra)
    return conf


def admin(s: Settings | None = None, **extra: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    # librdkafka's info lines (e.g. "Purging unserved events" on close) are noise here
    return AdminClient(_conf(s, {"log_level": 4, **extra}))


def producer(s: Settings | None = None, **extra: Any) -> Producer:
    from confluent_kafka import Producer

    conf = {"linger.ms": 5, "compression.type": "lz4", "message.max.bytes": TOPIC_MAX_MESSAGE_BYTES}
    conf.update(extra)
    return Producer(_conf(s, conf))


def consumer(s: Settings | None = None, **extra: Any) -> Consumer:
    """A consumer; callers that must not disturb groups pass no group and use assign()."""
    from confluent_kafka import Consumer

    conf = {
        # librdkafka insists on a group id even for assign(); it is never committed.
        "group.id": "workbench-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
    }
    conf.update(extra)
    return Consumer(_conf(s, conf))


def list_topics(timeout_s: float = 5.0, s: Settings | None = None) -> dict[str, int]:
    """Topic name -> partition count; raises BrokerUnavailable when nothing answers."""
    from confluent_kafka import KafkaException

    try:
        # quiet: "connection refused" is the expected answer while a broker starts
        md = admin(s, log_level=0).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no Kafka broker at {(s or settings()).bootstrap}: {exc}") from exc
    return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}


def history_retention(name: str, s: Settings | None = None) -> dict[str, str]:
    """No time retention for the topics that hold event-time-stamped history on the embedded broker.

    Time retention counts from record timestamps, and ``events`` and the
    feature updates (``features.<set>``, stamped with the event time of the
    record that caused them) carry event times: replayed history older than
    the retention would be deleted as soon as it is written.

    >>> from workbench.config import Settings
    >>> history_retention("features.shop", Settings(kafka_port=29092))
    {'retention.ms': '-1'}
    >>> history_retention("features.shop", Settings(bootstrap_servers="kafka:9092"))
    {}
    """
    s = s or settings()
    if s.embedded and (name == s.events_topic or name.startswith("features.")):
        return {"retention.ms": "-1"}
    return {}


def ensure_topic(
    name: str,
    partitions: int | None = None,
    config: dict[str, str] | None = None,
    s: Settings | None = None,
) -> bool:
    """Create a topic if it is missing; True when it was created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    s = s or settings()
    if name in list_topics(s=s):
        return False
    conf = {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES if name.endswith(".dlq") else TOPIC_MAX_MESSAGE_BYTES)}
    conf.update(history_retention(name, s))
    conf.update(config or {})
    topic = NewTopic(name, num_partitions=partitions or s.partitions, replication_factor=-1, config=conf)
    client = admin(s)  # keep the handle alive until the future resolves
    fut = client.create_topics([topic])[name]
    try:
        fut.result(timeout=30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            return False
        raise
    return True


def delete_topics(names: list[str], s: Settings | None = None) -> None:
    client = admin(s)
    futs = client.delete_topics(names, operation_timeout=30)
    for fut in futs.values():
        try:
            fut.result(timeout=30)
        except Exception as exc:  # a topic that is already gone is fine
            if "UNKNOWN_TOPIC" not in str(exc):
                raise


def not_yet(exc: Exception) -> bool:
    """True for a broker error that goes away by itself (e.g. a new topic's leader is being elected)."""
    from confluent_kafka import KafkaError

    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return False
    return bool(err.retriable()) or err.code() in (
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    )


def retrying(call: Callable[[], T], timeout_s: float = 15.0) -> T:
    """``call()``, retried while the broker says "not yet" (a topic just created has no leader yet)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            if not not_yet(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) watermark offsets of one partition, asked of the broker."""
    from confluent_kafka import TopicPartition

    tp = TopicPartition(topic, partition)
    lo, hi = retrying(lambda: consumer.get_watermark_offsets(tp, timeout=10))
    return int(lo), int(hi)


def partitions(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partition ids of ``topic``; a clear error when it does not exist."""
    deadline = time.monotonic() + NEW_TOPIC_GRACE_S
    while True:
        md = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if md is not None and md.error is None and md.partitions:
            return sorted(md.partitions)
        if time.monotonic() > deadline:  # a topic created a moment ago may not be in metadata yet
            raise WorkbenchError(f"topic {topic!r} does not exist; list topics with `workbench stack status`")
        time.sleep(0.1)


def delete_consumer_group_and_topics(group: str, s: Settings | None = None) -> None:
    """Forget a consumer group: its committed offsets and its quixstreams changelog/repartition topics."""
    from confluent_kafka import KafkaException

    client = admin(s)
    try:
        for future in client.delete_consumer_groups([group], request_timeout=10).values():
            future.result()
    except KafkaException as exc:
        if "GROUP_ID_NOT_FOUND" not in str(exc):
            raise
    internal = [t for t in list_topics(s=s) if t.startswith(("changelog__", "repartition__")) and f"__{group}--" in t]
    if internal:
        delete_topics(internal, s=s)
