"""Kafka client factories and topic helpers, all configured from the settings.

Every client Workbench creates goes through here, so SASL/TLS settings of an
external cluster reach all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.config import Settings, settings
from workbench.errors import BrokerUnavailable

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

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
    if s.embedded and name == s.events_topic:
        conf["retention.ms"] = "-1"  # replayed history must not age out
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
