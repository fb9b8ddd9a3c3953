"""Replay: a bounded read of a topic's history into the same typed DataFrame as a tap.

Bounds are event times or offsets; ``start`` is inclusive and ``end`` exclusive.

* Event times: a datetime, pandas Timestamp, ISO string, or epoch ms (an int at
  or above 10**12). Records are kept when ``start <= event_time < end``. Topics
  without ``event_time_ms`` are bounded by their Kafka timestamps instead.
* Offsets: an int (the same offset in every partition; negative counts back
  from the end, so ``replay(topic, -100)`` is the last 100 of each partition)
  or a partition -> offset map. A ``start`` map also picks the partitions read. ``end`` defaults to the
  high watermark at the time of the call, so a replay always terminates.

How event-time bounds find their offsets
----------------------------------------
Kafka indexes send times, not event times, so a seek by time is only sound
where the two move together. For every partition we sample records at its
start, middle and end and measure ``kafka_ts - event_time``. When that skew is
roughly constant (its spread across the samples is at most ``SKEW_SPREAD_MS``),
we seek with ``offsets_for_times`` to ``start + min_skew - margin`` and stop at
``end + max_skew + margin`` (``margin`` = spread + ``SKEW_MARGIN_MS``), then
filter by event time exactly. Otherwise (history replayed from a data set, say,
where old event times were sent today) we scan the whole partition and filter.
Either way the result is exact; the seek only saves reading.

Rows come in partition order, and by offset within a partition (so per-key
order is kept); ``df.attrs["malformed"]`` counts the records skipped as malformed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.config import settings
from workbench.errors import WorkbenchError
from workbench.streams import kafka
from workbench.streams.kafka import partitions, watermarks
from workbench.taps.positions import is_offset, offsets_at, to_epoch_ms
from workbench.taps.records import Decoder, Mode, Row, event_time_ms, to_frame

if TYPE_CHECKING:
    import pandas as pd
    from confluent_kafka import Consumer

Bound = Any  # datetime | pandas.Timestamp | str | int | Mapping[int, int] | None

SKEW_SPREAD_MS = 5 * 60_000
SKEW_MARGIN_MS = 60_000
SAMPLE_RECORDS = 20
STALL_S = 15.0
PROGRESS_MIN_RECORDS = 200_000


def _offset_bound(
    bound: int | Mapping[int, int], parts: list[int], default: dict[int, int], highs: dict[int, int]
) -> dict[int, int]:
    """Per partition offsets; a negative offset counts back from the high watermark."""
    wanted = {p: int(bound.get(p, default[p])) for p in parts} if isinstance(bound, Mapping) else (
        dict.fromkeys(parts, int(bound)))
    return {p: o if o >= 0 else max(highs[p] + o, 0) for p, o in wanted.items()}


def _read(
    c: Consumer, topic: str, spans: dict[int, tuple[int, int]], on_batch: Any, limit: int | None = None
) -> None:
    """Read ``[from, to)`` of every partition, calling ``on_batch(messages)``; ``limit`` per partition."""
    from confluent_kafka import TopicPartition

    todo = {p: (lo, hi) for p, (lo, hi) in spans.items() if hi > lo}
    if not todo:
        return
    ends = {p: hi if limit is None else min(hi, lo + limit) for p, (lo, hi) in todo.items()}
    c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in todo.items()])
    last_progress = time.monotonic()
    while ends:
        msgs = c.consume(num_messages=10_000, timeout=0.5)
        keep = []
        for m in msgs:
            if m.error():
                continue  # partition EOF is off; transient errors are retried by librdkafka
            p = m.partition()
            end = ends.get(p)
            if end is None or m.offset() >= end:
                continue
            keep.append(m)
            if m.offset() + 1 >= end:
                del ends[p]
        if keep:
            on_batch(keep)
            last_progress = time.monotonic()
        # offset gaps (transaction markers, compaction) can finish a partition without a record
        for tp in c.position([TopicPartition(topic, p) for p in ends]):
            if tp.offset >= ends[tp.partition]:
                del ends[tp.partition]
        if ends and time.monotonic() - last_progress > STALL_S:
            raise WorkbenchError(f"replay of {topic} stalled (no records for {STALL_S:.0f}s); is the broker up?")
    c.unassign()


def skew_ranges(
    c: Consumer, topic: str, spans: dict[int, tuple[int, int]], decoder: Decoder
) -> dict[int, tuple[int, int] | None]:
    """Per partition, (min, max) of ``kafka_ts - event_time`` over sampled records, or None if it varies."""
    skews: dict[int, list[int]] = {p: [] for p in spans}

    def take(msgs: list[Any]) -> None:
        for m in msgs:
            payload, _ = decoder(m.value())
            if payload is not None:
                ts = m.timestamp()[1]
                skews[m.partition()].append(ts - event_time_ms(payload, decoder.mode, ts))

    # the start, middle and end of every partition, all partitions in one read each
    for point in (0.0, 0.5, 1.0):
        _read(c, topic, {
            p: (min(lo + int((hi - lo) * point), max(lo, hi - SAMPLE_RECORDS)), hi) for p, (lo, hi) in spans.items()
        }, take, limit=SAMPLE_RECORDS)
    return {
        p: (min(v), max(v)) if v and max(v) - min(v) <= SKEW_SPREAD_MS else None for p, v in skews.items()
    }


def replay(
    topic: str | None = None,
    start: Bound = None,
    end: Bound = None,
    *,
    schema: Mode = "auto",
    progress: bool | None = None,
) -> pd.DataFrame:
    """Read ``topic`` between ``start`` and ``end`` (event times or offsets) into a typed DataFrame.

    ``progress``: show a progress bar; by default only on a terminal and for
    long replays.

    >>> import workbench as wb
    >>> wb.replay("events", "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z")  # doctest: +SKIP
    >>> wb.replay("events", {0: 100}, {0: 200})  # offsets 100..199 of partition 0  # doctest: +SKIP
    >>> wb.replay("events", -1000)  # the last 1000 records of every partition  # doctest: +SKIP
    """

    s = settings()
    topic = topic or s.events_topic
    decoder = Decoder(schema, topic=topic, events_topic=s.events_topic, max_bytes=s.max_event_bytes)
    # a short fetch wait: a replay re-assigns often and must not wait on idle partitions
    c = kafka.consumer(s, **{"client.id": f"workbench-replay-{topic}", "fetch.wait.max.ms": 20})
    try:
        parts = partitions(c, topic)
        marks = {p: watermarks(c, topic, p) for p in parts}
        lows = {p: lo for p, (lo, _) in marks.items()}
        highs = {p: hi for p, (_, hi) in marks.items()}
        if isinstance(start, Mapping):
            parts = [p for p in parts if p in start]
        froms = _offset_bound(start, parts, lows, highs) if is_offset(start) else {p: lows[p] for p in parts}
        tos = _offset_bound(end, parts, highs, highs) if is_offset(end) else {p: highs[p] for p in parts}
        t0 = None if start is None or is_offset(start) else to_epoch_ms(start)
        t1 = None if end is None or is_offset(end) else to_epoch_ms(end)
        if t0 is not None or t1 is not None:
            spans = {p: (max(froms[p], lows[p]), min(tos[p], highs[p])) for p in parts}
            skews = skew_ranges(c, topic, {p: span for p, span in spans.items() if span[1] > span[0]}, decoder)
            for p in parts:
                skew = skews.get(p)
                if skew is None:
                    continue  # scan: event time does not track send time here
                margin = skew[1] - skew[0] + SKEW_MARGIN_MS
                if t0 is not None:
                    froms[p] = max(froms[p], offsets_at(c, topic, [p], t0 + skew[0] - margin)[p])
                if t1 is not None:
                    tos[p] = min(tos[p], offsets_at(c, topic, [p], t1 + skew[1] + margin)[p])
        spans = {p: (max(froms[p], lows[p]), min(tos[p], highs[p])) for p in parts}
        return _collect(c, topic, spans, decoder, t0, t1, progress)
    finally:
        c.close()


def _collect(
    c: Consumer,
    topic: str,
    spans: dict[int, tuple[int, int]],
    decoder: Decoder,
    t0: int | None,
    t1: int | None,
    progress: bool | None,
) -> pd.DataFrame:
    by_part: dict[int, list[Row]] = {p: [] for p in spans}
    malformed: Counter[str] = Counter()
    total = sum(max(hi - lo, 0) for lo, hi in spans.values())
    if progress is None:
        progress = total >= PROGRESS_MIN_RECORDS and sys.stderr.isatty()
    bar = _progress_bar(topic, total) if progress else None
    lo_t = t0 if t0 is not None else -(2**63)
    hi_t = t1 if t1 is not None else 2**63

    def take(msgs: list[Any]) -> None:
        for m in msgs:
            raw = m.value()
            payload, reason = decoder(raw)
            if payload is None:
                malformed[reason or "unknown"] += 1
                continue
            ts = m.timestamp()[1]
            if lo_t <= event_time_ms(payload, decoder.mode, ts) < hi_t:
                by_part[m.partition()].append(payload + (m.partition(), m.offset(), ts, len(raw)))
        if bar is not None:
            bar(len(msgs))

    try:
        _read(c, topic, spans, take)
    finally:
        if bar is not None:
            bar(None)
    rows = [row for p in sorted(by_part) for row in by_part[p]]
    df = to_frame(rows, "json" if decoder.mode == "auto" else decoder.mode)
    df.attrs["malformed"] = dict(malformed)
    return df


def _progress_bar(topic: str, total: int) -> Any:
    """A rich progress bar as one callable: ``bar(n)`` advances, ``bar(None)`` closes."""
    from rich.progress import Progress

    prog = Progress(transient=True)
    task = prog.add_task(f"replay {topic}", total=total)
    prog.start()

    def bar(n: int | None) -> None:
        if n is None:
            prog.stop()
        else:
            prog.advance(task, n)

    return bar
