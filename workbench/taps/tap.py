"""Live taps: watch a topic from a notebook without disturbing anything.

A tap reads with ``assign()`` on a background thread; it never joins a consumer
group, never commits an offset and never writes to any topic. What it reads
goes into a ring buffer bounded by rows and bytes, in arrival order (so the
order within each partition, and each key, is kept). Malformed records are
only counted and shown, with their reasons and a preview of their bytes.

    >>> import workbench as wb
    >>> with wb.tap("events", since="10m") as t:   # doctest: +SKIP
    ...     t.take(100, timeout=5)                  # the next 100 records
    ...     t.df()                                  # everything buffered so far
    ...     t.stats()["messages_per_s"]
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from workbench.config import Settings, settings
from workbench.errors import WorkbenchError
from workbench.streams import kafka
from workbench.taps.buffer import RingBuffer
from workbench.taps.positions import Offsets, Since, start_positions
from workbench.taps.records import Decoder, Mode, Row, schema_summary, to_frame

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    from confluent_kafka import Consumer, Message

BATCH = 10_000  # consume() batch: large batches keep the per-message cost in C
MALFORMED_KEPT = 1_000  # recent malformed records kept for tap.malformed()
PREVIEW_BYTES = 120
# Larger fetches than librdkafka's 1 MB per partition read a backlog faster; a
# smaller prefetch queue than its defaults (64 MB, 100k messages per partition)
# keeps a tap's memory mostly its buffer.
CONSUMER_CONF: dict[str, Any] = {
    "max.partition.fetch.bytes": 4 * 2**20,
    "queued.max.messages.kbytes": 16 * 2**10,
    "queued.min.messages": 20_000,
}
SCHEMA_SAMPLE_ROWS = 10_000


class Rate:
    """Messages and bytes per one-second bin, for rates and the sparkline.

    >>> r = Rate(); r.add(10, 500, now=100.2); r.add(5, 250, now=100.9); r.add(3, 30, now=102.0)
    >>> r.series(now=102.5, seconds=3)
    [15, 0, 3]
    """

    def __init__(self, keep_s: int = 120) -> None:
        self._bins: deque[list[int]] = deque(maxlen=keep_s)
        self.started = time.monotonic()

    def add(self, msgs: int, nbytes: int, now: float | None = None) -> None:
        sec = int(time.monotonic() if now is None else now)
        if self._bins and self._bins[-1][0] == sec:
            self._bins[-1][1] += msgs
            self._bins[-1][2] += nbytes
        else:
            self._bins.append([sec, msgs, nbytes])

    def per_second(self, window_s: int = 10) -> tuple[float, float]:
        """(messages/s, bytes/s) over the last ``window_s`` seconds (or since start)."""
        now = time.monotonic()
        span = max(min(float(window_s), now - self.started), 1e-3)
        msgs = nbytes = 0
        for sec, m, b in list(self._bins):
            if sec >= now - window_s:
                msgs += m
                nbytes += b
        return msgs / span, nbytes / span

    def series(self, now: float | None = None, seconds: int = 60) -> list[int]:
        """Messages per second for each of the last ``seconds`` seconds, oldest first."""
        last = int(time.monotonic() if now is None else now)
        counts = {sec: m for sec, m, _ in list(self._bins)}
        return [counts.get(sec, 0) for sec in range(last - seconds + 1, last + 1)]


class Tap:
    """A live, read-only view of one topic; see :func:`tap`."""

    def __init__(
        self,
        topic: str | None = None,
        *,
        since: Since = None,
        offset: Offsets | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        schema: Mode = "auto",
        s: Settings | None = None,
    ) -> None:
        self._s = s or settings()
        self.topic = topic or self._s.events_topic
        self.since, self.offset = since, offset
        self._buffer = RingBuffer(max_rows or self._s.tap_max_rows, max_bytes or self._s.tap_max_bytes)
        self._decoder = Decoder(
            schema, topic=self.topic, events_topic=self._s.events_topic, max_bytes=self._s.max_event_bytes
        )
        self.rate = Rate()
        self.malformed_counts: Counter[str] = Counter()
        self._malformed: deque[tuple[int, int, int, str, int, str]] = deque(maxlen=MALFORMED_KEPT)
        self._last_offset: dict[int, int] = {}
        self._high: dict[int, int] = {}
        self._lag: dict[int, int | None] = {}
        self.consumed = 0  # every record read, malformed or not
        self.error: str | None = None
        self._cond = threading.Condition()
        self._takers: list[list[Row]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._views: list[Any] = []  # live notebook widgets, stopped with the tap

    # lifecycle ---------------------------------------------------------------

    def start(self) -> Tap:
        """Resolve the start position, assign, and start reading (once: a stopped tap stays stopped)."""
        if self._thread is not None:
            return self
        c = kafka.consumer(self._s, **CONSUMER_CONF, **{"client.id": f"workbench-tap-{self.topic}"})
        try:
            assignment = start_positions(c, self.topic, self.since, self.offset)
            c.assign(assignment)
        except BaseException:
            c.close()
            raise
        self._assignment = assignment
        self._thread = threading.Thread(target=self._run, args=(c,), name=f"tap:{self.topic}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading (idempotent); the buffered rows stay available."""
        self._stop.set()
        for view in self._views:
            view.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def __enter__(self) -> Tap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the consuming thread ------------------------------------------------------

    def _run(self, c: Consumer) -> None:
        # the first watermark query waits for the broker; let the first fetch go out before it
        next_marks = time.monotonic() + 0.5
        try:
            while not self._stop.is_set():
                msgs = c.consume(num_messages=BATCH, timeout=0.2)
                if msgs:
                    self._ingest(msgs)
                if time.monotonic() >= next_marks:
                    self._refresh_lag(c)
                    next_marks = time.monotonic() + 1.0
        except Exception as exc:  # surfaced in stats() and repr; a tap never kills the kernel
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            c.close()  # no group was joined and auto-commit is off: close commits nothing
            self._stop.set()
            with self._cond:
                self._cond.notify_all()

    def _ingest(self, msgs: list[Message]) -> None:
        rows: list[Row] = []
        append = rows.append
        nbytes = bad_bytes = 0
        last = self._last_offset
        decoder = self._decoder
        max_bytes = decoder.max_bytes
        decode = decoder.fast()  # a plain function once the mode is known: no per-record dispatch
        for m in msgs:
            if m.error() is not None:
                self.error = str(m.error())
                continue
            raw = m.value()
            payload, reason = decode(raw, max_bytes) if decode else decoder(raw)
            p = m.partition()
            o = m.offset()
            last[p] = o
            if payload is not None:
                n = len(raw)  # type: ignore[arg-type]
                nbytes += n
                append(payload + (p, o, m.timestamp()[1], n))
            else:
                bad_bytes += len(raw or b"")
                self._count_malformed(raw, reason or "unknown", p, o, m.timestamp()[1])
            if decode is None:
                decode = decoder.fast()
        self._buffer.extend(rows, nbytes)
        self.consumed += len(msgs)
        self.rate.add(len(msgs), nbytes + bad_bytes)
        with self._cond:
            for taker in self._takers:
                taker.extend(rows)
            self._cond.notify_all()

    def _count_malformed(self, raw: bytes | None, reason: str, p: int, o: int, ts: int) -> None:
        self.malformed_counts[reason] += 1
        preview = (raw or b"")[:PREVIEW_BYTES].decode("utf-8", "backslashreplace")
        self._malformed.append((p, o, ts, reason, len(raw or b""), preview))

    def _refresh_lag(self, c: Consumer) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

        for tp in self._assignment:
            p = tp.partition
            part = TopicPartition(self.topic, p)
            lo, hi = c.get_watermark_offsets(part, cached=True)
            if hi < 0:  # nothing fetched yet: ask the broker
                try:
                    lo, hi = c.get_watermark_offsets(part, timeout=2)
                except KafkaException:  # e.g. no leader yet; the next refresh asks again
                    continue
            self._high[p] = hi
            if p in self._last_offset:
                self._lag[p] = max(hi - self._last_offset[p] - 1, 0)
            else:  # nothing read yet: the position is where we asked to start
                pos = c.position([part])[0].offset
                start = tp.offset
                if pos < 0:
                    pos = {OFFSET_END: hi, OFFSET_BEGINNING: lo}.get(start, start if start >= 0 else -1)
                self._lag[p] = max(hi - pos, 0) if pos >= 0 else None

    # reading ---------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """``events`` (typed event columns) or ``json`` (inferred columns); ``auto`` until a record arrives."""
        return self._decoder.mode

    def _frame(self, rows: list[Row]) -> pd.DataFrame:
        return to_frame(rows, "json" if self.mode == "auto" else self.mode)

    def df(self, last: int | None = None) -> pd.DataFrame:
        """The buffered rows (the ``last`` n when given) as a typed DataFrame, oldest first."""
        return self._frame(self._buffer.rows(last))

    def take(self, n: int, timeout: float = 10.0) -> pd.DataFrame:
        """Wait for up to ``n`` records that arrive from now on; returns after ``timeout`` s at most."""
        if n <= 0:
            return self._frame([])
        self.start()
        got: list[Row] = []
        deadline = time.monotonic() + timeout
        with self._cond:
            self._takers.append(got)
            try:
                while len(got) < n and self.running:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            finally:
                self._takers.remove(got)
        return self._frame(got[:n])

    def wait(self, rows: int, timeout: float = 10.0) -> bool:
        """Block until ``rows`` valid records were buffered since start; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffer.appended < rows:
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    return self._buffer.appended >= rows
                self._cond.wait(left)
        return True

    def malformed(self) -> pd.DataFrame:
        """The most recent malformed records: position, send time, reason, size and a byte preview."""
        import pandas as pd

        cols = ["partition", "offset", "kafka_ts", "reason", "size_bytes", "preview"]
        df = pd.DataFrame(list(self._malformed), columns=cols)
        df["kafka_ts"] = pd.to_datetime(df["kafka_ts"].astype("int64"), unit="ms", utc=True).dt.as_unit("ms")
        return df

    def stats(self) -> dict[str, Any]:
        """Rates, lag per partition, buffer use, the inferred schema with null rates, malformed counts."""
        msgs_s, bytes_s = self.rate.per_second()
        sample = self.df(last=SCHEMA_SAMPLE_ROWS)
        return {
            "topic": self.topic,
            "running": self.running,
            "mode": self.mode,
            "consumed": self.consumed,
            "messages_per_s": round(msgs_s, 1),
            "bytes_per_s": round(bytes_s, 1),
            "lag": dict(sorted(self._lag.items())),
            "high_watermarks": dict(sorted(self._high.items())),
            "buffered_rows": len(self._buffer),
            "buffered_bytes": self._buffer.nbytes,
            "evicted_rows": self._buffer.evicted,
            "max_rows": self._buffer.max_rows,
            "max_bytes": self._buffer.max_bytes,
            "schema": schema_summary(sample),
            "malformed": dict(sorted(self.malformed_counts.items())),
            "error": self.error,
        }

    # display ---------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._thread else "not started")
        msgs_s, _ = self.rate.per_second()
        bad = sum(self.malformed_counts.values())
        text = (
            f"<Tap {self.topic!r} {state}: {len(self._buffer):,} rows buffered "
            f"(max {self._buffer.max_rows:,}), {msgs_s:,.0f} msg/s, {bad:,} malformed>"
        )
        return text if self.error is None else f"{text[:-1]}, error: {self.error}>"

    def _repr_html_(self) -> str:
        from workbench.taps.view import html

        return html(self)

    def _ipython_display_(self) -> None:
        from workbench.taps.view import show

        show(self)

    def _display_(self) -> Any:
        """marimo's display protocol: a plotly sparkline above the latest rows."""
        from workbench.taps.view import marimo_view

        return marimo_view(self)

    def figure(self) -> go.Figure:
        """The rate sparkline (messages per second over the last minute) as a plotly figure."""
        from workbench.taps.view import sparkline

        return sparkline(self)


def tap(
    topic: str | None = None,
    *,
    since: Since = None,
    offset: Offsets | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
    schema: Mode = "auto",
) -> Tap:
    """Open and start a live tap on ``topic`` (the events topic by default).

    ``since``: None or ``"latest"`` (default), ``"earliest"``, a duration ago
    like ``"10m"``, a send time (datetime, pandas Timestamp, ISO string, epoch
    ms), or an offset (int). ``offset``: an int for every partition, or a
    partition -> offset map that also selects the partitions. ``max_rows`` and
    ``max_bytes`` bound the buffer (settings ``tap_max_rows``/``tap_max_bytes``
    by default). ``schema``: ``"events"``, ``"json"`` or ``"auto"``.
    """
    if max_rows is not None and max_rows < 1:
        raise WorkbenchError("max_rows must be at least 1")
    return Tap(
        topic, since=since, offset=offset, max_rows=max_rows, max_bytes=max_bytes, schema=schema
    ).start()
