"""The fast backfill against the reference on larger frames: many records per key, disorder, lateness.

The conformance suite checks tiny streams against the real quixstreams
window; here the vectorized paths (segmented scans, sorted-run reductions,
long runs through prefix sums and sparse tables, the per-key fallback for
disordered keys) meet the original mask implementation on frames big enough
to exercise them. No timing is asserted.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.aggregations import Aggregation
from workbench.features.backfill import backfill
from workbench.features.backfill_reference import reference_backfill
from workbench.features.definition import SESSION, USER, Entity, Feature, col
from workbench.features.derived import Derived, Filtered
from workbench.features.skew import mismatches

BASE_MS = 1_700_000_000_000

AGGREGATIONS: dict[str, Aggregation] = {
    "count": agg.Count(),
    "sum_float": agg.Sum("price"),
    "sum_int_nulls": agg.Sum("quantity"),
    "mean": agg.Mean("price"),
    "min": agg.Min("price"),
    "max_int": agg.Max("quantity"),
    "last": agg.Last("item_id"),
    "ctr": Derived(
        col("clicks") / col("views"),
        clicks=Filtered(agg.Count(), col("event_type") == "click"),
        views=Filtered(agg.Count(), col("event_type") == "view"),
    ),
    "distinct": agg.DistinctCount("item_id"),  # no vectorized form: the reference end to end
}

WINDOWS: dict[str, win.Window] = {
    "tumbling": win.Tumbling(size_ms=50, grace_ms=10),
    "hopping": win.Hopping(size_ms=60, step_ms=20, grace_ms=5),
    "sliding": win.Sliding(size_ms=40, grace_ms=15),
    "session": win.Session(gap_ms=6, grace_ms=10),
}


def frame(n: int, keys: int, seed: int, disorder: float) -> pd.DataFrame:
    """Sessions in two partitions; a ``disorder`` share of records jump back in time (some late)."""
    rng = np.random.default_rng(seed)
    session = rng.integers(0, keys, n)
    t = np.cumsum(rng.integers(0, 4, n))
    back = rng.random(n) < disorder
    t[back] -= rng.integers(1, 60, back.sum())
    partition = session % 2
    quantity = pd.array(rng.integers(1, 6, n), dtype="Int64")
    quantity[rng.random(n) < 0.2] = pd.NA
    events = pd.DataFrame(
        {
            "event_type": np.array(["view", "view", "click"], dtype=object)[rng.integers(0, 3, n)],
            "event_time_ms": BASE_MS + np.maximum(t, 0),
            "user_id": np.array([f"u{k % 5}" for k in range(keys)], dtype=object)[session],
            "session_id": np.array([f"s{k}" for k in range(keys)], dtype=object)[session],
            "item_id": np.array(["i1", "i2", "i3", "i4", "i5"], dtype=object)[rng.integers(0, 5, n)],
            "category": np.array(["books", "toys"], dtype=object)[rng.integers(0, 2, n)],
            "price": rng.integers(0, 4000, n) / 7,  # not dyadic: float sums round differently
            "quantity": quantity,
            "partition": partition,
        }
    )
    events["offset"] = events.groupby("partition").cumcount()
    return events


@pytest.mark.parametrize("kind", sorted(WINDOWS))
@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_fast_backfill_equals_reference(kind: str, name: str) -> None:
    events = frame(3000, keys=12, seed=zlib.crc32(f"{kind}/{name}".encode()), disorder=0.03)
    # keys 0-5 stay in event-time order, so sliding and session take the vectorized path for them
    in_order = events["session_id"].isin([f"s{k}" for k in range(6)])
    events.loc[in_order, "event_time_ms"] = (
        events.loc[in_order].groupby("session_id")["event_time_ms"].cummax()
    )
    for entity in (SESSION, USER, Entity("user_item", col("user_id") + "|" + col("item_id"))):
        f = Feature(f"{kind}_{name}", entity, WINDOWS[kind], AGGREGATIONS[name])
        problems = mismatches(reference_backfill(f, events), backfill(f, events))
        assert not problems, f"{entity.name}: " + "\n".join(problems)


@pytest.mark.parametrize("name", ["sum_float", "mean", "min", "max_int", "last", "count"])
def test_long_sliding_runs_use_prefix_sums_and_sparse_tables(name: str) -> None:
    # one in-order key whose window spans most of the history: runs far longer than the
    # direct-reduction budget, so sums go through extended-precision prefix sums and
    # min/max/last through the sparse table
    events = frame(2500, keys=1, seed=5, disorder=0.0)
    f = Feature(name, SESSION, win.Sliding(size_ms=4000), AGGREGATIONS[name])
    problems = mismatches(reference_backfill(f, events), backfill(f, events))
    assert not problems, "\n".join(problems)


def test_filtered_feature_and_missing_keys() -> None:
    events = frame(1500, keys=6, seed=9, disorder=0.05)
    events.loc[events.index % 7 == 0, "user_id"] = None  # records without a key are skipped
    for w in WINDOWS.values():
        f = Feature("views", USER, w, agg.Sum("price"), where=col("event_type") == "view")
        assert not mismatches(reference_backfill(f, events), backfill(f, events))


def test_empty_input() -> None:
    events = frame(10, keys=2, seed=1, disorder=0.0).iloc[:0]
    f = Feature("n", SESSION, WINDOWS["sliding"], agg.Count())
    assert len(backfill(f, events)) == 0
