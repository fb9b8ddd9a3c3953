"""Point-in-time training frames: each label gets the feature values that existed before it.

A feature update becomes *available* when the record that caused it has been
processed. In event time that is the greatest event time the key has seen up
to and including that record (``available_ms``): an out-of-order record's
update is not available at its own event time, because the stream only saw
it after newer ones. The value a model would have read for a key at time
``T`` is the *last* update (in processing order) with ``available_ms < T`` —
"last update wins", exactly what an online store holding the latest update
serves. ``inclusive=True`` also admits updates available at ``T`` itself
(use it only when the label time is strictly after the prediction).

>>> import pandas as pd
>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import USER, Feature
>>> views = Feature("views", USER, win.Tumbling(size_ms=100, grace_ms=50), agg.Count())
>>> events = pd.DataFrame({"user_id": ["u"] * 3, "event_time_ms": [1000, 1030, 1010],
...                        "partition": 0, "offset": [0, 1, 2]})
>>> labels = pd.DataFrame({"user_id": ["u", "u", "u", "u"], "label_time_ms": [1000, 1001, 1020, 1031]})
>>> training_frame(labels, [views], events)["views"].tolist()
[None, 1, 1, 3]

At 1020 the out-of-order record at 1010 was not processed yet (it arrived
after 1030), so the label sees 1 view, not 2; at 1031 it sees all 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from workbench.features.definition import Feature

if TYPE_CHECKING:
    import pandas as pd


def available_updates(output: pd.DataFrame) -> pd.DataFrame:
    """Non-late update rows with ``available_ms``: the key's running max event time.

    ``output`` is a per-record output (backfill or stream) in processing order.
    Late rows still count towards the running max (they never raise it).
    """
    out = output.copy()
    # int64 first: an output with no rows has object columns, and cummax refuses those
    out["event_time_ms"] = out["event_time_ms"].astype("int64")
    out["available_ms"] = out.groupby("key", sort=False)["event_time_ms"].cummax().astype("int64")
    return out[~out["late"].astype(bool)]


def training_frame(
    labels: pd.DataFrame,
    features: Iterable[Feature],
    events: pd.DataFrame,
    label_time: str = "label_time_ms",
    inclusive: bool = False,
) -> pd.DataFrame:
    """``labels`` with one column per feature, joined as of each label's time.

    ``labels`` needs ``label_time`` (epoch ms) and the fields each feature's
    entity key is computed from (e.g. ``user_id``). A label with no earlier
    update gets None.
    """
    import pandas as pd

    from workbench.features.backfill import backfill

    result = labels.reset_index(drop=True).copy()
    result["_row"] = range(len(result))
    for feature in features:
        updates = available_updates(backfill(feature, events))
        # "last update wins": keep the last row per (key, available_ms), in processing order
        updates = updates.drop_duplicates(["key", "available_ms"], keep="last")
        right = updates[["key", "available_ms", "value"]].rename(columns={"value": feature.name})
        right = right.sort_values("available_ms", kind="stable")
        left = result[["_row", label_time]].copy()
        left["key"] = feature.entity.key_expr.evaluate_frame(result).map(
            lambda v: None if v is None else str(v)
        )
        left[label_time] = left[label_time].astype("int64")
        left = left.sort_values(label_time, kind="stable")
        joined = pd.merge_asof(
            left,
            right,
            left_on=label_time,
            right_on="available_ms",
            by="key",
            allow_exact_matches=inclusive,
            direction="backward",
        )
        values = joined.set_index("_row")[feature.name]
        result[feature.name] = (
            values.reindex(result["_row"]).astype(object).where(values.reindex(result["_row"]).notna(), None)
        ).to_numpy()
    return result.drop(columns="_row")
