"""History, then live: the evaluation continues on the tail from the seam with no gap and no overlap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from river import linear_model, preprocessing

import workbench as wb
from workbench import aggregations as agg
from workbench import windows as win
from workbench.config import Settings
from workbench.evaluation import records
from workbench.evaluation.evaluate import evaluate
from workbench.streams import kafka
from workbench.streams.events import encode


def _produce(topic: str, rows: list[dict[str, Any]], pause_s: float = 0.0) -> None:
    p = kafka.producer()
    for i, row in enumerate(rows):
        event = {k: v for k, v in row.items() if v is not None and v == v}
        p.produce(topic, key=event["session_id"].encode(), value=encode(event))
        if pause_s and i % 50 == 0:
            p.flush(10)
            time.sleep(pause_s)
    p.flush(30)


@pytest.mark.broker
@pytest.mark.slow
def test_history_then_live_predicts_every_view_once(broker: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("evallive", partitions=2)
    now = int(time.time() * 1000)
    sim = wb.ShopSimulator(seed=4, n_users=300, n_items=120, n_categories=5, diurnal_amplitude=0.0)
    frame = sim.frame(start_ms=now - 30 * 60_000, duration_s=30 * 60)
    frame = frame.replace({np.nan: None})
    rows = frame.to_dict("records")
    cut = int(len(rows) * 0.8)
    history_rows, live_rows = rows[:cut], rows[cut:]
    _produce(topic, history_rows)

    session_views = wb.Feature("session_views", wb.SESSION, win.Session(gap_ms=600_000), agg.Count(),
                               where=wb.col("event_type") == "view", source=topic)
    item_price = wb.Feature("item_price", wb.ITEM, win.Sliding(size_ms=3_600_000), agg.Last("price"), source=topic)
    live_producer = threading.Thread(target=_produce, args=(topic, live_rows, 0.05))
    threading.Timer(2.0, live_producer.start).start()  # after the seam is taken

    result = evaluate(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                      label=wb.labels.purchase_within(minutes=2), baseline=[session_views],
                      candidate=[session_views, item_price], source=topic, live_s=12, chart=False)
    live_producer.join(30)

    views_live = sum(r["event_type"] == "view" for r in live_rows)
    views_all = sum(r["event_type"] == "view" for r in rows)
    assert result.counts["live_predictions"] == views_live
    assert result.counts["predicted"] == views_all, "every view predicted exactly once across the seam"
    assert result.counts["labelled"] + result.counts["missing"] == views_all
    assert result.counts["labelled"] > 0
    rec = records.get(result.record_id)  # type: ignore[arg-type]
    assert rec is not None
    seam = rec.data_range["seam_offsets"]
    assert sum(seam.values()) == len(history_rows)
    last = rec.data_range["live_last_offsets"]
    assert sum(last.values()) + len(last) == len(rows), "the live phase read to the end of the topic"


def _history_and_tail(topic: str) -> tuple[pd.DataFrame, int, dict[int, int]]:
    """40 minutes of shop events in one partition, stamped with event time (out of order by up to
    30 s); the seam is taken after the first 75%, then the tail is produced. Returns the events
    with offsets, the seam's index and the seam."""
    from workbench.evaluation.live import seam_offsets

    now = int(time.time() * 1000)
    frame = wb.ShopSimulator(seed=9, n_users=200, n_items=60, n_categories=4, diurnal_amplitude=0.0).frame(
        start_ms=now - 40 * 60_000, duration_s=40 * 60)
    jitter = np.random.default_rng(9).integers(-30_000, 30_000, len(frame))
    frame = frame.assign(event_time_ms=frame["event_time_ms"] + jitter).replace({np.nan: None})
    rows = frame.to_dict("records")
    cut = int(len(rows) * 0.75)
    p = kafka.producer()

    def send(batch: list[dict[str, Any]]) -> None:
        for row in batch:  # stamped with event time, so offsets_for_times finds event times
            p.produce(topic, key=row["session_id"].encode(), timestamp=int(row["event_time_ms"]),
                      value=encode({k: v for k, v in row.items() if v is not None}))
        p.flush(30)

    send(rows[:cut])
    seam = seam_offsets(topic)
    send(rows[cut:])  # the live tail, already waiting when the live phase starts
    return frame.assign(partition=0, offset=np.arange(len(frame))), cut, seam


def _logged(eid: str, since: dict[int, int]) -> list[dict[str, Any]]:
    """The records of evaluation ``eid`` in the predictions topic, from ``since`` to its end."""
    import json

    from confluent_kafka import TopicPartition

    from workbench.evaluation.live import PREDICTIONS_TOPIC, seam_offsets

    end = seam_offsets(PREDICTIONS_TOPIC)
    c = kafka.consumer()
    c.assign([TopicPartition(PREDICTIONS_TOPIC, p, since.get(p, 0)) for p in end])
    out, left = [], {p: o - since.get(p, 0) for p, o in end.items()}
    try:
        while sum(left.values()) > 0:
            msg = c.poll(5)
            assert msg is not None, "the predictions topic ends where its watermarks say"
            left[msg.partition()] -= 1
            body = json.loads(msg.value())
            if body["evaluation"] == eid:
                out.append(body)
    finally:
        c.close()
    return out


