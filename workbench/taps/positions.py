"""Where a tap or a replay starts: times and offsets turned into partition offsets.

Times are epoch milliseconds, UTC. A naive datetime or ISO string is taken as UTC.

>>> to_epoch_ms("2023-11-14T22:13:20Z")
1700000000000
>>> to_epoch_ms(1_700_000_000_000)
1700000000000
>>> duration_ms("10m"), duration_ms("1.5s"), duration_ms("2h")
(600000, 1500, 7200000)
>>> duration_ms("yesterday") is None
True
>>> is_offset(-100), is_offset(5), is_offset(1_700_000_000_000)
(True, True, False)
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.streams.kafka import partitions, retrying, watermarks

if TYPE_CHECKING:
    from confluent_kafka import Consumer, TopicPartition

# Integers at or above this are epoch milliseconds (2001-09-09); below it, offsets.
EPOCH_MS_FLOOR = 1_000_000_000_000
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)\s*$")

Since = str | int | float | datetime | date | timedelta | None
Offsets = int | Mapping[int, int]


def duration_ms(text: str) -> int | None:
    """``"10m"`` -> 600000; None when ``text`` is not a duration."""
    m = _DURATION.match(text)
    return None if m is None else int(float(m.group(1)) * _UNITS_MS[m.group(2)])


def to_epoch_ms(value: Any) -> int:
    """A datetime, pandas Timestamp, ISO string or epoch ms as epoch milliseconds."""
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    if isinstance(value, date):
        return to_epoch_ms(datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return to_epoch_ms(datetime.fromisoformat(text))
        except ValueError as exc:
            raise WorkbenchError(f"not a time: {value!r}; use ISO 8601 like 2024-05-01T12:00:00Z") from exc
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp keeps sub-ms; we do not need it
        return to_epoch_ms(value.to_pydatetime())
    raise TypeError(f"not a time: {value!r}")


def is_offset(value: Any) -> bool:
    """True for an offset bound: a partition map, or an int closer to 0 than EPOCH_MS_FLOOR.

    Negative offsets count back from the end of each partition.
    """
    if isinstance(value, Mapping):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < EPOCH_MS_FLOOR


def _offset(value: int) -> int:
    # librdkafka's logical "n before the end" offset (RD_KAFKA_OFFSET_TAIL)
    return value if value >= 0 else -2000 + value


def offsets_at(consumer: Consumer, topic: str, parts: list[int], ts_ms: int) -> dict[int, int]:
    """Per partition, the first offset whose Kafka timestamp is >= ts_ms (the end when none)."""
    from confluent_kafka import TopicPartition

    found = retrying(
        lambda: consumer.offsets_for_times([TopicPartition(topic, p, ts_ms) for p in parts], timeout=10)
    )
    out: dict[int, int] = {}
    for tp in found:
        if tp.error:
            raise WorkbenchError(f"offsets_for_times on {topic}[{tp.partition}]: {tp.error}")
        # no record at or after ts_ms: start at the end
        out[tp.partition] = tp.offset if tp.offset >= 0 else watermarks(consumer, topic, tp.partition)[1]
    return out


def start_positions(
    consumer: Consumer, topic: str, since: Since = None, offset: Offsets | None = None
) -> list[TopicPartition]:
    """What to assign(): ``since`` is latest (None), earliest, an offset, a duration ago or a send time.

    ``offset`` (an int for every partition, or a partition -> offset map that
    also picks the partitions; negative means that many before the end) wins
    over ``since``. Times here are Kafka
    timestamps, i.e. send times, not event times.
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    parts = partitions(consumer, topic)
    if offset is None and is_offset(since):
        offset = since  # type: ignore[assignment]
    if isinstance(offset, Mapping):
        return [TopicPartition(topic, int(p), _offset(int(o))) for p, o in sorted(offset.items())]
    if offset is not None:
        return [TopicPartition(topic, p, _offset(int(offset))) for p in parts]
    if since is None or since == "latest":
        # the end as of now, not whenever the fetcher gets to ask: records
        # produced right after tap() returns must be seen
        return [TopicPartition(topic, p, watermarks(consumer, topic, p)[1]) for p in parts]
    if since == "earliest":
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
    if isinstance(since, timedelta):
        ts = int(time.time() * 1000 - since.total_seconds() * 1000)
    elif isinstance(since, str) and (ago := duration_ms(since)) is not None:
        ts = int(time.time() * 1000) - ago
    else:
        ts = to_epoch_ms(since)
    return [TopicPartition(topic, p, o) for p, o in offsets_at(consumer, topic, parts, ts).items()]
