"""The reference backfill: the original per-key mask implementation, kept to check the fast one.

Per entity key, the records are arrays in processing order. For every output
row (record ``r``, window ``[start, end]``) a boolean mask marks which of the
key's records count: those at or before ``r`` in processing order, admitted
(not late), with event time inside the window; each aggregation reduces the
mask matrix (``Aggregation._backfill``). It is O(n_k^2) per key of n_k
records, so :mod:`workbench.features.backfill` uses it only where it cannot
vectorize (keys with out-of-order records under sliding and session windows,
aggregations without a vectorized form) and the tests compare the two.

>>> import pandas as pd
>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import SESSION, Feature
>>> f = Feature("n", SESSION, win.Tumbling(size_ms=10, grace_ms=5), agg.Count())
>>> ev = pd.DataFrame({"session_id": ["s"] * 4, "event_time_ms": [1001, 1005, 1012, 1003],
...                    "partition": 0, "offset": [0, 1, 2, 3]})
>>> reference_backfill(f, ev)[["offset", "window_start_ms", "value", "late"]].values.tolist()
[[0, 1000, 1, False], [1, 1000, 2, False], [2, 1010, 1, False], [3, 1000, 3, False]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import RecordArrays
from workbench.features.definition import Feature
from workbench.features.stream import OUTPUT_COLUMNS
from workbench.features.windows import Hopping, Session, Sliding, Tumbling, Window

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# rows of the mask matrix built at once (rows x records booleans)
_BLOCK_CELLS = 4_000_000


def reference_backfill(feature: Feature, events: pd.DataFrame) -> pd.DataFrame:
    """Per-record feature values over a history frame, equal to what the stream emits."""
    import numpy as np
    import pandas as pd

    frame = events.reset_index(drop=True)
    if feature.where is not None:
        frame = frame[feature.where.evaluate_frame(frame).to_numpy(dtype=bool)]
    keys = feature.entity.key_expr.evaluate_frame(frame)
    keep = keys.notna().to_numpy(dtype=bool)  # quixstreams windows skip records without a key
    frame, keys = frame[keep], keys[keep].map(str)
    values = feature.aggregation.extract_frame(frame)

    t_all = frame["event_time_ms"].to_numpy(dtype=np.int64)
    p_all = frame["partition"].to_numpy(dtype=np.int64)
    o_all = frame["offset"].to_numpy(dtype=np.int64)
    v_all = _objects(values)  # python objects as they are (lists and dicts stay whole)

    parts: list[dict[str, Any]] = []
    for key, idx in keys.groupby(keys, sort=False).indices.items():
        items = RecordArrays(t_all[idx], p_all[idx], o_all[idx], v_all[idx])
        parts.append(one_key(feature, str(key), items, idx))
    if not parts:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    # one frame at the end: building a DataFrame per key costs more than the maths
    cols = {c: np.concatenate([part[c] for part in parts]) for c in parts[0]}
    late = cols["late"]
    out = pd.DataFrame(
        {
            "partition": cols["partition"],
            "offset": cols["offset"],
            "key": cols["key"],
            "event_time_ms": cols["event_time_ms"],
            "window_start_ms": pd.array(cols["window_start_ms"], dtype="Int64"),
            "window_end_ms": pd.array(cols["window_end_ms"], dtype="Int64"),
            "value": cols["value"],
            "late": late,
        }
    )
    out.loc[late, ["window_start_ms", "window_end_ms"]] = pd.NA
    # the stream's order: by record in processing (frame) order, then by window start
    order = np.lexsort((np.where(late, np.iinfo(np.int64).min, cols["window_start_ms"]), cols["pos"]))
    return out.iloc[order].reset_index(drop=True)


def one_key(feature: Feature, key: str, items: RecordArrays, positions: np.ndarray) -> dict[str, Any]:
    import numpy as np

    rec, start, end, lo, hi = _rows(feature.window, items.t)
    values: list[Any] = []
    n = len(items.t)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    j = np.arange(n)
    admitted = _admitted(feature.window, items.t)
    for b in range(0, len(rec), block):
        r, lo_b, hi_b = rec[b : b + block], lo[b : b + block], hi[b : b + block]
        t = items.t[None, :]
        mask = (j[None, :] <= r[:, None]) & admitted[None, :] & (t >= lo_b[:, None]) & (t <= hi_b[:, None])
        values.extend(feature.aggregation._backfill(mask, items))

    late = np.setdiff1d(np.arange(n), rec)
    both = np.concatenate([rec, late])
    value_array = np.empty(len(both), dtype=object)
    value_array[: len(values)] = _objects(values)
    return {
        "pos": positions[both],
        "partition": items.p[both],
        "offset": items.o[both],
        "key": np.full(len(both), key, dtype=object),
        "event_time_ms": items.t[both],
        "window_start_ms": np.concatenate([start, np.zeros(len(late), np.int64)]),
        "window_end_ms": np.concatenate([end, np.zeros(len(late), np.int64)]),
        "value": value_array,
        "late": np.concatenate([np.zeros(len(rec), bool), np.ones(len(late), bool)]),
    }


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of lists (numpy would otherwise build a 2-d array)."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _prev_max(t: np.ndarray) -> np.ndarray:
    """Greatest event time among the key's earlier records (0 before the first).

    Records that turn out late are included: a late record is always older
    than this maximum, so it never moves it.
    """
    import numpy as np

    out = np.zeros(len(t), dtype=np.int64)
    if len(t) > 1:
        out[1:] = np.maximum.accumulate(t[:-1])
    return np.maximum(out, 0)


def _admitted(w: Window, t: np.ndarray) -> np.ndarray:
    """Records that entered state at all (may count towards later outputs)."""
    import numpy as np

    prev = _prev_max(t)
    if isinstance(w, Session):
        return ~(t < prev - w.gap_ms - w.grace_ms)
    if isinstance(w, Sliding):
        return ~(t < prev - w.grace_ms)  # the lateness gate in front of the window
    # fixed windows: a closed window is never reopened, so counting every earlier
    # record inside an open window is exact; lateness is per window (see _rows)
    return np.ones(len(t), dtype=bool)


def _rows(w: Window, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Output rows (record index, start, end) and the inclusive event-time range counted."""
    import numpy as np

    prev = _prev_max(t)
    n = len(t)
    idx = np.arange(n)
    if isinstance(w, Tumbling | Hopping):
        size = w.size_ms
        step = w.step_ms if isinstance(w, Hopping) else w.size_ms
        recs, starts = [], []
        for m in range((size + step - 1) // step):
            s = t - t % step - m * step
            ok = (s > t - size) & (s >= 0)
            recs.append(idx[ok])
            starts.append(s[ok])
        rec, start = np.concatenate(recs), np.concatenate(starts)
        end = start + size
        open_ = end > prev[rec] - w.grace_ms  # quixstreams: closed when end <= max time - grace
        rec, start, end = rec[open_], start[open_], end[open_]
        order = np.lexsort((start, rec))
        rec, start, end = rec[order], start[order], end[order]
        return rec, start, end, start, end - 1  # [start, end) on integer ms
    if isinstance(w, Sliding):
        return _sliding_rows(w, t, prev)
    if isinstance(w, Session):
        return _session_rows(w, t, prev)
    raise TypeError(f"unknown window {w!r}")


def _sliding_rows(w: Sliding, t: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, ...]:
    import numpy as np

    d = w.size_ms
    admitted = _admitted(w, t)
    recs, starts, ends = [], [], []
    for r in np.nonzero(admitted)[0]:
        # the record's own window [t - d, t], then every later record's window [u - d, u]
        # that contains t: distinct u among the admitted records so far
        u = np.unique(t[: r + 1][admitted[: r + 1]])
        u = u[(u >= t[r]) & (u - d <= t[r])]
        recs.append(np.full(len(u), r))
        starts.append(np.maximum(0, u - d))  # quixstreams clamps window starts at 0
        ends.append(u)
    if not recs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty
    rec, start, end = np.concatenate(recs), np.concatenate(starts), np.concatenate(ends)
    return rec, start, end, start, end  # both ends inclusive


def _session_rows(w: Session, t: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, ...]:
    import numpy as np

    admitted = ~(t < prev - w.gap_ms - w.grace_ms)
    rec = np.nonzero(admitted)[0]
    lo = np.empty(len(rec), dtype=np.int64)
    hi = np.empty(len(rec), dtype=np.int64)
    for i, r in enumerate(rec):
        # the session of r: the run of admitted times so far, around t[r], with no gap > gap_ms
        s = np.sort(t[: r + 1][admitted[: r + 1]])
        breaks = np.concatenate([[0], np.cumsum(np.diff(s) > w.gap_ms)])
        run = breaks == breaks[np.searchsorted(s, t[r])]
        lo[i], hi[i] = s[run][0], s[run][-1]
    return rec, lo, hi + 1, lo, hi
