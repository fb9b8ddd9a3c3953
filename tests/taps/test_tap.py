"""Live taps on the real broker: order, start positions, bounds, malformed records, no side effects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from workbench.config import Settings
from workbench.streams import kafka
from workbench.streams.events import encode
from workbench.taps.tap import Tap, tap

pytestmark = pytest.mark.broker


def event(i: int, session: str = "s0", t0: int = 1_700_000_000_000, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}", "event_type": "view", "event_time_ms": t0 + i, "user_id": "u1",
        "session_id": session, "item_id": f"i{i % 13}", "category": "books", "price": 1.0 + i, **extra,
    }


def produce(topic: str, values: list[tuple[str | None, bytes | None]], timestamp_ms: int | None = None) -> None:
    p = kafka.producer()
    for key, value in values:
        if timestamp_ms is None:
            p.produce(topic, value=value, key=key)
        else:
            p.produce(topic, value=value, key=key, timestamp=timestamp_ms)
    assert p.flush(30) == 0


def high_watermarks(topic: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    c = kafka.consumer()
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def test_per_key_order_is_kept(new_topic: Callable[..., str]) -> None:
    topic = new_topic("order")
    sessions = [f"s{k}" for k in range(12)]
    produce(topic, [(s, encode(event(i, s))) for i in range(300) for s in sessions])
    with tap(topic, since="earliest") as t:
        assert t.wait(3_600, timeout=30)
        df = t.df()
    assert len(df) == 3_600 and t.mode == "events"
    for _, g in df.groupby("session_id", observed=True):
        assert g["event_time_ms"].is_monotonic_increasing  # the order it was sent in
        assert g["partition"].nunique() == 1 and g["offset"].is_monotonic_increasing
    for _, g in df.groupby("partition"):
        assert g["offset"].is_monotonic_increasing


def test_since_is_send_time(new_topic: Callable[..., str]) -> None:
    topic = new_topic("since")
    now = int(time.time() * 1000)
    produce(topic, [(f"s{i}", encode(event(i, t0=0))) for i in range(50)], timestamp_ms=now - 3_600_000)
    produce(topic, [(f"s{i}", encode(event(1_000 + i, t0=0))) for i in range(30)], timestamp_ms=now - 1_000)
    for since in ("10m", datetime.fromtimestamp((now - 1_800_000) / 1000, tz=UTC), now - 1_800_000):
        with Tap(topic, since=since) as t:
            assert t.wait(30, timeout=20)
            time.sleep(0.3)  # let anything older (there must be none) arrive too
            df = t.df()
        assert sorted(df["event_id"]) == sorted(f"e{1_000 + i}" for i in range(30)), since
    with Tap(topic, since="earliest") as t:
        assert t.wait(80, timeout=20)
    with Tap(topic, offset=-5) as t:  # the last 5 of every partition
        assert t.wait(15, timeout=20)
        time.sleep(0.3)
        assert t.df().groupby("partition").size().tolist() == [5, 5, 5]
    with Tap(topic, offset={0: 0}) as t:  # a partition map picks partitions too
        n0 = high_watermarks(topic)[0]
        assert t.wait(n0, timeout=20) and set(t.df()["partition"]) <= {0}


def test_latest_by_default_and_take_is_bounded(new_topic: Callable[..., str]) -> None:
    topic = new_topic("take")
    produce(topic, [("s", encode(event(i))) for i in range(20)])
    with tap(topic) as t:
        started = time.monotonic()
        assert len(t.take(5, timeout=0.5)) == 0  # nothing new: returns at the timeout
        assert time.monotonic() - started < 5

        def later() -> None:
            time.sleep(0.3)
            produce(topic, [("s", encode(event(100 + i))) for i in range(12)])

        threading.Thread(target=later).start()
        got = t.take(5, timeout=20)
        assert got["event_id"].tolist() == [f"e{100 + i}" for i in range(5)]
        assert t.wait(12, timeout=20)
        assert set(t.df()["event_id"]) == {f"e{100 + i}" for i in range(12)}  # none of the old 20


def test_buffer_bounds_hold_under_a_flood(new_topic: Callable[..., str]) -> None:
    topic = new_topic("flood")
    padding = "x" * 900  # ~1 kB records, so the byte bound is the tighter one
    with tap(topic, max_rows=5_000, max_bytes=200_000) as t:
        for chunk in range(10):
            produce(topic, [(f"s{i}", encode(event(chunk * 2_000 + i, pad=padding))) for i in range(2_000)])
            st = t.stats()
            assert st["buffered_rows"] <= 5_000 and st["buffered_bytes"] <= 200_000, st
        assert t.wait(20_000, timeout=60), t.stats()
        st = t.stats()
    assert st["buffered_bytes"] <= 200_000 and 150 <= st["buffered_rows"] <= 5_000, st
    assert st["evicted_rows"] == 20_000 - st["buffered_rows"], st
    with tap(topic, since="earliest", max_rows=1_000) as t:
        assert t.wait(20_000, timeout=60)
        assert len(t.df()) == 1_000 and t.stats()["evicted_rows"] == 19_000


def test_malformed_records_are_counted_shown_and_nothing_is_written(
    broker: Settings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("bad")
    good = [(f"s{i}", encode(event(i))) for i in range(10)]
    bad: list[tuple[str | None, bytes | None]] = [
        ("a", b"not json"), ("b", b""), ("c", b"[1, 2]"), ("d", encode({**event(1), "price": "cheap"})),
        ("e", encode({k: v for k, v in event(2).items() if k != "user_id"})),
        ("f", b'{"x": "' + b"y" * (broker.max_event_bytes + 10) + b'"}'), ("g", None),
    ]
    produce(topic, good + bad)
    topics_before = kafka.list_topics()
    marks_before = high_watermarks(topic)
    with tap(topic, since="earliest") as t:
        deadline = time.monotonic() + 20
        while t.consumed < 17 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = t.stats()
        bad_df = t.malformed()
        assert "malformed" in t._repr_html_() and "7 malformed" in repr(t)
    assert len(t.df()) == 10
    assert st["malformed"] == {
        "empty": 2, "missing:user_id": 1, "not_json": 1, "not_object": 1, "too_large": 1, "wrong_type:price": 1,
    }
    assert len(bad_df) == 7 and set(bad_df["reason"]) == set(st["malformed"])
    assert bad_df.loc[bad_df["reason"] == "not_json", "preview"].item() == "not json"
    # other tests may create topics meanwhile: only ours matter, and no DLQ
    assert {t for t in kafka.list_topics() if topic in t} == {t for t in topics_before if topic in t} == {topic}
    assert high_watermarks(topic) == marks_before


def test_a_tap_never_commits_or_joins_a_group(new_topic: Callable[..., str]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions

    topic = new_topic("nogroup")
    produce(topic, [(f"s{i}", encode(event(i))) for i in range(100)])
    with tap(topic, since="earliest") as t:
        assert t.wait(100, timeout=20)
        t.take(1, timeout=0.2)
    admin = kafka.admin()
    groups = [g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid]
    for group in groups:
        futs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        offsets = futs[group].result(timeout=10).topic_partitions or []
        assert not [tp for tp in offsets if tp.topic == topic], group


def test_stats_and_displays(new_topic: Callable[..., str]) -> None:
    topic = new_topic("stats")
    produce(topic, [(f"s{i % 3}", encode(event(i, quantity=2) if i % 4 == 0 else event(i))) for i in range(200)])
    with tap(topic, since="earliest") as t:
        assert t.wait(200, timeout=20)
        deadline = time.monotonic() + 15
        while t.stats()["lag"] != {0: 0, 1: 0, 2: 0} and time.monotonic() < deadline:  # refreshed each 1 s
            time.sleep(0.2)
        st = t.stats()
        fig = t._display_()  # marimo's protocol; marimo is installed with Workbench
        import marimo as mo

        marimo_html = mo.as_html(t).text  # what a marimo cell shows for `t`
        html = t._repr_html_()
    assert st["consumed"] == 200 and sum(t.rate.series(seconds=120)) == 200
    assert st["messages_per_s"] >= 0 and st["bytes_per_s"] >= 0  # may be 0 if this machine was slow
    assert set(st["lag"]) == {0, 1, 2} and all(v == 0 for v in st["lag"].values())
    schema = {c["column"]: c for c in st["schema"]}
    assert schema["quantity"]["null_rate"] == 0.75 and schema["price"]["dtype"] == "float64"
    assert schema["event_time"]["dtype"] == "datetime64[ms, UTC]"
    assert "<table" in html and fig is not None and "plotly" in marimo_html
    assert t.figure().data[0].type == "scatter"
    assert "stopped" in repr(t)


def test_a_missing_topic_is_a_clear_error_and_is_not_created(broker: Settings) -> None:
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="does not exist"):
        tap("test.no.such.topic.ever")
    assert "test.no.such.topic.ever" not in kafka.list_topics()


def test_json_topics_get_inferred_columns(new_topic: Callable[..., str]) -> None:
    topic = new_topic("json")
    produce(topic, [(None, b'{"a": %d, "b": "x%d"}' % (i, i)) for i in range(30)])
    with tap(topic, since="earliest") as t:
        assert t.wait(30, timeout=20)
        df = t.df()
    assert t.mode == "json" and sorted(df["a"]) == list(range(30))
    assert {"a", "b", "partition", "offset", "kafka_ts"} <= set(df.columns)


def test_live_view_redraws_on_its_own_thread(new_topic: Callable[..., str]) -> None:
    from workbench.taps.view import TapView

    topic = new_topic("view")
    produce(topic, [("s", encode(event(i))) for i in range(40)])
    with tap(topic, since="earliest") as t:
        assert t.wait(40, timeout=20)
        view = TapView(t, refresh_s=0.05)
        t._views.append(view)
        produce(topic, [("s", encode(event(100 + i))) for i in range(5)])
        assert t.wait(45, timeout=20)
        deadline = time.monotonic() + 10
        while "e104" not in view.rows.value and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "e104" in view.rows.value and "45/" in view.title.value
        assert sum(view.figure.data[0].y) == 45
        assert "null_rate" in view.fields.value
    view._thread.join(5)
    assert not view._thread.is_alive()  # stopping the tap stops its view


def test_notebook_kernel_shows_the_live_widget(new_topic: Callable[..., str]) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    topic = new_topic("kernel")
    produce(topic, [("s", encode(event(i))) for i in range(10)])
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import workbench as wb\nt = wb.tap({topic!r}, since='earliest')\nt.wait(10)"),
        nbformat.v4.new_code_cell("t"),
        nbformat.v4.new_code_cell("t.stop(); len(t.df())"),
    ]
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    shown = nb.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown), shown
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "10"
