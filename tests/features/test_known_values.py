"""Hand-computed values for every window kind and every aggregation, on both paths."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.features.test_conformance import SumOfSquares
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.backfill import backfill
from workbench.features.definition import SESSION, USER, Feature, col
from workbench.features.derived import Derived, Filtered
from workbench.features.skew import mismatches
from workbench.features.stream import run_stream_on_frame


def events(times: list[int], **columns: list[Any]) -> pd.DataFrame:
    n = len(times)
    frame = pd.DataFrame(
        {
            "event_type": columns.pop("event_type", ["view"] * n),
            "event_time_ms": times,
            "user_id": columns.pop("user_id", ["u1"] * n),
            "session_id": columns.pop("session_id", ["s1"] * n),
            "item_id": columns.pop("item_id", ["i1"] * n),
            "category": columns.pop("category", ["books"] * n),
            "price": columns.pop("price", [1.0] * n),
            "quantity": pd.array(columns.pop("quantity", [1] * n), dtype="Int64"),
            "partition": columns.pop("partition", [0] * n),
        }
    )
    frame["offset"] = frame.groupby("partition").cumcount()
    assert not columns, columns
    return frame


def both(feature: Feature, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows (offset, start, end, value) or (offset, 'late'), after checking the two paths agree."""
    stream = run_stream_on_frame(feature, frame)
    history = backfill(feature, frame)
    assert not mismatches(stream, history), mismatches(stream, history)
    out: list[tuple[Any, ...]] = []
    for row in stream.itertuples():
        if row.late:
            out.append((row.offset, "late"))
        else:
            out.append((row.offset, row.window_start_ms, row.window_end_ms, row.value))
    return out


def test_tumbling_closes_by_window_end_not_by_record_time() -> None:
    f = Feature("n", SESSION, win.Tumbling(size_ms=10), agg.Count())
    got = both(f, events([1001, 1005, 1012, 1003, 1019]))
    assert got == [
        (0, 1000, 1010, 1),
        (1, 1000, 1010, 2),
        (2, 1010, 1020, 1),
        (3, "late"),
        (4, 1010, 1020, 2),
    ]
    f = Feature("n", SESSION, win.Tumbling(size_ms=10, grace_ms=5), agg.Count())
    got = both(f, events([1001, 1005, 1012, 1003, 1019]))
    assert got[3] == (3, 1000, 1010, 3)  # end 1010 > 1012 - 5: still open
    # 1011 is older than 1019 - 5 but its window [1010, 1020) is open: not late
    got = both(f, events([1001, 1019, 1011]))
    assert got[2] == (2, 1010, 1020, 2)


def test_hopping_reports_every_open_window_of_the_record() -> None:
    f = Feature("n", SESSION, win.Hopping(size_ms=10, step_ms=5), agg.Count())
    got = both(f, events([1022, 1016, 1009]))
    # 1016 is in [1010, 1020) (closed by 1022) and [1015, 1025) (open); 1009 is fully late
    assert got == [(0, 1015, 1025, 1), (0, 1020, 1030, 1), (1, 1015, 1025, 2), (2, "late")]


def test_sliding_updates_later_windows_and_gates_late_records() -> None:
    f = Feature("n", SESSION, win.Sliding(size_ms=10, grace_ms=5), agg.Count())
    got = both(f, events([1100, 1105, 1103, 1099, 1116]))
    assert got == [
        (0, 1090, 1100, 1),
        (1, 1095, 1105, 2),
        (2, 1093, 1103, 2),  # its own window: 1100 and 1103
        (2, 1095, 1105, 3),  # 1105's window gains the out-of-order record
        (3, "late"),  # 1099 < 1105 - 5
        (4, 1106, 1116, 1),
    ]


def test_session_merges_and_lateness_is_one_gap_more_lenient() -> None:
    f = Feature("n", SESSION, win.Session(gap_ms=10, grace_ms=10), agg.Count())
    got = both(f, events([1100, 1118, 1109, 1097, 1098, 1200]))
    assert got == [
        (0, 1100, 1101, 1),
        (1, 1118, 1119, 1),
        (2, 1100, 1119, 3),  # bridges both sessions
        (3, "late"),  # 1097 < 1118 - 10 - 10
        (4, 1098, 1119, 4),
        (5, 1200, 1201, 1),
    ]


def test_keys_are_independent_and_filters_apply_first() -> None:
    f = Feature("views", USER, win.Tumbling(size_ms=100), agg.Count(), where=col("event_type") == "view")
    frame = events(
        [1000, 1001, 1002, 1003],
        user_id=["a", "b", "a", "a"],
        session_id=["s1", "s2", "s3", "s1"],
        partition=[0, 1, 1, 0],
        event_type=["view", "view", "click", "view"],
    )
    got = both(f, frame)
    # partition 0: offsets 0, 1 (user a); partition 1: offset 0 (user b); the click is filtered out
    assert got == [(0, 1000, 1100, 1), (0, 1000, 1100, 1), (1, 1000, 1100, 2)]


