"""The promotion's offline tables: one row per change of a key, latest row = the stream's latest value."""

from __future__ import annotations

import numpy as np

from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.backfill import backfill
from workbench.features.definition import ITEM, SESSION, Feature, FeatureSet, col
from workbench.promote.naming import online_value
from workbench.promote.offline import offline_tables, seam_of
from workbench.streams.simulator import ShopSimulator


def test_offline_tables_end_at_each_keys_latest_value() -> None:
    sim = ShopSimulator(seed=3, n_users=400, n_items=150, n_categories=5)
    events = sim.frame(start_ms=1_750_000_000_000, duration_s=6 * 3600)
    events = events.assign(partition=0, offset=np.arange(len(events)))
    fs = FeatureSet("shop", [
        Feature("views", SESSION, win.Session(gap_ms=600_000), agg.Count(), where=col("event_type") == "view"),
        Feature("items", SESSION, win.Session(gap_ms=600_000), agg.LastN("item_id", n=3)),
        Feature("price", ITEM, win.Sliding(size_ms=3_600_000), agg.Last("price")),
    ])  # fmt: skip
    tables = offline_tables(fs, 1, events)
    assert set(tables) == {"shop_session_v1", "shop_item_v1"}
    sessions = tables["shop_session_v1"]
    # at most one row per record (never a key x record product), timestamps never go back per key
    assert 0 < len(sessions) <= len(events)
    assert (sessions.groupby("session_id")["event_timestamp"].apply(lambda t: t.is_monotonic_increasing)).all()
    latest = sessions.groupby("session_id").last()
    for f in fs.features[:2]:
        out = backfill(f, events)
        want = out[~out["late"].astype(bool)].groupby("key")["value"].last()
        got = latest[f.name].dropna()
        assert {k: online_value(f, v) for k, v in want.items()} == got.to_dict()
    assert seam_of(events) == {"0": len(events)}
