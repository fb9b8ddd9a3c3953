"""Paced producing of events to Kafka, with a live progress display.

One loop serves the simulator and the dataset replayers: events are keyed by
``session_id`` (order within a session is kept), the record timestamp is left
to the client (send time), and Ctrl-C stops cleanly after flushing. A *pacer*
says when each event is due, in seconds after the start of the run.

>>> pace = rate_pacer(100.0)
>>> pace({}), pace({}), pace({})
(0.0, 0.01, 0.02)
>>> pace = event_time_pacer(speedup=10.0)
>>> pace({"event_time_ms": 5_000}), pace({"event_time_ms": 25_000})
(0.0, 2.0)
>>> parse_offset_s("1d"), parse_offset_s("90m"), parse_offset_s("30")
(86400.0, 5400.0, 30.0)
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.streams.events import Event, encode

if TYPE_CHECKING:
    from workbench.config import Settings

Pacer = Callable[[Event], float]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def rate_pacer(events_per_s: float) -> Pacer:
    """Due times for a steady ``events_per_s``."""
    if events_per_s <= 0:
        raise ValueError("events_per_s must be > 0")
    n = 0

    def due(_: Event) -> float:
        nonlocal n
        n += 1
        return (n - 1) / events_per_s

    return due


def event_time_pacer(speedup: float = 1.0, origin_ms: int | None = None) -> Pacer:
    """Due times that follow event time, compressed by ``speedup`` (origin: the first event, by default)."""
    if not speedup > 0 or math.isinf(speedup):
        raise ValueError("speedup must be a finite number > 0 (use no pacer for 'as fast as possible')")
    origin: list[int] = [] if origin_ms is None else [origin_ms]

    def due(event: Event) -> float:
        if not origin:
            origin.append(event["event_time_ms"])
        return float((event["event_time_ms"] - origin[0]) / 1000.0 / speedup)

    return due


def parse_offset_s(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"30d"`` or plain seconds, as seconds."""
    t = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            return float(t[: -len(unit)]) * _UNITS[unit]
    return float(t)


def parse_time_ms(text: str, origin_ms: int) -> int:
    """An ISO-8601 instant (UTC unless it says otherwise), or an offset after ``origin_ms`` like ``"15d"``."""
    try:
        return origin_ms + int(parse_offset_s(text) * 1000)
    except ValueError:
        pass
    try:
        return parse_iso_ms(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use an offset like 15d / 90m, or an ISO time)") from None


def parse_iso_ms(text: str) -> int:
    """An ISO-8601 instant as epoch ms; UTC unless it names a zone.

    >>> parse_iso_ms("2024-01-01T00:00:00")
    1704067200000
    """
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ProduceStats:
    """What a producing run did."""

    topic: str
    produced: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}

    def line(self) -> str:
        stop = " (interrupted)" if self.interrupted else ""
        return (f"produced {self.produced} events to {self.topic!r} in {self.elapsed_s:.1f} s "
                f"({self.rate:,.0f}/s), {self.errors} errors, event time {_iso(self.first_event_ms)} .. "
                f"{_iso(self.last_event_ms)}{stop}")


def _progress(enabled: bool, total: int | None) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns: list[Any] = [TextColumn("{task.description}")]
    if total:
        columns.append(BarColumn())
    columns += [TextColumn("{task.completed:>10,.0f} produced"), TextColumn("{task.fields[rate]:>8,.0f}/s"),
                TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=not enabled, refresh_per_second=5)


