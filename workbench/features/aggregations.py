"""Aggregations: one object serves the stream path and the backfill.

An aggregation is a small commutative monoid: ``initialize()``, ``update(state,
value, event_time_ms)``, ``merge(a, b)`` and ``result(state)``. The stream path
wraps it in a quixstreams aggregator (state lives in RocksDB as JSON, so states
are plain lists, dicts, numbers and strings). The backfill gets a boolean
matrix ``mask[row, j]`` ("record j counts towards output row") and computes all
rows at once with numpy where it can.

Field aggregations skip records whose field is null; ``Count`` counts records.
"Last" means the greatest event time, ties broken by (partition, offset), so
the answer does not depend on arrival order.

>>> agg = Sum("price")
>>> state = agg.initialize()
>>> for price in (2.5, 4.0):
...     state = agg.update(state, price, 0)
>>> agg.result(state)
6.5
>>> top = TopK("category", k=2)
>>> s = top.initialize()
>>> for c in ["books", "toys", "books", "games"]:
...     s = top.update(s, c, 0)
>>> top.result(s)
[['books', 2], ['games', 1]]

A custom aggregation is a subclass; it works on both paths. Its update must
not depend on arrival order (session merges and sliding windows reorder).

>>> class SumOfSquares(Aggregation):
...     kind = "sum_of_squares"
...     def initialize(self): return 0
...     def update(self, state, value, event_time_ms): return state + value * value
...     def merge(self, a, b): return a + b
...     def result(self, state): return state
>>> SumOfSquares("quantity").spec()["kind"]
'custom:sum_of_squares'
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.features.expr import Expr, as_expr
from workbench.features.fingerprint import class_fingerprint

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# A record as aggregations see it on both paths: [event_time_ms, partition, offset, value].
Item = list[Any]


class Aggregation:
    """Base of every aggregation; subclass it for a custom one (see module docstring)."""

    kind: ClassVar[str] = ""
    needs_field: ClassVar[bool] = True
    builtin: ClassVar[bool] = False

    def __init__(self, field: str | Expr | None = None) -> None:
        if self.needs_field and field is None:
            raise TypeError(f"{type(self).__name__} needs a field")
        self.field: Expr | None = None if field is None else as_expr(field)

    # -- the monoid (override these in a custom aggregation) ----------------
    def initialize(self) -> Any:
        raise NotImplementedError

    def update(self, state: Any, value: Any, event_time_ms: int) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def result(self, state: Any) -> Any:
        return state

    # -- identity --------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Parameters other than the field that change the result."""
        return {}

    def spec(self) -> dict[str, Any]:
        """Canonical JSON form; a custom class contributes its normalized code."""
        spec: dict[str, Any] = {
            "kind": self.kind,
            "field": self.field.spec() if self.field is not None else None,
        }
        spec.update(self.params())
        if not self.builtin:
            spec["kind"] = f"custom:{self.kind or type(self).__name__}"
            spec["code"] = class_fingerprint(type(self))
        return spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"

    # -- plumbing used by both paths ---------------------------------------
    def extract(self, event: dict[str, Any]) -> Any:
        """The value this aggregation reads from one event (the stream path)."""
        return None if self.field is None else self.field.evaluate(event)

    def extract_frame(self, frame: pd.DataFrame) -> list[Any]:
        """The same values for every row of a frame (the backfill path)."""
        if self.field is None:
            return [None] * len(frame)
        return list(self.field.evaluate_frame(frame).tolist())

    def _update_item(self, state: Any, item: Item) -> Any:
        if self.field is not None and item[3] is None:
            return state
        return self.update(state, item[3], item[0])

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        """Result per mask row; the default folds ``update`` in processing order."""
        out = []
        for row in mask:
            state = self.initialize()
            for j in row.nonzero()[0]:
                state = self._update_item(state, items.item(int(j)))
            out.append(self.result(state))
        return out


class RecordArrays:
    """The records of one key in processing order, as the backfill sees them."""

    def __init__(self, t: np.ndarray, p: np.ndarray, o: np.ndarray, v: np.ndarray) -> None:
        import numpy as np

        self.t, self.p, self.o, self.v = t, p, o, v
        self.valid = np.array([x is not None for x in v], dtype=bool)
        # rank by (event time, partition, offset): "last" is the highest rank
        self.rank = np.empty(len(t), dtype=np.int64)
        self.rank[np.lexsort((o, p, t))] = np.arange(len(t))

    def item(self, j: int) -> Item:
        return [int(self.t[j]), int(self.p[j]), int(self.o[j]), self.v[j]]

    def numeric(self) -> np.ndarray:
        """Values as int64 when every value is an int (exact sums), else float64; nulls are 0."""
        import numpy as np

        vals = [x for x in self.v if x is not None]
        dtype = np.int64 if all(isinstance(x, int | np.integer) for x in vals) else np.float64
        return np.array([x if x is not None else 0 for x in self.v], dtype=dtype)


def _py(x: Any) -> Any:
    """numpy scalar -> python scalar, so both paths return the same types."""
    return x.item() if hasattr(x, "item") else x


