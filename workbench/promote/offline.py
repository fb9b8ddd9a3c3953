"""The backfill step of a promotion: history → offline tables (Parquet) → Feast materialize.

Each view's offline table has one row per (key, time the key's row changed):
every feature's value as the stream path would have it at that record, the
values of the set's other features carried forward. ``event_timestamp`` is the
running maximum of the key's event times in processing order, so "latest by
timestamp" (what Feast materializes) is "latest processed" (what the stream
shows), and the live job's writes, which are strictly newer, continue it.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

from workbench.promote.naming import entities, join_key, online_value, view_names

if TYPE_CHECKING:
    import pandas as pd

    from workbench.features.definition import FeatureSet


def offline_tables(feature_set: FeatureSet, version: int, events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """View name -> its offline table over ``events`` (a history frame with partition/offset)."""
    import numpy as np
    import pandas as pd

    from workbench.features.backfill import backfill

    names = view_names(feature_set, version)
    frame = events.reset_index(drop=True)
    # processing position of each source record: the frame's order is the backfill's order
    position = pd.Series(np.arange(len(frame)), index=pd.MultiIndex.from_arrays(
        [frame["partition"].astype("int64"), frame["offset"].astype("int64")]))
    tables: dict[str, pd.DataFrame] = {}
    for entity in entities(feature_set):
        members = [f for f in feature_set.features if f.entity.name == entity.name]
        view, key_col = names[members[0].name], join_key(entity)
        parts = []
        for f in members:
            out = backfill(f, frame)
            if "late" in out:
                out = out[~out["late"].astype(bool)]
            if out.empty:
                continue
            pos = position.reindex(pd.MultiIndex.from_arrays(
                [out["partition"].astype("int64"), out["offset"].astype("int64")])).to_numpy()
            parts.append(pd.DataFrame({
                "pos": pos, "emit": np.arange(len(out)), "key": out["key"].astype(str).to_numpy(),
                "event_time_ms": out["event_time_ms"].astype("int64").to_numpy(), "feature": f.name,
                "value": [online_value(f, v) for v in out["value"]],
            }))  # fmt: skip
        columns = [key_col, "event_timestamp", *(f.name for f in members)]
        if not parts:
            tables[view] = pd.DataFrame(columns=columns)
            continue
        long = pd.concat(parts, ignore_index=True).sort_values(["pos", "emit"], kind="stable")
        # the last update of each feature at each record (hopping windows emit several)
        long = long.drop_duplicates(["key", "pos", "feature"], keep="last")
        # unique (key, pos, feature) after the dedup, so unstack never builds a key x pos product
        wide = long.set_index(["key", "pos", "feature"])["value"].unstack("feature").sort_index()
        times = long.groupby(["key", "pos"])["event_time_ms"].max()
        wide = wide.reindex(times.index)
        wide = wide.groupby(level="key").ffill()  # other features keep their last value
        ts = times.groupby(level="key").cummax()
        table = wide.reset_index().assign(event_time_ms=ts.to_numpy())
        table = table.drop_duplicates(["key", "event_time_ms"], keep="last")
        table["event_timestamp"] = pd.to_datetime(table["event_time_ms"], unit="ms", utc=True)
        table = table.rename(columns={"key": key_col})
        for f in members:
            if f.name not in table:
                table[f.name] = None
        tables[view] = _typed(table[columns], members)
    return tables


def _typed(table: pd.DataFrame, members: list[Any]) -> pd.DataFrame:
    from workbench.promote.naming import feast_type

    out = table.copy()
    for f in members:
        kind = feast_type(f)
        col = out[f.name]
        if kind == "Int64":
            out[f.name] = col.astype("Int64")
        elif kind == "Float64":
            out[f.name] = col.astype("float64")
        else:
            out[f.name] = col.astype(object).where(col.notna(), None)
    return out.reset_index(drop=True)


def write_tables(repo: Any, tables: dict[str, pd.DataFrame]) -> list[Any]:
    """Write each table to ``data/<view>.parquet`` atomically; returns the paths written."""
    from workbench.promote.store import data_file

    written = []
    for view, table in tables.items():
        path = repo / data_file(view)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    return written


def materialize(store: Any, tables: dict[str, pd.DataFrame]) -> int:
    """Load each view's latest row per key into the online store (Feast's materialize); returns rows."""
    import pandas as pd

    rows = 0
    for view, table in tables.items():
        if table.empty:
            continue
        start = table["event_timestamp"].min() - pd.Timedelta(seconds=1)
        end = table["event_timestamp"].max() + pd.Timedelta(seconds=1)
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints coloured banners; promote reports itself
            store.materialize(start.to_pydatetime(), end.to_pydatetime(), feature_views=[view])
        rows += int(table.iloc[:, 0].nunique())
    return rows


def seam_of(events: pd.DataFrame) -> dict[str, int]:
    """Per partition, the first offset the backfill did not cover (the live job writes from there)."""
    if events.empty:
        return {}
    last = events.groupby("partition")["offset"].max()
    return {str(int(p)): int(o) + 1 for p, o in last.items()}
