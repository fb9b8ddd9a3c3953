"""Vectorized aggregations for the backfill: every output row reduces a contiguous run of members.

The backfill lays the records it aggregates out as *members* (one per record
and window for fixed windows, one per record otherwise) sorted so that the
records counting towards an output row are a contiguous run ``[lo, hi]`` of
members. Two shapes occur:

* **prefix** (tumbling, hopping, in-order session): the run is the row's
  segment (its key and window) up to the row itself, so one segmented scan
  (cumulative sum / max / min restarting at each segment) answers every row
  in O(n);
* **range** (in-order sliding): ``[lo, hi]`` with both ends moving forward,
  answered by prefix-sum differences (exact for integers), direct
  ``reduceat`` when the runs are short, or a sparse table for min/max.

:func:`reduce_rows` maps an aggregation onto these reductions. It returns
None for an aggregation without a vectorized form (custom ones, distinct
counts, top-k, last-n, decayed sums); the backfill then uses the reference.

>>> import numpy as np
>>> q = Runs(np.array([0, 0, 2]), np.array([0, 1, 2]), 3, first=np.array([True, False, True]))
>>> q.sum(np.array([1, 2, 5])).tolist()
[1, 3, 5]
>>> q.max(np.array([4, 1, 5])).tolist()
[4, 4, 5]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Aggregation, Count, Last, Max, Mean, Min, Sum
from workbench.features.expr import Expr

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Direct reduceat over the runs when their total length is at most this many times the members.
_DIRECT_FACTOR = 32


class Runs:
    """The member run ``[lo[i], hi[i]]`` (inclusive) of each output row ``i``.

    ``first`` (per member: does a segment start here) makes these prefix runs:
    ``lo[i]`` is then the first member of ``hi[i]``'s segment, so scans answer
    every row at once.
    """

    def __init__(
        self, lo: np.ndarray, hi: np.ndarray, n_members: int, first: np.ndarray | None = None
    ) -> None:
        import numpy as np

        self.lo, self.hi, self.n = lo, hi, n_members
        self.prefix = first is not None
        if first is not None:
            self.segment = np.cumsum(first) - 1  # segment id of every member

    def _direct_ok(self) -> bool:
        return int((self.hi - self.lo + 1).sum()) <= _DIRECT_FACTOR * max(self.n, 1)

    def _reduceat(self, ufunc: Any, x: np.ndarray) -> np.ndarray:
        """``ufunc`` over each run: reduceat on interleaved (lo, hi + 1) bounds."""
        import numpy as np

        if not len(self.lo):
            return x[:0]
        padded = np.concatenate([x, x[-1:]])  # hi + 1 may be n: reduceat needs a valid index
        idx = np.empty(2 * len(self.lo), dtype=np.int64)
        idx[0::2], idx[1::2] = self.lo, self.hi + 1
        out: np.ndarray = ufunc.reduceat(padded, idx)[0::2]
        return out

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Sum over each run; int64 exact, float64 in member order where it matters."""
        import numpy as np
        import pandas as pd

        if x.dtype.kind in "iub":
            c = np.concatenate([[0], np.cumsum(x, dtype=np.int64)])
            out: np.ndarray = c[self.hi + 1] - c[self.lo]
            return out
        x = x.astype(np.float64)
        if self.prefix:
            # a running sum per segment adds in member order, exactly as the stream's state does
            scanned = pd.Series(x).groupby(self.segment, sort=False).cumsum().to_numpy()
            result: np.ndarray = scanned[self.hi]
            return result
        if self._direct_ok():
            return self._reduceat(np.add, x)
        # long runs: extended-precision prefix sums keep the difference accurate far below 1e-9
        c = np.concatenate([[0], np.cumsum(x.astype(np.longdouble))])
        diff: np.ndarray = (c[self.hi + 1] - c[self.lo]).astype(np.float64)
        return diff

    def max(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return self._extreme(x, np.maximum)

    def min(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return self._extreme(x, np.minimum)

    def _extreme(self, x: np.ndarray, ufunc: Any) -> np.ndarray:
        import numpy as np
        import pandas as pd

        if self.prefix:
            grouped = pd.Series(x).groupby(self.segment, sort=False)
            scanned = (grouped.cummax() if ufunc is np.maximum else grouped.cummin()).to_numpy()
            out: np.ndarray = scanned[self.hi]
            return out
        if self._direct_ok():
            return self._reduceat(ufunc, x)
        return _sparse_table_query(x, self.lo, self.hi, ufunc)


def _sparse_table_query(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, ufunc: Any) -> np.ndarray:
    """Idempotent range reduction: two overlapping power-of-two blocks per run, one level at a time."""
    import numpy as np

    length = hi - lo + 1
    level = np.zeros(len(lo), dtype=np.int64)
    if len(lo):
        level = np.floor(np.log2(length)).astype(np.int64)
    out = np.empty(len(lo), dtype=x.dtype)
    table = x
    for k in range(int(level.max()) + 1 if len(lo) else 0):
        if k:
            half = 1 << (k - 1)
            table = ufunc(table[:-half], table[half:])  # table[i] = reduce x[i : i + 2**k]
        sel = np.nonzero(level == k)[0]
        if len(sel):
            out[sel] = ufunc(table[lo[sel]], table[hi[sel] - (1 << k) + 1])
    return out


# -- aggregations on runs -------------------------------------------------------


class Columns:
    """The events frame an aggregation reads, with member -> frame row and the records that count."""

    def __init__(self, frame: pd.DataFrame, seq: np.ndarray, include: np.ndarray | None = None) -> None:
        self.frame, self.seq, self.include = frame, seq, include
        self._rank: np.ndarray | None = None

    def restricted(self, passes: np.ndarray) -> Columns:
        include = passes if self.include is None else self.include & passes
        out = Columns(self.frame, self.seq, include)
        out._rank = self._rank
        return out

    def included(self) -> np.ndarray:
        """Per member: does its record count at all (a Filtered condition)."""
        import numpy as np

        if self.include is None:
            return np.ones(len(self.seq), dtype=bool)
        result: np.ndarray = self.include[self.seq]
        return result

    def numeric(self, field: Expr) -> tuple[np.ndarray, np.ndarray] | None:
        """(values, valid) per member: int64 when every value is an int (exact sums), else float64."""
        import numpy as np
        import pandas as pd

        if field.op == "col" and field.args[0] in self.frame.columns:
            col = self.frame[field.args[0]]
            valid = col.notna().to_numpy()
            if pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
                vals = col.to_numpy(dtype=np.int64, na_value=0)
            elif pd.api.types.is_float_dtype(col):
                vals = col.to_numpy(dtype=np.float64, na_value=0.0)
            else:
                return None
        else:
            objs = field.evaluate_frame(self.frame).tolist()
            present = [x for x in objs if x is not None]
            if not all(isinstance(x, int | float) for x in present):
                return None
            ints = all(isinstance(x, int) for x in present)
            valid = np.array([x is not None for x in objs], dtype=bool)
            vals = np.array([0 if x is None else x for x in objs], dtype=np.int64 if ints else np.float64)
        return vals[self.seq], valid[self.seq] & self.included()

    def objects(self, field: Expr) -> np.ndarray:
        """Python values per frame row (None for null), as the stream state sees them."""

        out: np.ndarray = field.evaluate_frame(self.frame).to_numpy(dtype=object)  # lists stay whole
        return out

    def rank(self) -> np.ndarray:
        """Rank of every frame row by (event time, partition, offset): "last" is the highest."""
        import numpy as np

        if self._rank is None:
            f = self.frame
            order = np.lexsort((f["offset"].to_numpy(), f["partition"].to_numpy(), f["event_time_ms"].to_numpy()))
            self._rank = np.empty(len(order), dtype=np.int64)
            self._rank[order] = np.arange(len(order))
        return self._rank


def reduce_rows(agg: Aggregation, cols: Columns, runs: Runs) -> np.ndarray | None:
    """Value of ``agg`` for every run as an object array of python values; None when unsupported."""
    import numpy as np

    from workbench.features.derived import Derived, Filtered

    kind = type(agg)
    if kind is Count:
        return _objects(runs.sum(cols.included().astype(np.int64)))
    if kind is Filtered:
        assert isinstance(agg, Filtered)
        passes = agg.where.evaluate_frame(cols.frame).astype(bool).to_numpy()
        return reduce_rows(agg.inner, cols.restricted(passes), runs)
    if kind is Derived:
        assert isinstance(agg, Derived)
        results = {}
        for name, inner in agg.inputs.items():
            inner_values = reduce_rows(inner, cols, runs)
            if inner_values is None:
                return None
            results[name] = inner_values
        names = list(results)
        rows = zip(*results.values(), strict=True)
        combined = [agg.expr.evaluate(dict(zip(names, row, strict=True))) for row in rows]
        return _objects(combined) if combined else np.empty(len(runs.hi), dtype=object)
    if kind is Last:
        assert agg.field is not None
        return _last(agg.field, cols, runs)
    if kind not in (Sum, Mean, Min, Max) or agg.field is None:
        return None
    got = cols.numeric(agg.field)
    if got is None:
        return None
    vals, valid = got
    if kind is Sum:
        return _objects(runs.sum(np.where(valid, vals, 0)))
    n_valid = runs.sum(valid.astype(np.int64))
    out: np.ndarray
    if kind is Mean:
        sums = runs.sum(np.where(valid, vals, 0))
        out = _objects(sums / np.maximum(n_valid, 1))
    else:
        pick_max = kind is Max
        if vals.dtype.kind == "f":
            fill: Any = -np.inf if pick_max else np.inf
        else:
            fill = np.iinfo(np.int64).min if pick_max else np.iinfo(np.int64).max
        filled = np.where(valid, vals, fill)
        out = _objects(runs.max(filled) if pick_max else runs.min(filled))
    out[n_valid == 0] = None
    return out


def _last(field: Expr, cols: Columns, runs: Runs) -> np.ndarray:
    import numpy as np

    values = cols.objects(field)
    valid = np.array([v is not None for v in values], dtype=bool)[cols.seq] & cols.included()
    rank = cols.rank()
    best = runs.max(np.where(valid, rank[cols.seq], -1))
    by_rank = np.empty(len(rank), dtype=np.int64)
    by_rank[rank] = np.arange(len(rank))
    out = np.empty(len(best), dtype=object)
    found = best >= 0
    out[found] = values[by_rank[best[found]]]
    return out


def _objects(values: Any) -> np.ndarray:
    """A 1-d object array of python scalars (numpy scalars would leak into the output)."""
    import numpy as np

    items = values.tolist() if hasattr(values, "tolist") else list(values)
    # fromiter never reads a list value as a row of a 2-d array
    return np.fromiter(items, dtype=object, count=len(items))