class Count(Aggregation):
    """Number of records in the window."""

    kind = "count"
    needs_field = False
    builtin = True

    def initialize(self) -> int:
        return 0

    def _update_item(self, state: int, item: Item) -> int:
        return state + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        return [int(x) for x in mask.sum(axis=1)]


class Sum(Aggregation):
    """Sum of a numeric field (0 for an empty window); exact for int fields."""

    kind = "sum"
    builtin = True

    def initialize(self) -> Any:
        return 0

    def update(self, state: Any, value: Any, event_time_ms: int) -> Any:
        return state + value

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        vals = np.where(items.valid, items.numeric(), 0)
        return [_py(x) for x in (mask.astype(vals.dtype) @ vals)]


class Mean(Aggregation):
    """Mean of a numeric field; None for a window with no values."""

    kind = "mean"
    builtin = True

    def initialize(self) -> list[Any]:
        return [0, 0]

    def update(self, state: list[Any], value: Any, event_time_ms: int) -> list[Any]:
        return [state[0] + value, state[1] + 1]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, state: list[Any]) -> float | None:
        return state[0] / state[1] if state[1] else None

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        m = mask & items.valid
        vals = np.where(items.valid, items.numeric(), 0)
        sums = m.astype(vals.dtype) @ vals
        counts = m.sum(axis=1)
        return [(_py(s) / int(c)) if c else None for s, c in zip(sums, counts, strict=True)]


class _Extreme(Aggregation):
    builtin = True
    _pick: ClassVar[Any] = min

    def initialize(self) -> Any:
        return None

    def update(self, state: Any, value: Any, event_time_ms: int) -> Any:
        return value if state is None else type(self)._pick(state, value)

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return b if a is None else a
        return type(self)._pick(a, b)

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        m = mask & items.valid
        vals = items.numeric()
        if type(self)._pick is min:
            filled = np.where(m, vals, np.inf if vals.dtype.kind == "f" else np.iinfo(np.int64).max)
            best = filled.min(axis=1) if len(vals) else np.zeros(len(m))
        else:
            filled = np.where(m, vals, -np.inf if vals.dtype.kind == "f" else np.iinfo(np.int64).min)
            best = filled.max(axis=1) if len(vals) else np.zeros(len(m))
        return [_py(b) if any_ else None for b, any_ in zip(best, m.any(axis=1), strict=True)]


class Min(_Extreme):
    """Smallest value of a field."""

    kind = "min"
    _pick = min


class Max(_Extreme):
    """Largest value of a field."""

    kind = "max"
    _pick = max


class DistinctCount(Aggregation):
    """Number of distinct non-null values of a field."""

    kind = "distinct_count"
    builtin = True

    def initialize(self) -> list[Any]:
        return []

    def update(self, state: list[Any], value: Any, event_time_ms: int) -> list[Any]:
        return state if value in state else [*state, value]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return a + [x for x in b if x not in a]

    def result(self, state: list[Any]) -> int:
        return len(state)

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        codes, _ = _codes(items)
        m = mask & items.valid
        if not len(codes):
            return [0] * len(m)
        onehot = np.zeros((len(codes), int(codes.max()) + 1), dtype=np.int64)
        onehot[np.arange(len(codes)), codes] = 1
        return [int(x) for x in ((m.astype(np.int64) @ onehot) > 0).sum(axis=1)]


def _codes(items: RecordArrays) -> tuple[np.ndarray, list[str]]:
    """Integer code per record by the JSON text of its value (how the stream state sees it)."""
    import numpy as np

    texts = [json.dumps(x) for x in items.v]
    uniq = sorted(set(texts))
    index = {s: i for i, s in enumerate(uniq)}
    return np.array([index[s] for s in texts], dtype=np.int64), uniq


class Last(Aggregation):
    """Value of the record with the greatest event time (ties: greatest partition, offset)."""

    kind = "last"
    builtin = True

    def initialize(self) -> Item | None:
        return None

    def _update_item(self, state: Item | None, item: Item) -> Item | None:
        if item[3] is None:
            return state
        return item if state is None or item[:3] > state[:3] else state

    def merge(self, a: Item | None, b: Item | None) -> Item | None:
        if a is None or b is None:
            return b if a is None else a
        return b if b[:3] > a[:3] else a

    def result(self, state: Item | None) -> Any:
        return None if state is None else state[3]

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        m = mask & items.valid
        ranks = np.where(m, items.rank, -1)
        best = ranks.argmax(axis=1) if len(items.rank) else np.zeros(len(m), dtype=int)
        return [items.v[j] if any_ else None for j, any_ in zip(best, m.any(axis=1), strict=True)]


