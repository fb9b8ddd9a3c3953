"""Session features: what a visitor did in the current visit, on both paths.

Every session feature is an ordinary :class:`~workbench.features.definition.Feature`
with entity ``SESSION`` and a :class:`~workbench.features.windows.Session`
window, so the conformance suite covers it like any other definition. All
features of a set share one window and no feature-level filter: a filter
would change where sessions start and end (the gap would be measured
between views only), so per-type counts filter inside the aggregation
(:class:`~workbench.features.derived.Filtered`) instead.

Two custom aggregations live here. Both keep, per distinct item, the latest
event time it was seen at; ``merge`` takes the per-item maximum. That state
does not depend on arrival order or on how quixstreams merges two sessions,
and ``result`` reads it in a fixed (sorted) order, so the stream and the
backfill compute bit-identical floats.

* :class:`RecentItems` - the last ``n`` distinct items, oldest first;
* :class:`SessionEmbedding` - the mean of the seen items' embeddings,
  optionally weighted towards recent items.

>>> import pandas as pd
>>> from workbench.features.skew import skew_check
>>> table = {"i1": [1.0, 0.0], "i2": [0.0, 1.0]}
>>> fs = session_features(gap_ms=1_000, embeddings=table, half_life_ms=100)
>>> [f.name for f in fs][:3]
['session_events', 'session_views', 'session_add_to_carts']
>>> ev = pd.DataFrame({"session_id": "s1", "event_type": ["view", "view", "purchase"],
...                    "event_time_ms": [10_000, 10_100, 10_050], "item_id": ["i1", "i2", "i1"],
...                    "partition": 0, "offset": [0, 1, 2]})
>>> from workbench.features.backfill import backfill
>>> by_name = {f.name: backfill(f, ev)["value"].tolist() for f in fs}
>>> by_name["session_events"], by_name["session_purchases"], by_name["session_dwell_ms"]
([1, 2, 3], [0, 0, 1], [0, 100, 100])
>>> by_name["session_items"]
[['i1'], ['i1', 'i2'], ['i1', 'i2']]
>>> [round(x, 4) for x in by_name["session_embedding"][2]]   # i1 at 10050 weighs 2**-0.5
[0.4142, 0.5858]
>>> all(not problems for problems in skew_check(fs, ev).values())
True
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Aggregation, Count, Max, Min
from workbench.features.definition import SESSION, Feature, FeatureSet
from workbench.features.derived import Derived, Filtered
from workbench.features.expr import Expr, col
from workbench.features.windows import Session

if TYPE_CHECKING:
    import numpy as np

SESSION_EVENT_TYPES = ("view", "add_to_cart", "purchase", "click")
DEFAULT_GAP_MS = 30 * 60_000

# state of both aggregations: JSON text of the item -> its latest event time (ms).
# Keys are JSON text because quixstreams keeps state as JSON, whose keys are strings.
Seen = dict[str, int]


def _see(state: Seen, value: Any, event_time_ms: int) -> Seen:
    key = json.dumps(value)
    old = state.get(key)
    if old is not None and old >= event_time_ms:
        return state
    return {**state, key: int(event_time_ms)}


def _merge_seen(a: Seen, b: Seen) -> Seen:
    out = dict(a)
    for k, t in b.items():
        if k not in out or t > out[k]:
            out[k] = t
    return out


class RecentItems(Aggregation):
    """The last ``n`` distinct values of a field by latest event time, oldest first.

    An item seen again moves to the end. Equal times are ordered by the
    value's JSON text, so the list never depends on arrival order. The state
    keeps only the ``n`` best items: an item pruned once can never return to
    the top ``n`` with an older time, so pruning is exact.

    >>> agg = RecentItems("item_id", n=2)
    >>> s = agg.initialize()
    >>> for item, t in [("a", 1), ("b", 2), ("a", 3), ("c", 2)]:
    ...     s = agg.update(s, item, t)
    >>> agg.result(s)
    ['c', 'a']
    """

    kind = "recent_items"

    def __init__(self, field: str | Expr, n: int) -> None:
        super().__init__(field)
        if not isinstance(n, int) or n < 1:
            raise ValueError("RecentItems.n must be an int >= 1")
        self.n = n

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def initialize(self) -> Seen:
        return {}

    def update(self, state: Seen, value: Any, event_time_ms: int) -> Seen:
        return self._prune(_see(state, value, event_time_ms))

    def merge(self, a: Seen, b: Seen) -> Seen:
        return self._prune(_merge_seen(a, b))

    def result(self, state: Seen) -> list[Any]:
        return [json.loads(k) for k in self._ordered(state)]

    def _ordered(self, state: Seen) -> list[str]:
        return sorted(state, key=lambda k: (state[k], k))[-self.n :]

    def _prune(self, state: Seen) -> Seen:
        if len(state) <= self.n:
            return state
        return {k: state[k] for k in self._ordered(state)}


class EmbeddingTable:
    """An item -> vector table, normalized, with the fingerprint that goes into feature hashes.

    Accepts an :class:`~workbench.recommender.embeddings.ItemEmbeddings`, a
    DataFrame indexed by item id with a ``vector`` column (what
    ``ItemEmbeddings.frame()`` returns) or numeric columns, or a mapping
    item -> sequence of floats. A float32 table fingerprints exactly like
    ``ItemEmbeddings.fingerprint()`` (so the table and its ``frame()`` hash
    the same); any other table is hashed at float64.

    >>> t = EmbeddingTable.of({"b": [0.0, 1.0], "a": [1.0, 0.0]})
    >>> t.dim, len(t.fingerprint), t.vector("a")
    (2, 16, [1.0, 0.0])
    """

    def __init__(self, ids: Sequence[Any], vectors: np.ndarray) -> None:
        import numpy as np

        self.ids = [str(i) for i in ids]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("embedding table has duplicate item ids")
        raw = np.asarray(vectors)
        if raw.ndim != 2 or raw.shape[0] != len(self.ids):
            raise ValueError("embedding vectors must be a 2-d array with one row per item")
        if not np.isfinite(raw).all():
            raise ValueError("embedding vectors must be finite")
        self.fingerprint = _fingerprint(self.ids, raw)
        self.matrix = raw.astype(np.float64)  # arithmetic in float64 on both paths
        self.index = {item: i for i, item in enumerate(self.ids)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def vector(self, item: Any) -> list[float] | None:
        i = self.index.get(str(item))
        return None if i is None else [float(x) for x in self.matrix[i]]

    @staticmethod
    def of(table: Any) -> EmbeddingTable:
        import numpy as np

        if isinstance(table, EmbeddingTable):
            return table
        if hasattr(table, "ids") and hasattr(table, "vectors"):  # ItemEmbeddings
            return EmbeddingTable(list(table.ids), np.asarray(table.vectors))
        if hasattr(table, "index") and hasattr(table, "columns"):  # DataFrame keyed by item
            if "vector" in table.columns:
                rows = [np.asarray(v) for v in table["vector"]]
                dtype = np.result_type(*rows) if rows else np.float64
                matrix = np.vstack(rows).astype(dtype) if rows else np.zeros((0, 0))
                return EmbeddingTable(list(table.index), matrix)
            return EmbeddingTable(list(table.index), table.to_numpy())
        if isinstance(table, Mapping):
            items = list(table.items())
            return EmbeddingTable([k for k, _ in items], np.array([v for _, v in items], dtype=np.float64))
        raise TypeError(f"not an embedding table: {type(table).__name__}")


def _fingerprint(ids: list[str], vectors: np.ndarray) -> str:
    import numpy as np

    h = hashlib.sha256()
    h.update("\x00".join(ids).encode())
    if vectors.dtype == np.float32:
        h.update(vectors.tobytes())  # the bytes ItemEmbeddings.fingerprint() hashes
    else:
        h.update(b"float64:" + np.ascontiguousarray(vectors, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


# Tables by fingerprint, so a definition rebuilt from its spec (registry ``load``)
# finds its table in this process. The table itself is data, never stored in a spec.
_TABLES: dict[str, EmbeddingTable] = {}


def register_embeddings(table: Any) -> str:
    """Make a table available to definitions that name it by fingerprint; returns the fingerprint."""
    t = EmbeddingTable.of(table)
    return _TABLES.setdefault(t.fingerprint, t).fingerprint


class SessionEmbedding(Aggregation):
    """Mean embedding of the distinct items seen, weighted towards the most recent ones.

    Each distinct item counts once, at the latest time it was seen (a page
    reloaded ten times does not outweigh the rest). Without ``half_life_ms``
    all items weigh 1. With it, an item last seen at ``t`` weighs
    ``2 ** -((T - t) / half_life_ms)``, ``T`` the latest such time among the
    items in the table, so the newest item weighs 1. Items missing from the
    table are ignored; with none in it the value is None. The value is a
    list of ``dim`` python floats.

    ``embeddings`` is a table (see :class:`EmbeddingTable`) or the
    fingerprint of a registered one; the fingerprint is part of the spec, so
    a new table version is a new definition.

    >>> agg = SessionEmbedding("item_id", {"a": [1.0, 0.0], "b": [0.0, 1.0]}, half_life_ms=10)
    >>> s = agg.initialize()
    >>> for item, t in [("a", 100), ("zzz", 105), ("b", 110)]:
    ...     s = agg.update(s, item, t)
    >>> agg.result(s)   # a weighs 2**-1, b weighs 1
    [0.3333333333333333, 0.6666666666666666]
    >>> agg.params()["embeddings"] == EmbeddingTable.of({"a": [1.0, 0.0], "b": [0.0, 1.0]}).fingerprint
    True
    """

    kind = "session_embedding"

    def __init__(self, field: str | Expr, embeddings: Any, half_life_ms: int | None = None) -> None:
        super().__init__(field)
        if isinstance(embeddings, str):
            table = _TABLES.get(embeddings)
            if table is None:
                raise LookupError(f"embedding table {embeddings} is not registered in this process")
        else:
            fresh = EmbeddingTable.of(embeddings)
            # one copy per table version, however many features read it
            table = _TABLES.setdefault(fresh.fingerprint, fresh)
        if half_life_ms is not None and (not isinstance(half_life_ms, int) or half_life_ms <= 0):
            raise ValueError("half_life_ms must be a positive int (milliseconds) or None")
        self.table = table
        self.half_life_ms = half_life_ms

    def params(self) -> dict[str, Any]:
        return {"embeddings": self.table.fingerprint, "half_life_ms": self.half_life_ms}

    def initialize(self) -> Seen:
        return {}

    def update(self, state: Seen, value: Any, event_time_ms: int) -> Seen:
        return _see(state, value, event_time_ms)

    def merge(self, a: Seen, b: Seen) -> Seen:
        return _merge_seen(a, b)

    def result(self, state: Seen) -> list[float] | None:
        import numpy as np

        rows, times = [], []
        for key in sorted(state):  # a fixed order: the same floats whatever the arrival order
            i = self.table.index.get(str(json.loads(key)))
            if i is not None:
                rows.append(i)
                times.append(state[key])
        if not rows:
            return None
        if self.half_life_ms is None:
            weights = np.ones(len(rows))
        else:
            newest = max(times)
            weights = np.array([math.pow(2.0, -(newest - t) / self.half_life_ms) for t in times])
        mean = (weights @ self.table.matrix[rows]) / weights.sum()
        return [float(x) for x in mean]


def session_features(
    gap_ms: int = DEFAULT_GAP_MS,
    *,
    grace_ms: int = 0,
    embeddings: Any = None,
    half_life_ms: int | None = None,
    last_n: int = 10,
    item: str | Expr = "item_id",
    name: str = "session",
) -> FeatureSet:
    """The standard session feature set, written to ``features.<name>``.

    ``session_events`` (count), ``session_<type>s`` per event type of
    :data:`SESSION_EVENT_TYPES`, ``session_dwell_ms`` (newest minus oldest
    event time), ``session_last_event_ms``, ``session_items`` (last
    ``last_n`` distinct items) and, given ``embeddings``,
    ``session_embedding`` (see :class:`SessionEmbedding`).

    >>> fs = session_features(gap_ms=60_000)
    >>> fs.topic, len(fs.features), fs.hash == session_features(gap_ms=60_000).hash
    ('features.session', 8, True)
    >>> fs.hash == session_features(gap_ms=30_000).hash
    False
    """
    window = Session(gap_ms=gap_ms, grace_ms=grace_ms)
    event_type = col("event_type")
    time = col("event_time_ms")
    aggregations: dict[str, Aggregation] = {"session_events": Count()}
    for kind in SESSION_EVENT_TYPES:
        aggregations[f"session_{kind}s"] = Filtered(Count(), event_type == kind)
    aggregations["session_dwell_ms"] = Derived(col("last") - col("first"), first=Min(time), last=Max(time))
    aggregations["session_last_event_ms"] = Max(time)
    aggregations["session_items"] = RecentItems(item, n=last_n)
    if embeddings is not None:
        aggregations["session_embedding"] = SessionEmbedding(item, embeddings, half_life_ms)
    elif half_life_ms is not None:
        raise ValueError("half_life_ms weights the session embedding: pass embeddings too")
    return FeatureSet(name, [Feature(n, SESSION, window, a) for n, a in aggregations.items()])


__all__ = [
    "SESSION_EVENT_TYPES",
    "EmbeddingTable",
    "RecentItems",
    "SessionEmbedding",
    "register_embeddings",
    "session_features",
]
