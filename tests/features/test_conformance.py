"""One conformance suite over every feature definition kind.

For every window kind x aggregation x entity: the real quixstreams window
(run broker-less through ``StreamingDataFrame.test()``) and the vectorized
backfill produce the same rows, record by record, on random event streams
with out-of-order and late events, several keys and window boundaries.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.aggregations import Aggregation
from workbench.features.backfill import backfill
from workbench.features.definition import SESSION, USER, Entity, Feature, col
from workbench.features.derived import Derived, Filtered
from workbench.features.session import RecentItems, SessionEmbedding
from workbench.features.skew import mismatches
from workbench.features.stream import run_stream_on_frame

BASE_MS = 1_700_000_000_000  # realistic epoch times: windows never touch 0


class SumOfSquares(Aggregation):
    """A custom aggregation: it must work on both paths unchanged."""

    kind = "sum_of_squares"

    def initialize(self) -> int:
        return 0

    def update(self, state: int, value: Any, event_time_ms: int) -> int:
        return state + value * value

    def merge(self, a: int, b: int) -> int:
        return a + b


# item embeddings for the session embedding; i4 is missing on purpose (missing items are ignored)
EMBEDDINGS = {"i1": [0.1, -0.7, 0.3], "i2": [0.9, 0.2, -0.4], "i3": [-0.25, 0.5, 0.05]}

AGGREGATIONS: dict[str, Aggregation] = {
    "count": agg.Count(),
    "sum": agg.Sum("price"),
    "sum_int": agg.Sum("quantity"),
    "mean": agg.Mean("price"),
    "min": agg.Min("price"),
    "max": agg.Max("price"),
    "distinct": agg.DistinctCount("item_id"),
    "last": agg.Last("item_id"),
    "last_n": agg.LastN("item_id", n=3),
    "top_k": agg.TopK("category", k=2),
    "decayed_count": agg.DecayedCount(half_life_ms=20),
    "decayed_sum": agg.DecayedSum("price", half_life_ms=15),
    "custom": SumOfSquares("quantity"),
    "ctr": Derived(
        col("clicks") / col("views"),
        clicks=Filtered(agg.Count(), col("event_type") == "click"),
        views=Filtered(agg.Count(), col("event_type") == "view"),
    ),
    "derived_mix": Derived(
        col("spend") - col("top_book"),
        spend=agg.Sum("price"),
        top_book=Filtered(agg.Max("price"), col("category") == "books"),
    ),
    # session feature kinds (workbench.features.session)
    "recent_items": RecentItems("item_id", n=2),
    "session_embedding": SessionEmbedding("item_id", EMBEDDINGS, half_life_ms=7),
}

WINDOWS: dict[str, list[win.Window]] = {
    "tumbling": [win.Tumbling(size_ms=20), win.Tumbling(size_ms=15, grace_ms=10)],
    "hopping": [win.Hopping(size_ms=20, step_ms=5), win.Hopping(size_ms=30, step_ms=10, grace_ms=7)],
    "sliding": [win.Sliding(size_ms=10), win.Sliding(size_ms=25, grace_ms=8)],
    "session": [win.Session(gap_ms=8), win.Session(gap_ms=15, grace_ms=5)],
}

ENTITIES = [SESSION, USER, Entity("user_category", col("user_id") + "|" + col("category"))]
FILTERS = [None, col("event_type") == "view"]


def feature(kind: str, w: int, a: str, e: int, f: int) -> Feature:
    return Feature(f"{kind}_{a}", ENTITIES[e], WINDOWS[kind][w], AGGREGATIONS[a], where=FILTERS[f])


@st.composite
def event_streams(draw: st.DrawFn) -> pd.DataFrame:
    """Events of a few sessions over two partitions; times jitter back and forth, some far back."""
    n = draw(st.integers(1, 40))
    rows = []
    offsets = [0, 0]
    clock = draw(st.integers(0, 100))
    for _ in range(n):
        session = draw(st.sampled_from(["s0", "s1", "s2"]))
        partition = int(session[1]) % 2  # a session always lives in one partition, as keyed records do
        step = draw(st.one_of(st.integers(0, 12), st.integers(-15, 0), st.integers(-80, 40)))
        clock = max(0, clock + step)
        rows.append(
            {
                "event_id": f"e{len(rows)}",
                "event_type": draw(st.sampled_from(["view", "view", "click"])),
                "event_time_ms": BASE_MS + clock,
                "user_id": {"s0": "u0", "s1": "u1", "s2": "u0"}[session],  # u0 spans both partitions
                "session_id": session,
                "item_id": draw(st.sampled_from(["i1", "i2", "i3", "i4"])),
                "category": draw(st.sampled_from(["books", "toys", "games"])),
                "price": draw(st.integers(0, 400)) / 4,  # quarters: exact sums, no cancellation
                "quantity": draw(st.one_of(st.none(), st.integers(1, 5))),
                "partition": partition,
                "offset": offsets[partition],
            }
        )
        offsets[partition] += 1
    frame = pd.DataFrame(rows)
    frame["quantity"] = frame["quantity"].astype("Int64")
    return frame


def check(feat: Feature, events: pd.DataFrame) -> None:
    stream = run_stream_on_frame(feat, events)
    history = backfill(feat, events)
    problems = mismatches(stream, history)
    assert not problems, (
        f"{feat.spec()}\n{events[['session_id', 'event_time_ms', 'partition', 'offset']].to_string()}\n"
        + "\n".join(problems)
    )


CONFORMANCE = settings(
    max_examples=int(os.environ.get("CONFORMANCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("kind", sorted(WINDOWS))
@CONFORMANCE
@given(
    events=event_streams(),
    w=st.integers(0, 1),
    a=st.sampled_from(sorted(AGGREGATIONS)),
    e=st.integers(0, len(ENTITIES) - 1),
    f=st.integers(0, len(FILTERS) - 1),
)
def test_stream_equals_backfill(kind: str, events: pd.DataFrame, w: int, a: str, e: int, f: int) -> None:
    check(feature(kind, w, a, e, f), events)
