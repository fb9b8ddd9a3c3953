"""Feature methods in the notebook: backfill, check_skew with its stored record, preview on a live tap."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from workbench import config
from workbench.features import aggregations as agg
from workbench.features import review
from workbench.features import windows as win
from workbench.features.definition import SESSION, USER, Feature, FeatureSet, col
from workbench.streams.simulator import ShopSimulator

SHOP = FeatureSet("shop", [
    Feature("session_views", SESSION, win.Session(gap_ms=1_800_000), agg.Count(), where=col("event_type") == "view"),
    Feature("user_spend_1h", USER, win.Sliding(size_ms=3_600_000), agg.Sum("price"),
            where=col("event_type") == "purchase"),
])


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    config.reload()
    yield
    monkeypatch.undo()
    config.reload()


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    ev = ShopSimulator(seed=5, n_users=300, n_items=200, n_categories=6).frame(
        start_ms=1_750_000_000_000, duration_s=6 * 3600)
    # one partition in offset order, as wb.replay returns a single-partition topic
    return ev.assign(partition=0, offset=np.arange(len(ev)))


def test_skew_check_finds_zero_and_stores_its_record(history, isolated_home) -> None:
    report = SHOP.check_skew(history)
    assert report.mismatch_count == 0, report
    assert report.records == len(history)
    stored = review.latest_skew([f.hash for f in SHOP])
    assert stored is not None and stored.id == report.id and stored.mismatch_count == 0
    assert stored.data_range["partitions"] == {"0": [0, len(history) - 1]}
    assert review.latest_skew(["not-a-hash"]) is None


def test_skew_check_reports_a_planted_mismatch(history, isolated_home, monkeypatch) -> None:
    from workbench.features import backfill as backfill_module

    real = backfill_module.backfill

    def off_by_one(feature, events):  # type: ignore[no-untyped-def]
        out = real(feature, events)
        out.loc[out.index[5], "value"] = (out.loc[out.index[5], "value"] or 0) + 1
        return out

    monkeypatch.setattr(backfill_module, "backfill", off_by_one)
    report = SHOP.features[0].check_skew(history)
    assert report.mismatch_count == 1
    assert "row 5" in report.mismatches["session_views"][0]


def test_feature_backfill_stacks_the_set(history) -> None:
    out = SHOP.backfill(history)
    assert set(out["feature"]) == {"session_views", "user_spend_1h"}
    views = SHOP.features[0].backfill(history)
    assert len(out[out["feature"] == "session_views"]) == len(views)


@pytest.mark.broker
def test_preview_shows_the_stream_paths_latest_values(new_topic, history) -> None:
    import workbench as wb
    from workbench.streams import kafka
    from workbench.streams.events import encode

    topic = new_topic("preview", partitions=1)
    sample = history.head(400)
    fields = [c for c in sample.columns if c not in ("partition", "offset")]
    producer = kafka.producer()
    for row in sample[fields].to_dict("records"):
        producer.produce(topic, key=row["session_id"].encode(),
                         value=encode({k: v for k, v in row.items() if v is not None and v == v}))
    producer.flush()
    with wb.tap(topic, since="earliest") as tap:
        assert tap.wait(len(sample), timeout=30)
        latest = SHOP.preview(tap, duration_s=0.5)
        tapped = tap.df().sort_values(["partition", "offset"])
    want = review.latest_values(SHOP.features[0].backfill(tapped), "session_views")
    assert len(latest) > 0
    assert latest["session_views"].dropna().to_dict() == want["session_views"].to_dict()
