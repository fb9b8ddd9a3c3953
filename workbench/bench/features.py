"""``workbench bench features``: stream, backfill and incremental-state throughput, each with its baseline.

One fixed definition throughout: a 5-minute sliding count keyed by item
(:data:`FEATURE`), over synthetic shop events whose items follow Zipf(1.1)
popularity over ``items`` items and whose event times advance in order.

* **stream**: ``stream_events`` events are produced to a one-partition bench
  topic on the real broker (one partition so every record is on time and
  emits exactly one update, which lets ``app.run(count=...)`` stop exactly at
  the end). The real pipeline (:func:`workbench.features.job.pipeline`:
  projection, ``group_by`` through a repartition topic, the RocksDB-backed
  sliding step, produce to ``features.<set>``) is timed next to a plain
  confluent-kafka consumer that ``json.loads`` every record of the same
  topic, and next to the same topology with trivial steps (the floor). Each
  reports events/s and process CPU seconds (librdkafka's threads included),
  so events per CPU second is the per-core figure; the three run back to back
  in each of ``rounds`` rounds and the medians are reported.
* **backfill**: :func:`workbench.features.backfill.backfill` over an
  in-memory frame of ``backfill_events`` events, against the stream path
  replayed broker-less (:func:`workbench.features.stream.run_stream_on_frame`)
  over its first ``replay_events`` events (the previous per-key mask
  backfill, kept as the reference, is timed on that sample too).
* **incremental**: one simulated month of shop events
  (:class:`workbench.streams.simulator.ShopSimulator`) and a 30-day
  per-user spend (sum of price) and event count refreshed every hour, kept
  incrementally in hourly buckets (add the new hour, subtract the one that
  left the window) versus recomputed from scratch over the 30-day window each
  hour. Both give every user's value each hour; they are checked equal.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import ITEM, USER, Feature

T0_MS = 1_700_000_000_000
SLIDING_MS = 5 * 60_000
# Event-time rate of the synthetic shop (events/s over all items). The stream's
# sliding state holds a key's records of the last 5 minutes, so its cost per
# record grows with this rate; the shop simulator's own traffic is about 0.6/s.
EVENTS_PER_S = 1.0
FEATURE = Feature("items_5m", ITEM, win.Sliding(size_ms=SLIDING_MS), agg.Count(), source="events")
HOUR_MS = 3_600_000
MONTH_HOURS = 30 * 24


def _cpu_s() -> float:
    """Process CPU seconds, user + system, every thread (librdkafka's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def zipf_events(
    n: int, items: int = 10_000, seed: int = 0, a: float = 1.1, events_per_s: float = EVENTS_PER_S
) -> pd.DataFrame:
    """``n`` shop events (the schema of :mod:`workbench.streams.events`) in event-time order.

    Items are drawn with probability proportional to ``rank ** -a``; one
    partition, offsets 0..n-1.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** a
    item = rng.choice(items, size=n, p=weights / weights.sum())
    names = np.array([f"i{i}" for i in range(items)], dtype=object)
    sessions = max(1, n // 20)
    session = rng.integers(0, sessions, n)
    session_names = np.array([f"s{i}" for i in range(sessions)], dtype=object)
    users = np.array([f"u{i}" for i in range(sessions // 2 + 1)], dtype=object)  # two sessions a user
    t = T0_MS + np.sort(rng.integers(0, max(1, int(n * 1000 / events_per_s)), n))
    return pd.DataFrame(
        {
            "event_id": np.arange(n),  # made a string only where the events are encoded
            "event_type": pd.Categorical.from_codes(rng.integers(0, 3, n), ["view", "add_to_cart", "click"]),
            "event_time_ms": t,
            "user_id": users[session // 2],
            "session_id": session_names[session],
            "item_id": names[item],
            "category": pd.Categorical.from_codes(item % 20, [f"c{i}" for i in range(20)]),
            "price": (item % 500 + 1) * 0.25,
            "partition": 0,
            "offset": np.arange(n),
        }
    )


# -- stream: the real pipeline on the broker vs a raw JSON consumer -------------------


def _topic_count(topic: str) -> int:
    from confluent_kafka import TopicPartition

    from workbench.streams import kafka

    c = kafka.consumer()
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(hi - lo for lo, hi in (c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts))
    finally:
        c.close()


def produce_topic(events: pd.DataFrame) -> tuple[str, float | None]:
    """A one-partition bench topic holding exactly these events; (name, produce seconds or None if reused)."""
    from workbench.streams import kafka

    span_ms = int(events["event_time_ms"].iloc[-1] - events["event_time_ms"].iloc[0]) if len(events) else 0
    topic = f"bench.features.{len(events)}.{span_ms}"
    if topic in kafka.list_topics() and _topic_count(topic) == len(events):
        return topic, None
    if topic in kafka.list_topics():
        kafka.delete_topics([topic])
    kafka.ensure_topic(topic, partitions=1, config={"retention.ms": "-1"})
    p = kafka.producer(None, **{"linger.ms": 50, "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000})
    started = time.perf_counter()
    cols = ["event_type", "event_time_ms", "user_id", "session_id", "item_id", "category", "price"]
    rows = zip(*(events[c].tolist() for c in cols), strict=True)
    for i, (etype, t, user, session, item, cat, price) in enumerate(rows):
        value = json.dumps(
            {"event_id": f"e{i}", "event_type": etype, "event_time_ms": t, "user_id": user,
             "session_id": session, "item_id": item, "category": cat, "price": price},
            separators=(",", ":"),
        ).encode()
        while True:
            try:
                p.produce(topic, value, session.encode())
                break
            except BufferError:
                p.poll(0.05)
        if i % 50_000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError("the bench topic could not be filled")
    return topic, time.perf_counter() - started


def raw_consume(topic: str, n: int) -> dict[str, float]:
    """A plain consumer: assign from the start, consume batches, ``json.loads`` every value."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from workbench.streams import kafka

    c = kafka.consumer()
    try:
        cpu, started = _cpu_s(), time.perf_counter()
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = 0
        while got < n:
            for m in c.consume(num_messages=10_000, timeout=1.0):
                if m.error() is None:
                    json.loads(m.value())
                    got += 1
        return _rates(n, time.perf_counter() - started, _cpu_s() - cpu)
    finally:
        c.close()


