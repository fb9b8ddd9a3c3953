"""The feature sets the recommender reads: item features and session items, each one set of definitions.

Both are ordinary :class:`~workbench.features.definition.FeatureSet` objects, promoted like
any other (``wb.promote``); the service reads their online rows, and offline
code reads the backfill of the very same definitions.

``session_features()`` keeps what a visitor did in this visit (impressions
are what we showed, not what they did, so they are left out): the last
distinct items, the newest event time, the number of events.

``item_features()`` is an ordinary :class:`~workbench.features.definition.FeatureSet`
(entity ``ITEM``): views over three sliding windows, impressions and clicks
over a day, the item's CTR over the same window, and the newest event time
(from which the ranker computes the item's age at request time). It is
promoted like any other set (``wb.promote``), and the same definitions'
backfill gives offline values as of any instant:

>>> import pandas as pd
>>> ev = pd.DataFrame({"item_id": ["a", "a", "b", "a"], "event_type": ["view", "impression", "view", "click"],
...                    "event_time_ms": [1_000, 2_000, 3_000, 4_000], "partition": 0, "offset": [0, 1, 2, 3]})
>>> pit = PointInTimeItemFeatures(item_features(), ev)
>>> m = pit.lookup(["a", "b", "zzz"], now_ms=3_500)
>>> m[:, pit.names.index("item_views_1h")].tolist()
[1.0, 1.0, nan]
>>> float(pit.lookup(["a"], now_ms=4_001)[0][pit.names.index("item_ctr_1d")])
1.0

A value is visible strictly after the record that produced it, as in
:func:`workbench.features.training.training_frame`; a missing one is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.features.definition import FeatureSet

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def item_features(source: str = "events", name: str = "items") -> FeatureSet:
    """The item feature set the ranker reads (written to ``features.<name>``).

    >>> fs = item_features()
    >>> [f.name for f in fs.features]
    ['item_views_1h', 'item_views_1d', 'item_views_7d', 'item_impressions_1d', 'item_clicks_1d', 'item_ctr_1d', 'item_last_event_ms']
    """
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import ITEM, Feature, FeatureSet
    from workbench.features.derived import Derived, Filtered
    from workbench.features.expr import col

    view = col("event_type") == "view"
    day = win.Sliding(size_ms=DAY_MS)
    ctr = Derived(col("clicks") / col("impressions"),
                  clicks=Filtered(agg.Count(), col("event_type") == "click"),
                  impressions=Filtered(agg.Count(), col("event_type") == "impression"))
    return FeatureSet(name, [
        Feature("item_views_1h", ITEM, win.Sliding(size_ms=HOUR_MS), agg.Count(), where=view, source=source),
        Feature("item_views_1d", ITEM, day, agg.Count(), where=view, source=source),
        Feature("item_views_7d", ITEM, win.Sliding(size_ms=7 * DAY_MS), agg.Count(), where=view, source=source),
        Feature("item_impressions_1d", ITEM, day, agg.Count(), where=col("event_type") == "impression",
                source=source),
        Feature("item_clicks_1d", ITEM, day, agg.Count(), where=col("event_type") == "click", source=source),
        Feature("item_ctr_1d", ITEM, day, ctr, source=source),
        Feature("item_last_event_ms", ITEM, day, agg.Max("event_time_ms"), source=source),
    ])  # fmt: skip


def session_features(gap_ms: int = 30 * 60_000, source: str = "events", name: str = "rec_session",
                     last_n: int = 10) -> FeatureSet:  # fmt: skip
    """The session set the service reads: ``session_items`` (last distinct, oldest first) and friends.

    >>> [f.name for f in session_features().features]
    ['session_items', 'session_last_event_ms', 'session_events']
    """
    from workbench.features import aggregations as agg
    from workbench.features.definition import SESSION, Feature, FeatureSet
    from workbench.features.expr import col
    from workbench.features.session import RecentItems
    from workbench.features.windows import Session

    acted = col("event_type") != "impression"
    window = Session(gap_ms=gap_ms)
    return FeatureSet(name, [
        Feature("session_items", SESSION, window, RecentItems("item_id", n=last_n), where=acted, source=source),
        Feature("session_last_event_ms", SESSION, window, agg.Max("event_time_ms"), where=acted, source=source),
        Feature("session_events", SESSION, window, agg.Count(), where=acted, source=source),
    ])  # fmt: skip


def _float(v: Any) -> float:
    try:
        return float("nan") if v is None else float(v)
    except (TypeError, ValueError):
        return float("nan")


class PointInTimeItemFeatures:
    """Every item feature's value as of any time, from the backfill of the definitions over ``events``.

    ``lookup(items, now_ms)`` returns a ``(len(items), len(names))`` float
    matrix: what an online store fed by the stream held just before ``now_ms``.
    """

    def __init__(self, feature_set: FeatureSet, events: pd.DataFrame) -> None:
        import numpy as np

        from workbench.features.backfill import backfill
        from workbench.features.training import available_updates

        self.feature_set = feature_set
        self.names = [f.name for f in feature_set.features]
        self.hashes = {f.name: f.hash for f in feature_set.features}
        frame = events.reset_index(drop=True)
        if "partition" not in frame.columns:
            frame = frame.assign(partition=0)
        if "offset" not in frame.columns:
            frame = frame.assign(offset=np.arange(len(frame)))
        items = frame["item_id"].astype(str).unique()
        self.index = {str(i): j for j, i in enumerate(items)}
        self._tables: list[tuple[np.ndarray, np.ndarray]] = []
        for f in feature_set.features:
            up = available_updates(backfill(f, frame))
            # last update wins per (key, available time), as an online store holds it
            up = up.drop_duplicates(["key", "available_ms"], keep="last")
            code = up["key"].astype(str).map(self.index).to_numpy(dtype="int64")
            t = up["available_ms"].to_numpy(dtype="int64")
            order = np.lexsort((t, code))
            composite = code[order] * (1 << 42) + t[order]
            values = np.array([_float(v) for v in up["value"].to_numpy()[order]], dtype="float64")
            self._tables.append((composite, values))

    def lookup(self, items: Sequence[str], now_ms: int) -> np.ndarray:
        import numpy as np

        codes = np.array([self.index.get(str(i), -1) for i in items], dtype="int64")
        out = np.full((len(items), len(self.names)), np.nan)
        known = codes >= 0
        if not known.any():
            return out
        target = codes[known] * (1 << 42) + int(now_ms)
        for j, (composite, values) in enumerate(self._tables):
            if len(composite) == 0:
                continue
            pos = np.searchsorted(composite, target, side="left") - 1  # strictly before now_ms
            ok = (pos >= 0) & ((composite[np.maximum(pos, 0)] >> 42) == codes[known])
            col = np.full(len(target), np.nan)
            col[ok] = values[pos[ok]]
            out[known, j] = col
        return out
