"""A feature set worth reviewing, on a fresh topic of the real broker: definitions, skew and evaluation records.

The skew record comes from the real check (both paths over the replayed
topic); the evaluation record is written directly with a "better" verdict,
since what these tests exercise is how the app and the magics show it.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.features.definition import FeatureSet

LIFT = {"n": 5000, "mean_diff": 0.004, "low": 0.001, "high": 0.007, "relative": 0.038,
        "relative_low": 0.012, "relative_high": 0.064, "confidence": 0.95, "block": 17, "verdict": "better"}


def shop_set(name: str, topic: str) -> FeatureSet:
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import ITEM, SESSION, Feature, FeatureSet, col

    return FeatureSet(name, [
        Feature("session_views", SESSION, win.Session(gap_ms=1_800_000), agg.Count(),
                where=col("event_type") == "view", source=topic),
        Feature("item_price", ITEM, win.Sliding(size_ms=3_600_000), agg.Last("price"), source=topic),
    ])  # fmt: skip


def stream_shop(s: Settings, topic: str, duration_s: float = 600, seed: int = 3) -> int:
    """Simulated shop events of the last ``duration_s`` seconds into ``topic``; returns how many."""
    from workbench.streams.produce import produce_events
    from workbench.streams.simulator import ShopSimulator

    sim = ShopSimulator(seed=seed, n_users=200, n_items=80, n_categories=5, diurnal_amplitude=0.0)
    start = int(time.time() * 1000) - int(duration_s * 1000)
    stats = produce_events(sim.events(start, duration_s, events_per_s=2.0), topic, s=s)
    assert stats.produced > 0 and stats.errors == 0, stats.line()
    return stats.produced


def reviewed_set(s: Settings, topic: str, name: str | None = None, evaluated: bool = True) -> FeatureSet:
    """Stream events, check skew for real (stored, 0 mismatches), store a passing evaluation."""
    from workbench.evaluation import records
    from workbench.taps.replay import replay

    name = name or f"review_{uuid.uuid4().hex[:8]}"
    stream_shop(s, topic)
    fs = shop_set(name, topic)
    report = fs.check_skew(replay(topic, progress=False))  # also registers the set by name
    assert report.mismatch_count == 0 and report.records > 0, report
    if evaluated:
        hashes = sorted(f.hash for f in fs.features)
        records.save(records.EvaluationRecord(
            model_spec={"class": "river.linear_model.LogisticRegression"}, baseline_hashes=hashes[:1],
            candidate_hashes=hashes, data_range={"topic": None, "partitions": {}}, label_delay_ms=1_800_000,
            metrics={"baseline": {"LogLoss": 0.31}, "candidate": {"LogLoss": 0.298}}, lift=LIFT,
            verdict="better", feature_set=name))  # fmt: skip
    return fs