class LastN(Aggregation):
    """The ``n`` latest values by event time, oldest first."""

    kind = "last_n"
    builtin = True

    def __init__(self, field: str | Expr, n: int) -> None:
        super().__init__(field)
        if n < 1:
            raise ValueError("LastN.n must be >= 1")
        self.n = n

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def initialize(self) -> list[Item]:
        return []

    def _update_item(self, state: list[Item], item: Item) -> list[Item]:
        if item[3] is None:
            return state
        return self.merge(state, [item])

    def merge(self, a: list[Item], b: list[Item]) -> list[Item]:
        return sorted(a + b, key=lambda it: it[:3])[-self.n :]

    def result(self, state: list[Item]) -> list[Any]:
        return [it[3] for it in state]

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        order = np.argsort(items.rank)  # record indices by ascending (t, p, o)
        m = (mask & items.valid)[:, order]
        return [[items.v[j] for j in order[row.nonzero()[0][-self.n :]]] for row in m]


class TopK(Aggregation):
    """The ``k`` most frequent values as ``[value, count]``; ties by the value's JSON text."""

    kind = "top_k"
    builtin = True

    def __init__(self, field: str | Expr, k: int) -> None:
        super().__init__(field)
        if k < 1:
            raise ValueError("TopK.k must be >= 1")
        self.k = k

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def initialize(self) -> dict[str, int]:
        return {}

    def update(self, state: dict[str, int], value: Any, event_time_ms: int) -> dict[str, int]:
        key = json.dumps(value)  # JSON state keys must be strings
        return {**state, key: state.get(key, 0) + 1}

    def merge(self, a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}

    def result(self, state: dict[str, int]) -> list[list[Any]]:
        best = sorted(state.items(), key=lambda kv: (-kv[1], kv[0]))[: self.k]
        return [[json.loads(k), n] for k, n in best]

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        codes, texts = _codes(items)
        m = mask & items.valid
        if not len(codes):
            return [[] for _ in range(len(m))]
        onehot = np.zeros((len(codes), len(texts)), dtype=np.int64)
        onehot[np.arange(len(codes)), codes] = 1
        counts = m.astype(np.int64) @ onehot
        out = []
        for row in counts:
            # texts are sorted, so a stable sort by -count breaks ties by JSON text
            idx = np.argsort(-row, kind="stable")[: self.k]
            out.append([[json.loads(texts[i]), int(row[i])] for i in idx if row[i] > 0])
        return out


class DecayedSum(Aggregation):
    """Sum of a field, each value weighted ``2 ** -((T - t) / half_life_ms)``.

    ``T`` is the greatest event time in the window, so the value is "as of the
    newest record" and does not depend on arrival order.
    """

    kind = "decayed_sum"
    builtin = True

    def __init__(self, field: str | Expr | None, half_life_ms: int) -> None:
        super().__init__(field)
        if half_life_ms <= 0:
            raise ValueError("half_life_ms must be > 0")
        self.half_life_ms = half_life_ms

    def params(self) -> dict[str, Any]:
        return {"half_life_ms": self.half_life_ms}

    def initialize(self) -> list[Any] | None:
        return None

    def _weight(self, value: Any) -> float:
        return float(value)

    def _update_item(self, state: list[Any] | None, item: Item) -> list[Any] | None:
        if self.field is not None and item[3] is None:
            return state
        return self.merge(state, [item[0], self._weight(item[3])])

    def merge(self, a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
        if a is None or b is None:
            return b if a is None else a
        (ta, sa), (tb, sb) = (a, b) if a[0] >= b[0] else (b, a)
        return [ta, sa + sb * math.pow(2.0, -(ta - tb) / self.half_life_ms)]

    def result(self, state: list[Any] | None) -> float:
        return 0.0 if state is None else float(state[1])

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        m = mask if self.field is None else mask & items.valid
        w = np.ones(len(items.t)) if self.field is None else np.where(items.valid, items.numeric(), 0)
        t = items.t.astype(np.int64)
        top = np.where(m, t, np.iinfo(np.int64).min).max(axis=1) if len(t) else np.zeros(len(m))
        factor = np.exp2(-(top[:, None] - t[None, :]) / self.half_life_ms, where=m, out=np.zeros(m.shape))
        return [float(x) for x in (factor * w.astype(np.float64)).sum(axis=1)]


class DecayedCount(DecayedSum):
    """Exponentially decayed count of records (see :class:`DecayedSum`)."""

    kind = "decayed_count"
    needs_field = False

    def __init__(self, half_life_ms: int) -> None:
        super().__init__(None, half_life_ms)

    def _weight(self, value: Any) -> float:
        return 1.0


BUILTINS: dict[str, type[Aggregation]] = {
    c.kind: c
    for c in (Count, Sum, Mean, Min, Max, DistinctCount, Last, LastN, TopK, DecayedSum, DecayedCount)
}


def aggregation_from_spec(spec: dict[str, Any]) -> Aggregation:
    """Rebuild a built-in aggregation from its spec (custom ones are re-imported by the registry)."""
    if spec["kind"] in ("filtered", "derived"):
        from workbench.features.derived import composite_from_spec

        return composite_from_spec(spec)
    spec = dict(spec)
    cls = BUILTINS[spec.pop("kind")]
    field = spec.pop("field")
    if cls.needs_field:
        return cls(Expr.from_spec(field), **spec)  # type: ignore[call-arg]
    if cls is DecayedCount:
        return DecayedCount(**spec)
    return cls(**spec)  # type: ignore[call-arg]