def pipeline_run(topic: str, n: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """The real feature job (group_by, RocksDB state, produce) over the topic until ``n`` updates."""
    from workbench.features.definition import FeatureSet
    from workbench.features.job import pipeline

    # a fresh set name: a new consumer group, state dir and topics, so the run starts from scratch
    name = f"bench_{int(time.time() * 1000)}"
    feature = Feature(FEATURE.name, FEATURE.entity, FEATURE.window, FEATURE.aggregation, source=topic)
    fs = FeatureSet(name, [feature])
    app, _ = pipeline(fs)
    return _timed_run(app, fs, n, timeout_s)


def floor_run(topic: str, n: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """The framework alone: the same topology (JSON in, group_by by item, produce) with trivial steps, no state.

    Updates leave through the job's own output step (:class:`~workbench.features.writer.UpdateWriter`),
    so the floor is what the pipeline would cost if its feature work were free.
    """
    from workbench.features.definition import FeatureSet
    from workbench.features.job import application
    from workbench.features.stream import event_time
    from workbench.features.writer import UpdateWriter

    fs = FeatureSet(f"bench_floor_{int(time.time() * 1000)}")
    app = application(fs)
    source = app.topic(topic, value_deserializer="json", timestamp_extractor=event_time)
    out = app.topic(fs.topic, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(source).apply(lambda e: {"k": e["item_id"], "t": e["event_time_ms"]})
    sdf = sdf.group_by(lambda v: v["k"], name=f"floor-{fs.name}").apply(
        lambda v: {"key": v["k"], "event_time_ms": v["t"], "value": 1})
    sdf.update(UpdateWriter(sdf._producer, out.name), metadata=True)
    return _timed_run(app, fs, n, timeout_s)


def _timed_run(app: Any, fs: Any, n: int, timeout_s: float) -> dict[str, Any]:
    """Run a bounded application, time it, then remove its state dir and its topics."""
    import shutil

    from workbench.config import settings
    from workbench.streams import kafka

    try:
        cpu, started = _cpu_s(), time.perf_counter()
        # count outputs without keeping them, as a running job does; the topic then shows what was written
        app.run(count=n, timeout=timeout_s, collect=False)
        result: dict[str, Any] = _rates(n, time.perf_counter() - started, _cpu_s() - cpu)
        result["updates"] = _settled_count(fs.topic, n)
        return result
    finally:
        shutil.rmtree(settings().home / "state" / f"{fs.name}-{fs.hash}", ignore_errors=True)
        mine = [t for t in kafka.list_topics() if fs.name in t or fs.hash in t]
        if mine:
            kafka.delete_topics(mine)


def _settled_count(topic: str, n: int, wait_s: float = 10.0) -> int:
    """The topic's record count once it reaches ``n`` (or stops short after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while (got := _topic_count(topic)) < n and time.monotonic() < deadline:
        time.sleep(0.5)
    return got


def _rates(n: int, wall_s: float, cpu_s: float) -> dict[str, float]:
    return {
        "events": n,
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "events_per_s": round(n / wall_s),
        "events_per_cpu_s": round(n / max(cpu_s, 1e-9)),
    }


def stream(n: int, rounds: int = 3) -> dict[str, Any]:
    """Produce (or reuse) the topic; then ``rounds`` rounds of raw consumer, real pipeline and floor over it.

    The three run back to back in each round, so a round's ratios compare runs
    that saw the same machine; a shared 2-core machine changes speed by more
    than the differences measured here from one minute to the next. The
    figures are the medians over rounds, and every round is reported.
    """
    import statistics

    events = zipf_events(n)
    topic, produce_s = produce_topic(events)
    runs = [{"raw_json_consumer": raw_consume(topic, n), "pipeline": pipeline_run(topic, n),
             "quixstreams_floor": floor_run(topic, n)} for _ in range(rounds)]

    def median_of(part: str) -> dict[str, Any]:
        figures = [r[part] for r in runs]
        out: dict[str, Any] = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
        out["events_per_cpu_s_by_round"] = [f["events_per_cpu_s"] for f in figures]
        return out

    def ratio(base: str) -> float:
        return round(float(statistics.median(
            r["pipeline"]["events_per_cpu_s"] / r[base]["events_per_cpu_s"] for r in runs)), 4)

    return {
        "topic": topic,
        "event_time_rate_per_s": EVENTS_PER_S,
        "produced_events_per_s": round(n / produce_s) if produce_s else "reused",
        "rounds": rounds,
        "pipeline": median_of("pipeline"),
        "raw_json_consumer": median_of("raw_json_consumer"),
        "ratio_to_raw_per_cpu_s": ratio("raw_json_consumer"),
        # same topology with no feature work: what quixstreams itself costs per record here
        "quixstreams_floor": median_of("quixstreams_floor"),
        "ratio_to_floor_per_cpu_s": ratio("quixstreams_floor"),
        "target_events_per_cpu_s": 20_000,
    }


# -- backfill vs the stream path replayed broker-less -------------------------------------


def backfill_vs_replay(n: int, replay_n: int) -> dict[str, Any]:
    """Backfill events/s over ``n`` events vs ``run_stream_on_frame`` over the first ``replay_n``."""
    from workbench.features.backfill import backfill
    from workbench.features.backfill_reference import reference_backfill
    from workbench.features.skew import mismatches
    from workbench.features.stream import run_stream_on_frame

    events = zipf_events(n)
    started = time.perf_counter()
    out = backfill(FEATURE, events)
    backfill_s = time.perf_counter() - started
    sample = events.iloc[:replay_n]
    started = time.perf_counter()
    replayed = run_stream_on_frame(FEATURE, sample)
    replay_s = time.perf_counter() - started
    started = time.perf_counter()
    reference_backfill(FEATURE, sample)  # the previous implementation (per-key masks), for before/after
    reference_s = time.perf_counter() - started
    head = out.iloc[: len(replayed)].reset_index(drop=True)  # one row per record: the same prefix
    backfill_rate, replay_rate = n / backfill_s, replay_n / replay_s
    return {
        "events": n,
        "output_rows": len(out),
        "backfill_s": round(backfill_s, 3),
        "backfill_events_per_s": round(backfill_rate),
        "replay_events": replay_n,
        "replay_s": round(replay_s, 3),
        "replay_events_per_s": round(replay_rate),
        "ratio": round(backfill_rate / replay_rate, 1),
        "reference_backfill_events_per_s": round(replay_n / reference_s),  # same sample as the replay
        "replay_prefix_matches": not mismatches(replayed, head, limit=1),
        "target_events_per_s": 1_000_000,
        "target_ratio": 50,
    }


# -- a 30-day aggregate kept incrementally vs recomputed every hour -----------------------------


def incremental_vs_recompute(seed: int = 7, days: int = 30) -> dict[str, Any]:
    """Hourly 30-day per-user (count, spend): hourly buckets vs recompute over the window; CPU seconds."""
    from workbench.streams.simulator import ShopSimulator

    month = ShopSimulator(seed).frame(start_ms=T0_MS, duration_s=days * 86_400.0)
    # the definition being maintained; its key and field are read the way the backfill reads them
    spend = Feature("spend_30d", USER, win.Sliding(size_ms=30 * 86_400_000), agg.Sum("price"))
    codes, users = pd.factorize(spend.entity.key_expr.evaluate_frame(month))
    price = month["price"].to_numpy(dtype=np.float64)
    hour = ((month["event_time_ms"].to_numpy() - T0_MS) // HOUR_MS).astype(np.int64)
    hours = days * 24
    bounds = np.searchsorted(hour, np.arange(hours + 1))  # the frame is in event-time order
    k = len(users)

    cpu = time.process_time()
    inc_count, inc_sum = np.zeros(k, np.int64), np.zeros(k)
    ring_count, ring_sum = np.zeros((MONTH_HOURS, k), np.int64), np.zeros((MONTH_HOURS, k))
    inc_last: tuple[np.ndarray, np.ndarray] = (inc_count, inc_sum)
    for h in range(hours):
        a, b = bounds[h], bounds[h + 1]
        slot = h % MONTH_HOURS  # the hour that leaves the 30-day window is the one this slot held
        inc_count -= ring_count[slot]
        inc_sum -= ring_sum[slot]
        ring_count[slot] = np.bincount(codes[a:b], minlength=k)
        ring_sum[slot] = np.bincount(codes[a:b], weights=price[a:b], minlength=k)
        inc_count += ring_count[slot]
        inc_sum += ring_sum[slot]
        inc_last = (inc_count.copy(), inc_sum.copy())
    incremental_cpu = time.process_time() - cpu

    cpu = time.process_time()
    rec_last: tuple[np.ndarray, np.ndarray] = (inc_count, inc_sum)
    for h in range(hours):
        a, b = bounds[max(0, h + 1 - MONTH_HOURS)], bounds[h + 1]
        rec_last = (np.bincount(codes[a:b], minlength=k), np.bincount(codes[a:b], weights=price[a:b], minlength=k))
    recompute_cpu = time.process_time() - cpu

    equal = bool(np.array_equal(inc_last[0], rec_last[0]) and np.allclose(inc_last[1], rec_last[1], rtol=1e-9))
    return {
        "events": len(month),
        "users": k,
        "hourly_updates": hours,
        "incremental_cpu_s": round(incremental_cpu, 3),
        "recompute_cpu_s": round(recompute_cpu, 3),
        "ratio": round(recompute_cpu / max(incremental_cpu, 1e-9), 1),
        "same_values": equal,
        "target_ratio": 10,
    }


def run(
    stream_events: int = 200_000,
    rounds: int = 3,
    backfill_events: int = 5_000_000,
    replay_events: int = 20_000,
    month_days: int = 30,
) -> dict[str, Any]:
    """All three measurements in one run, JSON-ready, with the machine they ran on."""
    load = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "features",
        "feature": FEATURE.spec(),
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load]},
        "stream": stream(stream_events, rounds),
        "backfill": backfill_vs_replay(backfill_events, replay_events),
        "incremental": incremental_vs_recompute(days=month_days),
    }
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result
