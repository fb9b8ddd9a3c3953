"""Validation and the dead-letter queue that every production consumer shares.

Each record is checked with :func:`workbench.streams.events.validate` (and the
``max_event_bytes`` schema limit from the settings). A malformed record is never
dropped and never crashes the consumer: it goes to ``<topic>.dlq`` with its
original bytes as the value, a key ``"<topic>:<partition>:<offset>"`` and these
headers, and it is counted by reason:

======================  ===================================================
header                  value
======================  ===================================================
``reason``              ``not_json``, ``missing:price``, ``too_large``, ...
``source_topic``        the topic it was read from
``source_partition``    its partition (decimal)
``source_offset``       its offset (decimal)
``original_key``        its key bytes (absent key: header value is null)
``original_timestamp``  its Kafka timestamp, epoch ms (decimal)
======================  ===================================================

Exactly once in the DLQ, even across crashes
--------------------------------------------
A consumer may read a record again after a restart (it crashed after the DLQ
write but before committing its offset). We make the DLQ write idempotent per
source position instead of making it atomic with the commit:

1. The DLQ key *is* the source position, so "already dead-lettered" is a
   question the DLQ itself can answer.
2. When partitions are assigned, :meth:`DeadLetters.prime` reads the DLQ to its
   end (a bounded read: assign, then stop at the high watermarks it saw first)
   and remembers the positions already there. Only positions at or after the
   group's committed offset matter, since earlier ones are never read again, so
   the remembered set stays small.
3. Every new dead letter is added to that set before it is sent, so a second
   read in the same process is skipped too.
4. The producer is idempotent (``enable.idempotence``), so its own retries do
   not duplicate, and :meth:`DeadLetters.flush` must succeed before a consumer
   commits, so a committed offset always has its dead letters durably written.

We chose this over a transactional producer with ``send_offsets_to_transaction``
because it does not tie the DLQ to one commit protocol: a plain consumer
(:func:`validate_topic`) and a quixstreams feature job, which manages its own
commits and checkpoints, can both use :class:`Validator` unchanged. The cost is
one scan of the whole DLQ per assignment: cheap while the DLQ is small (give it a
bounded retention if it is not). The one window left: a consumer that dies
with dead letters still in flight, whose partition a new owner primes before
those letters land (milliseconds on a healthy broker). A graceful hand-over has no such window, because
:func:`validate_topic` flushes and commits in its revoke callback.

>>> v = Validator.offline("events")  # no broker: counts only, nothing is sent
>>> v.check_value(b"not json", partition=0, offset=7) is None
True
>>> v.counts()["by_reason"]
{'not_json': 1}
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.config import Settings, settings
from workbench.errors import WorkbenchError
from workbench.streams import kafka
from workbench.streams.events import Event, validate

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer, TopicPartition


# How long validate_topic waits for a partition assignment before its idle timeout starts anyway.
JOIN_GRACE_S = 30.0


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``.

    >>> dlq_topic("events")
    'events.dlq'
    """
    return f"{topic}.dlq"


def position_key(topic: str, partition: int, offset: int) -> str:
    """The DLQ key of a source position; it is what makes a dead letter unique.

    >>> position_key("events", 2, 41)
    'events:2:41'
    """
    return f"{topic}:{partition}:{offset}"


def _parse_key(key: bytes | None) -> tuple[str, int, int] | None:
    if not key:
        return None
    try:
        topic, partition, offset = key.decode().rsplit(":", 2)
        return topic, int(partition), int(offset)
    except ValueError:
        return None  # someone else wrote this record; it is not ours to dedupe


class DeadLetterError(WorkbenchError):
    """A dead letter could not be written; the consumer must not commit past it."""


