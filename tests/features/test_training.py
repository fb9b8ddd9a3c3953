"""training_frame: an as-of join that never leaks a value before it existed."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.features.test_conformance import AGGREGATIONS, BASE_MS, WINDOWS, event_streams
from workbench.features.backfill import backfill
from workbench.features.definition import SESSION, USER, Feature
from workbench.features.skew import same_value
from workbench.features.training import available_updates, training_frame


def brute_force(feature: Feature, events: pd.DataFrame, key: str, t: int, inclusive: bool) -> Any:
    """The last update of ``key`` (processing order) available strictly before ``t``."""
    updates = available_updates(backfill(feature, events))
    best = None
    for row in updates.itertuples():
        if row.key == key and (row.available_ms < t or (inclusive and row.available_ms == t)):
            best = row.value
    return best


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_streams(),
    kind=st.sampled_from(sorted(WINDOWS)),
    a=st.sampled_from(["count", "last", "sum", "top_k"]),
    label_offsets=st.lists(st.integers(-20, 300), min_size=1, max_size=8),
    inclusive=st.booleans(),
)
def test_as_of_join_matches_brute_force(
    events: pd.DataFrame, kind: str, a: str, label_offsets: list[int], inclusive: bool
) -> None:
    feature = Feature("f", USER, WINDOWS[kind][0], AGGREGATIONS[a])
    labels = pd.DataFrame(
        {
            "user_id": [("u0", "u1")[i % 2] for i in range(len(label_offsets))],
            "label_time_ms": [BASE_MS + o for o in label_offsets],
        }
    )
    got = training_frame(labels, [feature], events, inclusive=inclusive)
    assert list(got.columns) == ["user_id", "label_time_ms", "f"]
    for row in got.itertuples():
        expected = brute_force(feature, events, row.user_id, row.label_time_ms, inclusive)
        assert same_value(row.f, expected), (row, expected)


def test_out_of_order_update_is_available_only_after_it_was_seen() -> None:
    from workbench.features import aggregations as agg
    from workbench.features import windows as win

    feature = Feature("n", SESSION, win.Session(gap_ms=100), agg.Count())
    events = pd.DataFrame(
        {"session_id": ["s"] * 3, "event_time_ms": [1000, 1050, 1020], "partition": 0, "offset": [0, 1, 2]}
    )
    labels = pd.DataFrame({"session_id": ["s"] * 4, "label_time_ms": [1000, 1021, 1050, 1051]})
    got = training_frame(labels, [feature], events)["n"].tolist()
    # at 1021 the record at 1020 had not arrived (it came after 1050): 1, not 2
    assert got == [None, 1, 1, 3]
    assert training_frame(labels, [feature], events, inclusive=True)["n"].tolist() == [1, 1, 3, 3]