@pytest.mark.broker
@pytest.mark.slow
def test_live_values_come_from_the_stream_path(broker: Settings, new_topic: Callable[..., str]) -> None:
    """Live vectors are the stream's updates as of each prediction: per feature, the last update of
    the key from a record before it (in offset order) and available strictly before its time. They
    equal the backfill over exactly the records the stream read, which start one window plus grace
    before the seam in event time."""
    import signal
    import uuid

    from workbench.evaluation.live import PREDICTIONS_TOPIC, run_live, seam_offsets
    from workbench.evaluation.progressive import Progressive
    from workbench.features.backfill import backfill
    from workbench.features.training import available_updates

    topic = new_topic("evalstream", partitions=1)  # one partition: "processed before" is offset order
    events, cut, seam = _history_and_tail(topic)
    rows = events.to_dict("records")

    views = wb.Feature("session_views", wb.SESSION, win.Sliding(size_ms=600_000), agg.Count(),
                       where=wb.col("event_type") == "view", source=topic)
    price = wb.Feature("item_price", wb.ITEM, win.Sliding(size_ms=600_000), agg.Last("price"), source=topic)
    carts = wb.Feature("user_carts", wb.USER, win.Tumbling(size_ms=300_000, grace_ms=60_000), agg.Count(),
                       where=wb.col("event_type") == "add_to_cart", source=topic)
    arms = {"baseline": [views], "candidate": [views, price, carts]}
    loop = Progressive({"baseline": linear_model.LogisticRegression(), "candidate": linear_model.LogisticRegression()})
    loop.keep_open = True
    history = events.iloc[:cut]
    eid = uuid.uuid4().hex[:12]
    since = seam_offsets(PREDICTIONS_TOPIC) if PREDICTIONS_TOPIC in kafka.list_topics() else {}
    sigint = signal.getsignal(signal.SIGINT)
    stats = run_live(loop, topic=topic, seam=seam, history=history, label=wb.labels.purchase_within(minutes=2),
                     arms=arms, live_s=3, evaluation_id=eid)

    assert signal.getsignal(signal.SIGINT) is sigint, "the caller's Ctrl-C handler is back"
    horizon = int(history["event_time_ms"].max())
    start = int((history["event_time_ms"] >= horizon - 600_000).idxmax())  # one window (+ no grace) back
    assert 0 < start < cut
    assert stats["start_offsets"] == {"0": start}
    assert stats["warmup_events"] == cut - start
    live_views = events.iloc[cut:][lambda e: e["event_type"] == "view"]
    assert stats["live_predictions"] == len(live_views)
    assert stats["live_events"] == len(rows) - cut
    assert stats["last_offsets"] == {"0": len(rows) - 1}

    logged = {r["key"]: r for r in _logged(eid, since)}
    assert set(logged) == set(live_views["event_id"])
    read = events.iloc[start:]  # exactly what the stream read
    ups = {f.name: available_updates(backfill(f, read)) for f in (views, price, carts)}
    fed = 0  # live predictions whose value came from an event of the warm-up (before the seam)
    for e in live_views.to_dict("records"):
        want = {}
        for f in (views, price, carts):
            u = ups[f.name]
            u = u[(u["offset"] < e["offset"]) & (u["key"] == f.entity.key_of(e))
                  & (u["available_ms"] < e["event_time_ms"])]
            if len(u) and u["value"].iloc[-1] is not None:
                want[f.name] = float(u["value"].iloc[-1])
                fed += int(u["offset"].iloc[-1]) < cut
        assert logged[e["event_id"]]["x"]["candidate"] == want, e["event_id"]
        assert logged[e["event_id"]]["x"]["baseline"] == {k: v for k, v in want.items() if k == "session_views"}
    assert fed > 0, "the warm-up fed the windows"
    assert not [t for t in kafka.list_topics() if eid in t], "repartition and output topics are deleted"
    groups = kafka.admin().list_consumer_groups().result(timeout=10).valid
    assert not [g for g in groups if eid in g.group_id], "the warm-up consumer group is deleted"


@pytest.mark.broker
@pytest.mark.slow
def test_a_live_value_from_the_future_raises_and_cleans_up(broker: Settings, new_topic: Callable[..., str]) -> None:
    """A precomputed value that peeks past a live prediction raises LeakageError out of the stream
    run; the run's consumer group and topics are deleted all the same."""
    from workbench.evaluation.evaluate import FeatureFrame
    from workbench.evaluation.live import run_live
    from workbench.evaluation.progressive import LeakageError, Progressive

    topic = new_topic("evalleak", partitions=1)
    events, cut, seam = _history_and_tail(topic)
    live_views = events.iloc[cut:][lambda e: e["event_type"] == "view"]
    peek = FeatureFrame("peek", live_views.assign(value=1.0, at=live_views["event_time_ms"] - 1,
                                                  seen=live_views["event_time_ms"] + 60_000),
                        key="event_id", value="value", time="at", source_time="seen")
    loop = Progressive({"baseline": linear_model.LogisticRegression(), "candidate": linear_model.LogisticRegression()})
    loop.keep_open = True
    with pytest.raises(LeakageError, match="newer than the prediction time"):
        run_live(loop, topic=topic, seam=seam, history=events.iloc[:cut], label=wb.labels.purchase_within(minutes=2),
                 arms={"baseline": [], "candidate": [peek]}, live_s=3, evaluation_id="leak" + topic[-10:])
    assert not [t for t in kafka.list_topics() if topic[-10:] in t and t != topic]
    groups = kafka.admin().list_consumer_groups().result(timeout=10).valid
    assert not [g for g in groups if topic[-10:] in g.group_id]