AGG_CASES = [
    (agg.Count(), 4),
    (agg.Sum("price"), 8.0),
    (agg.Sum("quantity"), 6),
    (agg.Mean("price"), 2.0),
    (agg.Min("price"), 0.5),
    (agg.Max("price"), 4.0),
    (agg.DistinctCount("item_id"), 3),
    (agg.Last("item_id"), "i3"),
    (agg.LastN("item_id", n=3), ["i1", "i2", "i3"]),
    (agg.TopK("category", k=2), [["books", 2], ["games", 1]]),
    (agg.DecayedCount(half_life_ms=10), 1 + 2**-0.1 + 2**-0.2 + 2**-0.3),
    (agg.DecayedSum("price", half_life_ms=10), 0.5 + 2.5 * 2**-0.1 + 4.0 * 2**-0.2 + 1.0 * 2**-0.3),
    (SumOfSquares("quantity"), 14),
    (Filtered(agg.Sum("price"), col("category") == "books"), 5.0),
    (  # books' share of spend, in the same window
        Derived(
            col("books") / col("all"),
            books=Filtered(agg.Sum("price"), col("category") == "books"),
            all=agg.Sum("price"),
        ),
        5.0 / 8.0,
    ),
]


@pytest.mark.parametrize("aggregation, expected", AGG_CASES, ids=[a.kind for a, _ in AGG_CASES])
def test_aggregation_values(aggregation: agg.Aggregation, expected: Any) -> None:
    # arrival order differs from event-time order: "last" must follow event time
    frame = events(
        [1001, 1003, 1002, 1004],
        item_id=["i1", "i2", "i1", "i3"],
        price=[1.0, 2.5, 4.0, 0.5],
        quantity=[1, None, 3, 2],
        category=["books", "toys", "books", "games"],
    )
    f = Feature("x", SESSION, win.Tumbling(size_ms=100, grace_ms=10), aggregation)
    got = both(f, frame)
    value = got[-1][3]
    if isinstance(expected, float):
        assert value == pytest.approx(expected, rel=1e-12)
    else:
        assert value == expected
        assert type(value) is type(expected)


def test_click_through_rate_of_one_window() -> None:
    ctr = Derived(
        col("clicks") / col("impressions"),
        clicks=Filtered(agg.Count(), col("event_type") == "click"),
        impressions=Filtered(agg.Count(), col("event_type") == "impression"),
    )
    f = Feature("ctr", USER, win.Tumbling(size_ms=100), ctr)
    kinds = ["view", "impression", "impression", "click", "impression", "click"]
    got = both(f, events([1000, 1010, 1020, 1030, 1040, 1150], event_type=kinds))
    # no impressions yet -> None; the click at 1150 opens a new window with no impressions
    assert [row[3] for row in got] == [None, 0.0, 0.0, 0.5, 1 / 3, None]


def test_sliding_keeps_records_quixstreams_native_window_loses() -> None:
    # size 25, grace 8, times 0, 7, 8, 9, 6: the last record's window [-19, 6] holds 0 and 6
    f = Feature("n", SESSION, win.Sliding(size_ms=25, grace_ms=8), agg.Count())
    got = both(f, events([1000, 1007, 1008, 1009, 1006]))
    assert got[4] == (4, 981, 1006, 2)
    assert [g[3] for g in got[5:]] == [3, 4, 5]  # and the later windows each gain the record


def test_quixstreams_native_sliding_window_still_loses_records() -> None:
    """Canary: when quixstreams fixes its sliding window, this fails; then reconsider sliding_step."""
    import tempfile

    from quixstreams import Application
    from quixstreams.dataframe.windows import aggregations as qagg
    from quixstreams.models import MessageContext
    from quixstreams.models.topics import Topic, TopicConfig

    app = Application(
        broker_address="127.0.0.1:1", use_changelog_topics=False, state_dir=tempfile.mkdtemp(), loglevel=None
    )

    def fetch(topic: Topic) -> Topic:
        fetched = Topic(name=topic.name)
        fetched.broker_config = TopicConfig(
            num_partitions=1,
            replication_factor=1,
            extra_config={"retention.ms": "-1", "retention.bytes": "-1"},
        )
        return fetched

    app._topic_manager._fetch_topic = fetch  # type: ignore[method-assign]
    topic = app.topic("canary")
    sdf = app.dataframe(topic).sliding_window(duration_ms=25, grace_ms=8).agg(n=qagg.Count()).current()
    app._state_manager.on_partition_assign(stream_id=sdf.stream_id, partition=0, committed_offsets={})
    app._processing_context.init_checkpoint()
    last = []
    for offset, t in enumerate([1000, 1007, 1008, 1009, 1006]):
        ctx = MessageContext(topic="canary", partition=0, offset=offset, size=0)
        last = sdf.test({}, key=b"k", timestamp=t, ctx=ctx)
    own = [v for v, *_ in last if v["end"] == 1006]
    assert own == [{"n": 1, "start": 981, "end": 1006}]  # should be 2: the record at 1000 is lost