def produce_events(
    events: Iterable[Event],
    topic: str,
    *,
    pacer: Pacer | None = None,
    max_events: int | None = None,
    duration_s: float | None = None,
    total: int | None = None,
    progress: bool = False,
    description: str = "producing",
    s: Settings | None = None,
) -> ProduceStats:
    """Send ``events`` to ``topic`` keyed by session, paced by ``pacer`` (None: as fast as possible).

    Stops after ``max_events`` events, after ``duration_s`` wall-clock seconds,
    when the events run out, or on Ctrl-C; it always flushes first.
    """
    from workbench.streams.kafka import producer

    stats = ProduceStats(topic)
    # idempotence keeps per-partition order even when librdkafka retries
    prod = producer(s, **{"enable.idempotence": True})
    delivered = [0, 0]  # ok, failed

    def on_delivery(err: Any, _msg: Any) -> None:
        delivered[1 if err is not None else 0] += 1

    start = last_draw = time.monotonic()
    sent = 0
    clock_started = False
    with _progress(progress, total or max_events) as bar:
        task = bar.add_task(description, total=total or max_events, rate=0.0, errors=0, start=False)

        def refresh() -> None:
            nonlocal last_draw
            prod.poll(0)
            now = time.monotonic()
            if now - last_draw > 0.2:
                last_draw = now
                bar.update(task, completed=delivered[0], rate=delivered[0] / max(now - start, 1e-9),
                           errors=delivered[1])

        try:
            for event in events:
                if not clock_started:
                    # the run's clock starts with the first event, not with the generator's warm-up
                    start, last_draw, clock_started = time.monotonic(), time.monotonic(), True
                    bar.start_task(task)
                if max_events is not None and sent >= max_events:
                    break
                if pacer is not None:
                    due = start + pacer(event)
                    if duration_s is not None:
                        due = min(due, start + duration_s)
                    while (wait := due - time.monotonic()) > 0.001:
                        prod.poll(min(wait, 0.1))  # serve delivery reports while waiting
                        refresh()
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                value = encode(event)
                while True:
                    try:
                        prod.produce(topic, value, key=event["session_id"].encode(), on_delivery=on_delivery)
                        break
                    except BufferError:
                        prod.poll(0.05)  # queue full: let deliveries drain
                sent += 1
                if stats.first_event_ms is None:
                    stats.first_event_ms = event["event_time_ms"]
                stats.last_event_ms = event["event_time_ms"]
                if pacer is not None or sent % 500 == 0:  # unpaced runs check less often: it costs
                    refresh()
        except KeyboardInterrupt:
            stats.interrupted = True
        finally:
            try:
                left = prod.flush(30)
            except KeyboardInterrupt:
                stats.interrupted = True
                left = len(prod)
            stats.elapsed_s = time.monotonic() - start
            stats.produced, stats.errors = delivered[0], delivered[1] + left
            bar.update(task, completed=stats.produced, rate=stats.rate, errors=stats.errors)
    return stats


def simulate_to_kafka(
    rate: float,
    duration_s: float | None = None,
    *,
    days: float | None = None,
    seed: int = 0,
    topic: str | None = None,
    shift_at: str | int | None = None,
    start_ms: int | None = None,
    max_events: int | None = None,
    n_users: int = 5000,
    n_items: int = 2000,
    progress: bool = False,
    s: Settings | None = None,
) -> dict[str, Any]:
    """Produce shop-simulator events to Kafka and return the counts.

    *Live* (``days=None``): event times are wall-clock now; session arrivals are
    scaled so about ``rate`` events/s occur, and the run lasts ``duration_s``
    (None: until Ctrl-C). *History* (``days=D``): D days of events ending now
    (or starting at ``start_ms``), sent at ``rate`` events/s, or as fast as
    possible when ``rate`` is 0; ``duration_s`` caps the wall-clock time.
    ``shift_at`` is epoch ms, an ISO time, or an offset after the first
    simulated instant such as ``"15d"``.
    """
    from workbench.config import settings
    from workbench.streams.kafka import ensure_topic
    from workbench.streams.simulator import ShopSimulator

    if rate < 0 or (days is None and rate == 0):
        raise ValueError("rate must be > 0 (or 0 with days, meaning as fast as possible)")
    if days is not None and days <= 0:
        raise ValueError("days must be > 0")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    s = s or settings()
    topic = topic or s.events_topic
    now_ms = int(time.time() * 1000)
    if days is None:
        span_start, span_s = now_ms, duration_s if duration_s is not None else 100 * 365 * 86400.0
    else:
        span_s = days * 86400
        span_start = start_ms if start_ms is not None else now_ms - int(span_s * 1000)
    shift_ms = None
    if shift_at is not None:
        shift_ms = shift_at if isinstance(shift_at, int) else parse_time_ms(shift_at, span_start)
    sim = ShopSimulator(seed, n_users=n_users, n_items=n_items, shift_at_ms=shift_ms,
                        diurnal_amplitude=0.0 if days is None else 0.5)
    ensure_topic(topic, s=s)
    if days is None:
        # sessions already under way at the start, bounded so warm-up stays cheap at high rates
        events = sim.events(span_start, span_s, events_per_s=rate, warmup_s=min(900.0, 1_000_000 / rate))
        pacer: Pacer | None = event_time_pacer(1.0, origin_ms=span_start)
    else:
        events = sim.events(span_start, span_s)
        pacer = rate_pacer(rate) if rate > 0 else None
    stats = produce_events(events, topic, pacer=pacer, max_events=max_events, duration_s=duration_s,
                           progress=progress, description="simulate", s=s)
    out = stats.as_dict()
    out["shift_at_ms"] = shift_ms
    out["summary"] = stats.line()
    return out
