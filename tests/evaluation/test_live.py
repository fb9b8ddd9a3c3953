"""History, then live: the evaluation continues on the tail from the seam with no gap and no overlap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
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


def _produce(topic: str, rows: list[dict], pause_s: float = 0.0) -> None:
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
    sim = wb.ShopSimulator(seed=4, n_users=300, n_items=120, n_categories=5)
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