class DeadLetters:
    """Writes the malformed records of one source topic to its DLQ, once per position."""

    def __init__(self, topic: str, *, s: Settings | None = None, producer: Producer | None = None) -> None:
        self.topic = topic
        self.dlq = dlq_topic(topic)
        self._s = s or settings()
        self._producer = producer
        self._seen: set[tuple[int, int]] = set()
        self._failures: list[str] = []
        self.sent = 0
        self.duplicates_skipped = 0

    def _client(self) -> Producer:
        if self._producer is None:
            kafka.ensure_topic(self.dlq, s=self._s)
            self._producer = kafka.producer(
                self._s,
                **{
                    "enable.idempotence": True,  # retries never duplicate a dead letter
                    "acks": "all",
                    "message.max.bytes": kafka.DLQ_MAX_MESSAGE_BYTES,
                },
            )
        return self._producer

    def prime(self, committed: Mapping[int, int] | None = None, timeout_s: float = 30.0) -> int:
        """Read the DLQ to its end and remember what is already there; returns how many.

        ``committed`` maps source partition -> committed offset; positions below
        it are never read again, so they are not kept.
        """
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

        kafka.ensure_topic(self.dlq, s=self._s)
        c = kafka.consumer(self._s)
        try:
            parts = kafka.partitions(c, self.dlq, timeout_s=15.0)
            ends: dict[int, int] = {}
            for p in parts:
                lo, hi = kafka.watermarks(c, self.dlq, p)
                if hi > lo:
                    ends[p] = hi
            if not ends:
                return 0
            c.assign([TopicPartition(self.dlq, p, OFFSET_BEGINNING) for p in ends])
            found = 0
            deadline = time.monotonic() + timeout_s
            while ends:
                if time.monotonic() > deadline:
                    raise DeadLetterError(f"reading {self.dlq} to its end took over {timeout_s:.0f}s; retry")
                for m in c.consume(num_messages=1000, timeout=0.5):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise DeadLetterError(f"reading {self.dlq}: {m.error()}")
                    pos = _parse_key(m.key())
                    if pos and pos[0] == self.topic and pos[2] >= (committed or {}).get(pos[1], 0):
                        self._seen.add((pos[1], pos[2]))
                        found += 1
                    if m.offset() + 1 >= ends.get(m.partition(), 0):
                        ends.pop(m.partition(), None)
                # gaps (transaction markers, compaction) can end a partition without a record
                for tp in c.position([TopicPartition(self.dlq, p) for p in list(ends)]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition, None)
            return found
        finally:
            c.close()

    def send(
        self,
        value: bytes | None,
        reason: str,
        *,
        partition: int,
        offset: int,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> bool:
        """Dead-letter one record; False when this position was dead-lettered before."""
        if (partition, offset) in self._seen:
            self.duplicates_skipped += 1
            return False
        self._seen.add((partition, offset))
        headers: list[tuple[str, bytes | None]] = [
            ("reason", reason.encode()),
            ("source_topic", self.topic.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
            ("original_key", key),
            ("original_timestamp", None if timestamp_ms is None else str(timestamp_ms).encode()),
        ]
        producer = self._client()
        for attempt in range(100):
            try:
                producer.produce(
                    self.dlq,
                    value=value,
                    key=position_key(self.topic, partition, offset),
                    headers=headers,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1 * min(attempt + 1, 10))
        else:
            raise DeadLetterError(f"producer queue for {self.dlq} stayed full")
        producer.poll(0)
        self.sent += 1
        return True

    def _delivered(self, err: Any, msg: Message) -> None:
        if err is not None:
            self._failures.append(str(err))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every dead letter is durable; call before committing offsets."""
        if self._producer is None:
            return
        left = self._producer.flush(timeout_s)
        if left or self._failures:
            detail = self._failures[0] if self._failures else f"{left} still queued"
            raise DeadLetterError(f"dead letters to {self.dlq} not written ({detail}); offsets not committed")


class Validator:
    """Validates records of one topic per message and dead-letters the bad ones.

    Call :meth:`check` (a confluent-kafka message) or :meth:`check_value` (raw
    parts, e.g. from a quixstreams job) for every record; it returns the event,
    or None when the record went to the DLQ. Call :meth:`prime` when partitions
    are assigned and :meth:`flush` before every commit.
    """

    def __init__(
        self,
        topic: str,
        *,
        max_bytes: int | None = None,
        s: Settings | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        s = s or settings()
        self.topic = topic
        self.max_bytes = max_bytes or s.max_event_bytes
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters(topic, s=s)
        self.valid = 0
        self.by_reason: Counter[str] = Counter()
        self._offline = False

    @classmethod
    def offline(cls, topic: str, max_bytes: int | None = None) -> Validator:
        """A validator that only counts (no broker, no DLQ); for examples and dry runs."""
        v = cls(topic, max_bytes=max_bytes, dead_letters=DeadLetters(topic))
        v._offline = True
        return v

    def prime(self, committed: Mapping[int, int] | None = None) -> int:
        """Remember the positions already in the DLQ (see the module docstring)."""
        return 0 if self._offline else self.dead_letters.prime(committed)

    def check(self, msg: Message) -> Event | None:
        """Validate one consumed message; dead-letter it when malformed."""
        ts_type, ts = msg.timestamp()
        return self.check_value(
            msg.value(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
            timestamp_ms=ts if ts_type else None,
        )

    def check_value(
        self,
        value: bytes | None,
        *,
        partition: int,
        offset: int,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> Event | None:
        """Validate one record value; dead-letter it when malformed."""
        event, reason = validate(value, self.max_bytes)
        if reason is None:
            self.valid += 1
            return event
        if self._offline:
            self.by_reason[reason] += 1
        elif self.dead_letters.send(
            value, reason, partition=partition, offset=offset, key=key, timestamp_ms=timestamp_ms
        ):
            self.by_reason[reason] += 1
        return None

    def flush(self, timeout_s: float = 30.0) -> None:
        """Make every dead letter durable; raises DeadLetterError when one failed."""
        if not self._offline:
            self.dead_letters.flush(timeout_s)

    def counts(self) -> dict[str, Any]:
        """``valid``, ``dead_lettered``, ``duplicates_skipped`` and ``by_reason`` (new dead letters)."""
        return {
            "valid": self.valid,
            "dead_lettered": sum(self.by_reason.values()),
            "duplicates_skipped": self.dead_letters.duplicates_skipped,
            "by_reason": dict(sorted(self.by_reason.items())),
        }


def _commit(c: Consumer, v: Validator, topic: str, positions: dict[int, int]) -> None:
    from confluent_kafka import TopicPartition

    if not positions:
        return
    v.flush()  # dead letters first: a committed offset never outruns its DLQ write
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    positions.clear()


def validate_topic(
    topic: str,
    *,
    from_beginning: bool = True,
    max_records: int | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Validate ``topic`` as consumer group ``workbench.validate.<topic>``, dead-lettering bad records.

    It resumes from the group's committed offsets; with none, it starts at the
    beginning (``from_beginning``) or the end. It commits after every batch and
    stops after ``max_records`` records or ``timeout_s`` seconds without one
    (counted from when the group assigned it partitions); with neither it runs
    until interrupted. Returns the counts of
    :meth:`Validator.counts`.
    """
    from confluent_kafka import KafkaError

    s = settings()
    if topic not in kafka.list_topics(s=s):
        raise WorkbenchError(f"topic {topic!r} does not exist; list topics with `workbench stack status`")
    v = Validator(topic, s=s)
    kafka.ensure_topic(v.dead_letters.dlq, s=s)
    c = kafka.consumer(
        s,
        **{
            "group.id": f"workbench.validate.{topic}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        },
    )

    joined: list[float] = []  # when partitions were first assigned: idleness counts from then

    def on_assign(consumer: Consumer, parts: list[TopicPartition]) -> None:
        committed = consumer.committed(parts, timeout=30)
        v.prime({tp.partition: tp.offset for tp in committed if tp.offset >= 0})
        joined.append(time.monotonic())

    positions: dict[int, int] = {}

    def on_revoke(consumer: Consumer, parts: list[TopicPartition]) -> None:
        _commit(consumer, v, topic, positions)  # hand over only what is durably done

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    seen = 0
    started = last_record = time.monotonic()
    try:
        while max_records is None or seen < max_records:
            want = 500 if max_records is None else min(500, max_records - seen)
            msgs = c.consume(num_messages=want, timeout=0.5)
            got = False
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise WorkbenchError(f"consuming {topic}: {m.error()}")
                v.check(m)
                positions[m.partition()] = m.offset() + 1
                seen += 1
                got = True
            if got:
                _commit(c, v, topic, positions)
                last_record = time.monotonic()
            elif timeout_s is not None:
                now = time.monotonic()
                # joining the group can take a while under load; it is not idleness
                if joined and now - max(last_record, joined[0]) >= timeout_s:
                    break
                if not joined and now - started >= timeout_s + JOIN_GRACE_S:
                    break
    finally:
        try:
            _commit(c, v, topic, positions)
        finally:
            c.close()
    return v.counts()
