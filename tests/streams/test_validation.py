"""The shared validation: every malformed record reaches the DLQ exactly once, with reason and bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from workbench.config import Settings
from workbench.streams import kafka
from workbench.streams.events import encode
from workbench.streams.validation import Validator, dlq_topic, validate_topic

GOOD = {
    "event_id": "e1", "event_type": "view", "event_time_ms": 1_700_000_000_000, "user_id": "u1",
    "session_id": "s1", "item_id": "i1", "category": "books", "price": 9.5,
}


def test_offline_validator_counts_without_a_broker() -> None:
    v = Validator.offline("events", max_bytes=2_000)
    assert v.check_value(encode(GOOD), partition=0, offset=0) == GOOD
    for i, raw in enumerate([b"", None, b"{", b"x" * 3_000, encode({**GOOD, "price": "x"})]):
        assert v.check_value(raw, partition=0, offset=i + 1) is None
    assert v.counts() == {
        "valid": 1, "dead_lettered": 5, "duplicates_skipped": 0,
        "by_reason": {"empty": 2, "not_json": 1, "too_large": 1, "wrong_type:price": 1},
    }


def _bad_records(s: Settings) -> list[tuple[bytes, bytes | None]]:
    return [
        (b"k1", b"not json"),
        (b"k2", b""),
        (b"k3", encode({k: v for k, v in GOOD.items() if k != "price"})),
        (b"k4", encode({**GOOD, "event_time_ms": "yesterday"})),
        (b"k5", b'{"pad": "' + b"x" * s.max_event_bytes + b'"}'),
        (b"k6", b"[]"),
    ]


def _fill(topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    p = kafka.producer()
    for key, value in records:
        p.produce(topic, key=key, value=value, timestamp=1_700_000_000_123)
    assert p.flush(30) == 0


def _read_all(topic: str) -> list[object]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = kafka.consumer()
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        total = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[object] = []
        for _ in range(100):
            out += [m for m in c.consume(1_000, timeout=0.2) if m.error() is None]
            if len(out) >= total:
                break
        return out
    finally:
        c.close()


def _crash_before_commit(topic: str, n: int) -> dict[str, object]:
    """A validator in the job's group that writes its dead letters and dies before committing."""
    from confluent_kafka import KafkaError

    v = Validator(topic)
    c = kafka.consumer(**{"group.id": f"workbench.validate.{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic], on_assign=lambda cons, parts: v.prime())
    seen = 0
    try:
        for _ in range(200):
            for m in c.consume(500, timeout=0.2):
                if m.error() is None or m.error().code() != KafkaError._PARTITION_EOF:
                    v.check(m)
                    seen += 1
            if seen >= n:
                break
        v.flush()  # the dead letters are durable ...
    finally:
        c.close()  # ... but no offset was committed (auto-commit is off)
    assert seen == n
    return v.counts()


@pytest.mark.broker
def test_each_malformed_record_reaches_the_dlq_exactly_once_across_a_crash(
    broker: Settings, new_topic: Callable[..., str]
) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions

    topic = new_topic("dlq", config={"retention.ms": "-1"})  # 2023 timestamps below
    good = [(f"s{i}".encode(), encode({**GOOD, "event_id": f"e{i}"})) for i in range(20)]
    bad = _bad_records(broker)
    _fill(topic, good + bad)

    first = _crash_before_commit(topic, 26)
    assert first["dead_lettered"] == 6 and first["valid"] == 20
    dead = _read_all(dlq_topic(topic))
    assert len(dead) == 6

    # the restarted job reads everything again (nothing was committed) and adds nothing
    again = validate_topic(topic, max_records=26, timeout_s=30)  # bounded by count: no timing in the test
    assert again == {"valid": 20, "dead_lettered": 0, "duplicates_skipped": 6, "by_reason": {}}
    assert len(_read_all(dlq_topic(topic))) == 6

    # it committed this time: a third run reads nothing, new bad records go to the DLQ once
    assert validate_topic(topic, timeout_s=1.0)["valid"] == 0
    _fill(topic, [(b"k7", b"{oops"), (b"k8", b"{oops")])
    third = validate_topic(topic, max_records=2, timeout_s=30)
    assert third == {"valid": 0, "dead_lettered": 2, "duplicates_skipped": 0, "by_reason": {"not_json": 2}}
    dead = _read_all(dlq_topic(topic))
    assert len(dead) == 8
    assert len({m.key() for m in dead}) == 8  # type: ignore[attr-defined]

    # each dead letter carries the original bytes, the reason and where it came from
    by_key = {dict(m.headers())["original_key"]: m for m in dead}  # type: ignore[attr-defined]
    for key, value in bad:
        m = by_key[key]
        h = dict(m.headers())  # type: ignore[attr-defined]
        assert (m.value() or b"") == value  # type: ignore[attr-defined]
        assert h["source_topic"] == topic.encode()
        assert m.key() == f"{topic}:{int(h['source_partition'])}:{int(h['source_offset'])}".encode()  # type: ignore[attr-defined]
        assert h["original_timestamp"] == b"1700000000123"
    reasons = {dict(m.headers())["original_key"]: dict(m.headers())["reason"] for m in dead}  # type: ignore[attr-defined]
    assert reasons[b"k1"] == b"not_json" and reasons[b"k3"] == b"missing:price"
    assert reasons[b"k4"] == b"wrong_type:event_time_ms" and reasons[b"k5"] == b"too_large"
    assert reasons[b"k2"] == b"empty" and reasons[b"k6"] == b"not_object"

    # the job commits its offsets (the same admin check proves a tap commits none)
    admin = kafka.admin()
    group = f"workbench.validate.{topic}"
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
    assert sum(tp.offset for tp in committed.topic_partitions if tp.topic == topic) == 28
    admin.delete_consumer_groups([group])[group].result(timeout=10)  # leave the broker as we found it


@pytest.mark.broker
def test_the_same_position_twice_in_one_process_is_sent_once(new_topic: Callable[..., str]) -> None:
    topic = new_topic("dlqtwice")
    v = Validator(topic)
    assert v.prime() == 0
    for _ in range(3):
        v.check_value(b"nope", partition=1, offset=42, key=None, timestamp_ms=None)
    v.flush()
    assert v.counts()["dead_lettered"] == 1 and v.counts()["duplicates_skipped"] == 2
    # a fresh validator primed past the committed offset forgets it; primed before, it remembers
    assert Validator(topic).prime({1: 43}) == 0
    assert Validator(topic).prime({1: 42}) == 1
    assert len(_read_all(dlq_topic(topic))) == 1


_VALUES = [None, True, 0, 7, 2**70, 1.5, "", "view", "click", "x", [], {}]


def test_the_fast_check_names_the_same_reason_as_the_full_one() -> None:
    """check's exact-type pass must accept exactly what the full check accepts, and defer the rest."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from workbench.streams.events import FIELDS, _check, check

    names = st.sampled_from([*FIELDS, "extra"])
    event = st.dictionaries(names, st.sampled_from(_VALUES), max_size=len(FIELDS) + 1)
    # a valid event with some fields overridden and some dropped
    patched = st.builds(
        lambda over, drop: {k: v for k, v in {**GOOD, **over}.items() if k not in drop},
        event, st.sets(names, max_size=2),
    )

    @settings(max_examples=1_000, database=None, derandomize=True)
    @given(st.one_of(event, patched, st.sampled_from(_VALUES)))
    def agree(value: object) -> None:
        assert check(value) == _check(value)

    agree()
    assert check(GOOD) is None and check({**GOOD, "price": True}) == "wrong_type:price"
