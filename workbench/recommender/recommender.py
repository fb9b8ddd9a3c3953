"""The session recommender, offline and served: embeddings -> kNN candidates -> River ranking.

The same object runs in a notebook and behind ``workbench serve``:

>>> from workbench.streams.simulator import ShopSimulator
>>> events = ShopSimulator(seed=3, n_users=300, n_items=200, n_categories=5).frame(
...     start_ms=1_700_000_000_000, duration_s=2 * 86_400)
>>> rec = Recommender(dim=16, candidates=50, max_train_prefixes=2_000).fit(events)
>>> out = rec.recommend(["i3", "i7"], k=5)
>>> len(out.items), out.items[0] != "i7", out.degraded
(5, True, False)

``fit`` trains the item embeddings on the older part of the history and the
ranker, online, on the newer sessions' next items (so the ranker learns on
similarities the embedding has not memorised). ``recommend`` retrieves
about 200 candidates nearest to the recency-weighted session embedding,
reads their item features (offline: point in time from the backfill; served:
the Feast online store), builds one feature matrix and ranks it in one
product. ``learn`` updates the ranker from feedback (logged feature vectors
and what was clicked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workbench.errors import WorkbenchError
from workbench.recommender.ranking import FEATURES, ITEM_COLUMNS, Ranker, Session, candidate_features
from workbench.recommender.ranking import session_embedding as weighted_mean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.features.definition import FeatureSet
    from workbench.learning.exploration import LinearThompson

STEP_MS = 60_000  # the spacing assumed between items when a session comes without times
LAST_N = 10  # recent distinct items the session feature keeps (session_features' last_n)


class ItemFeatureSource(Protocol):
    def lookup(self, items: Sequence[str], now_ms: int) -> np.ndarray: ...


@dataclass
class Recommendations:
    """One ranked list, with what the impression log needs to make it reusable for training."""

    items: list[str]
    scores: list[float]
    model_version: str
    candidates: list[str] = field(default_factory=list)
    features: Any = None  # (len(items), len(FEATURES)) array: the shown items' feature vectors
    item_values: Any = None  # (len(items), len(ITEM_COLUMNS)) array: their item features as read (NaN: none)
    propensities: list[float] = field(default_factory=list)
    degraded: bool = False
    reason: str | None = None
    explored: list[bool] = field(default_factory=list)  # which positions an exploration slot filled
    shown: Any = None  # the shown items' indices among the candidates (what a shadow model is scored on)

    def feature_dicts(self) -> list[dict[str, float]]:
        if self.features is None:
            return []
        return [dict(zip(FEATURES, (float(x) for x in row), strict=True)) for row in self.features]


def session_of(items: Sequence[str], times_ms: Sequence[int] | None = None, now_ms: int | None = None,
               last_event_ms: int | None = None) -> Session:  # fmt: skip
    """A session as the online store holds it: the last distinct items by latest time, oldest first.

    Without times, items are taken to be ``STEP_MS`` apart, ending at ``last_event_ms`` when known.

    >>> s = session_of(["a", "b", "a", "c"], [1, 2, 3, 4])
    >>> s.items, s.last_event_ms, s.now_ms
    (['b', 'a', 'c'], 4, 5)
    """
    n = len(items)
    if times_ms is None:
        end = last_event_ms if last_event_ms is not None else (n - 1) * STEP_MS
        times_ms = [end - (n - 1 - i) * STEP_MS for i in range(n)]
    latest: dict[str, int] = {}
    for item, t in zip(items, times_ms, strict=True):
        key = str(item)
        if key not in latest or t >= latest[key]:
            latest[key] = int(t)
    ordered = sorted(latest, key=lambda i: (latest[i], i))[-LAST_N:]
    last = max(latest.values()) if latest else last_event_ms
    now = int(now_ms) if now_ms is not None else (last + 1 if last is not None else 0)
    return Session(ordered, last, now)


@dataclass
class Candidates:
    """One request's retrieval: candidate rows (embedding index), their feature matrix and item features."""

    rows: np.ndarray
    X: np.ndarray
    item_matrix: np.ndarray


def exploration_context(ranker: Ranker, X: np.ndarray) -> np.ndarray:
    """A bias and the ranking features standardized by the ranker's scaler, clipped: an exploration bandit's input.

    >>> import numpy as np
    >>> exploration_context(Ranker(), np.zeros((2, len(FEATURES)))).shape == (2, len(FEATURES) + 1)
    True
    """
    import numpy as np

    n = len(FEATURES)  # the base features only: a version with extra columns explores in the same space
    means, inv_std, _, _ = ranker._compiled()
    Z = np.clip((X[:, :n] - means[:n]) * inv_std[:n], -5.0, 5.0)
    return np.asarray(np.c_[np.ones(len(Z)), Z])


class Recommender:
    """Item embeddings + kNN retrieval + a River ranker; see the module docstring."""

    def __init__(self, *, dim: int = 64, window: int = 5, half_life_items: float = 2.0, candidates: int = 200,
                 embedding_share: float = 0.8, max_train_prefixes: int = 40_000, negatives: int = 15,
                 learning_rate: float = 0.05, seed: int = 0) -> None:  # fmt: skip
        self.dim, self.window, self.half_life_items = dim, window, half_life_items
        self.n_candidates, self.embedding_share = candidates, embedding_share
        self.max_train_prefixes, self.negatives, self.seed = max_train_prefixes, negatives, seed
        self.learning_rate = learning_rate
        self.data_range: dict[str, Any] | None = None
        self.ranker = Ranker(learning_rate)
        self.version = "unsaved"
        self.embedding_version = "unsaved"
        self.item_source: ItemFeatureSource | None = None
        self.popular: list[str] = []
        # promoted item-keyed sets whose features are extra ranking columns (``workbench promote --to-model``)
        self.extra_sets: dict[str, list[str]] = {}
        self.extra_hashes: list[str] = []
        self.extra_sources: dict[str, ItemFeatureSource] = {}  # data: online store served, backfill offline

    # -- training -----------------------------------------------------------------------------
    def item_feature_set(self, source: str = "events") -> FeatureSet:
        from workbench.recommender.feature_sets import item_features

        return item_features(source=source)

    def session_feature_set(self, gap_ms: int = 30 * 60_000, source: str = "events",
                            name: str = "rec_session") -> FeatureSet:  # fmt: skip
        """The streaming session features the service reads for this model."""
        from workbench.recommender.feature_sets import session_features

        return session_features(gap_ms, source=source, name=name, last_n=LAST_N)

    def params(self) -> dict[str, Any]:
        """The constructor arguments (what a saved version rebuilds from)."""
        return {"dim": self.dim, "window": self.window, "half_life_items": self.half_life_items,
                "candidates": self.n_candidates, "embedding_share": self.embedding_share,
                "max_train_prefixes": self.max_train_prefixes, "negatives": self.negatives,
                "learning_rate": self.learning_rate, "seed": self.seed}  # fmt: skip

    def fit(self, events: pd.DataFrame, item_source: ItemFeatureSource | None = None,
            topic: str | None = None) -> Recommender:  # fmt: skip
        """Embeddings on the older sessions, then the ranker online on the newer ones' next items."""
        import numpy as np

        from workbench.evaluation.evaluate import data_range
        from workbench.recommender.embeddings import train_ppmi_svd
        from workbench.recommender.feature_sets import PointInTimeItemFeatures
        from workbench.recommender.sessions import to_sessions

        self.data_range = data_range(events, topic)
        sessions = to_sessions(events, min_length=1)
        order = np.argsort(sessions.start_ms, kind="stable")
        cut = int(len(order) * self.embedding_share)
        older = [sessions.items[i] for i in order[:cut]]
        self.embeddings = train_ppmi_svd(older, dim=self.dim, window=self.window, seed=self.seed)
        self._build_index()
        views = events[events["event_type"] == "view"] if "event_type" in events else events
        self.popular = [str(i) for i in views["item_id"].astype(str).value_counts().index[:200]]
        self.item_source = item_source or PointInTimeItemFeatures(self.item_feature_set(), events)
        self.ranker = Ranker(self.learning_rate)
        newer = [i for i in order[cut:] if len(sessions.items[i]) > 1]
        self.learn_sessions([sessions.items[i] for i in newer], [sessions.times[i] for i in newer])
        return self

    def learn_sessions(self, items: Sequence[np.ndarray], times: Sequence[np.ndarray]) -> int:
        """Online ranker updates from next-item prefixes: the true next item against sampled candidates."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        pairs = [(s, j) for s in range(len(items)) for j in range(1, len(items[s]))]
        if len(pairs) > self.max_train_prefixes:
            keep = np.sort(rng.choice(len(pairs), self.max_train_prefixes, replace=False))
            pairs = [pairs[j] for j in keep]
        # in time order, as a stream would deliver them
        pairs.sort(key=lambda p: int(times[p[0]][p[1]]))
        batch_x: list[np.ndarray] = []
        batch_y: list[np.ndarray] = []
        used = 0
        for s, j in pairs:
            seq, ts = items[s], times[s]
            target = self.embeddings.index.get(str(seq[j]))
            if target is None:
                continue
            req = self._request(session_of(list(seq[:j]), [int(t) for t in ts[:j]], int(ts[j - 1]) + 1))
            if req is None:
                continue
            rows, X, _ = req
            hit = np.flatnonzero(rows == target)
            if len(hit) == 0:
                continue
            others = np.flatnonzero(rows != target)
            neg = rng.choice(others, min(self.negatives, len(others)), replace=False)
            pick = np.r_[hit[:1], neg]
            batch_x.append(X[pick])
            batch_y.append(np.r_[1, np.zeros(len(neg), dtype=int)])
            used += 1
            if len(batch_x) == 8:
                self.ranker.learn_many(np.vstack(batch_x), np.concatenate(batch_y))
                batch_x, batch_y = [], []
        if batch_x:
            self.ranker.learn_many(np.vstack(batch_x), np.concatenate(batch_y))
        return used

    def _build_index(self) -> None:
        from workbench.recommender.retrieval import build_index

        self.index = build_index(self.embeddings.ids, self.embeddings.vectors)

    # -- serving --------------------------------------------------------------------------------
    def _request(self, session: Session) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        c = self.candidates(session)
        return None if c is None else (c.rows, c.X, c.item_matrix)

    def candidates(self, session: Session) -> Candidates | None:
        """Candidate rows and their feature matrix, or None when no item of the session is known."""
        import numpy as np

        index = self.embeddings.index
        session_rows = np.array([index[i] for i in session.items if i in index], dtype="int64")
        query = weighted_mean(session_rows, self.embeddings.vectors, self.half_life_items)
        if query is None:
            return None
        exclude = session.items[-1:]  # the item on screen; earlier ones stay, flagged ``seen``
        cand_ids, _ = self.index.search(np.asarray(query, dtype="float32"), self.n_candidates, exclude=exclude)
        cand_rows = np.fromiter((index[str(c)] for c in cand_ids), dtype="int64", count=len(cand_ids))
        if self.item_source is None:
            raise WorkbenchError("the recommender has no item features: fit() it, or set item_source "
                                 "(offline: PointInTimeItemFeatures; served: the online store)")
        item_matrix = self.item_source.lookup([str(c) for c in cand_ids], session.now_ms)
        X = candidate_features(session, session_rows, query, cand_rows, self.embeddings.vectors, item_matrix)
        if self.extra_sets:
            X = np.hstack([X, self._extra_columns([str(c) for c in cand_ids], session.now_ms)])
        return Candidates(cand_rows, X, item_matrix)

    def _extra_columns(self, items: list[str], now_ms: int) -> np.ndarray:
        import numpy as np

        blocks = []
        for name, columns in self.extra_sets.items():
            source = self.extra_sources.get(name)
            if source is None:
                raise WorkbenchError(f"{self.version} ranks on feature set {name!r}: give it extra_sources[{name!r}] "
                                     "(served: the online store; offline: PointInTimeItemFeatures)")  # fmt: skip
            values = np.asarray(source.lookup(items, now_ms), dtype="float64").reshape(len(items), len(columns))
            blocks.append(np.nan_to_num(values, nan=0.0))
        return np.hstack(blocks)

    def recommend(self, session_items: Sequence[str], k: int = 20, session_times: Sequence[int] | None = None,
                  now_ms: int | None = None, last_event_ms: int | None = None) -> Recommendations:  # fmt: skip
        """The top ``k`` items for a session (its items oldest first); a session with no known item gets popular items."""
        return self.rank(session_of(session_items, session_times, now_ms, last_event_ms), k)

    def rank(self, session: Session, k: int = 20) -> Recommendations:
        """``recommend`` for a session as read from the online store."""
        cands = self.candidates(session)
        if cands is None:
            return self.fallback(k, reason="unknown_session", exclude=session.items)
        return self.rank_candidates(cands, k)

    def rank_candidates(self, cands: Candidates, k: int, *, explorer: LinearThompson | None = None,
                        n_explore: int = 0) -> Recommendations:  # fmt: skip
        """The top ``k`` of retrieved candidates; with ``explorer``, ``n_explore`` slots are the bandit's."""
        import numpy as np

        scores = self.ranker.score(cands.X)
        k = min(k, len(scores))
        if explorer is not None and 0 < n_explore < k:
            from workbench.learning.exploration import fill_list

            slate = fill_list(scores, exploration_context(self.ranker, cands.X), k=k, n_explore=n_explore,
                              bandit=explorer)  # fmt: skip
            top, props, explored = slate.items, slate.propensities.tolist(), slate.explored.tolist()
        else:
            # greedy top-k: every shown item was certain to be shown
            top, props, explored = np.argsort(-scores, kind="stable")[:k], [1.0] * k, [False] * k
        ids, rows = self.embeddings.ids, cands.rows
        return Recommendations(
            items=[str(ids[r]) for r in rows[top]], scores=[float(s) for s in scores[top]],
            model_version=self.version, candidates=[str(i) for i in ids[rows]], features=cands.X[top],
            item_values=cands.item_matrix[top], propensities=[float(p) for p in props], explored=explored,
            shown=top,
        )  # fmt: skip

    def fallback(self, k: int, reason: str, exclude: Sequence[str] = (), degraded: bool = False,
                 popular: Sequence[str] | None = None) -> Recommendations:  # fmt: skip
        seen = set(exclude)
        items = [i for i in (popular or self.popular) if i not in seen][:k]
        n = max(len(items), 1)
        return Recommendations(items=items, scores=[1.0 - j / n for j in range(len(items))],
                               model_version=f"{self.version}:popular", candidates=list(items),
                               propensities=[1.0] * len(items), degraded=degraded, reason=reason,
                               explored=[False] * len(items))  # fmt: skip

    def learn(self, features: Any, clicked: Any) -> None:
        """Online update from feedback: the shown items' logged feature vectors and which were clicked."""
        import numpy as np

        X = np.asarray(features, dtype="float64")
        width = len(self.ranker.features)
        if X.ndim != 2 or X.shape[1] != width or len(X) != len(clicked):
            raise ValueError(f"learn needs a (n, {width}) feature matrix and n labels")
        self.ranker.learn_many(X, np.asarray(clicked, dtype=int))

    def learn_pairs(self, features: Any, clicked: Any) -> int:
        """A ranking update from one shown list: each clicked item against each shown item not clicked.

        The logistic regression learns on standardized differences ``z(clicked) - z(skipped)`` (and their
        negatives), so only the ranking direction moves: the intercept and the scaler stay as they are.
        Learning pointwise on a champion's own lists instead drags every weight the champion relies on
        down (all shown items look alike to it, most are not clicked). Returns the pairs learned.
        """
        import numpy as np
        import pandas as pd

        X = np.asarray(features, dtype="float64")
        y = np.asarray(clicked, dtype=bool)
        if not y.any() or y.all():
            return 0
        r = self.ranker
        scaler, lr = r.model.steps.values()
        if not scaler.counts:  # a fresh ranker: standardize on what it is given first
            scaler.learn_many(pd.DataFrame(X, columns=list(r.features)))
            r._arrays = None
        means, inv_std, _, _ = r._compiled()
        Z = (X - means) * inv_std
        D = (Z[y][:, None, :] - Z[~y][None, :, :]).reshape(-1, Z.shape[1])
        D = np.vstack([D, -D])
        target = np.r_[np.ones(len(D) // 2, dtype=bool), np.zeros(len(D) // 2, dtype=bool)]
        with r._lock:
            intercept = lr.intercept  # symmetric pairs would only nudge it; ordering does not use it
            lr.learn_many(pd.DataFrame(D, columns=list(r.features)), pd.Series(target))
            lr.intercept = intercept
            r.examples += int(y.sum())
            r._arrays = None
        return len(D) // 2

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("index", None)  # rebuilt from the embeddings
        state["item_source"] = None  # data, not model: offline history or the online store
        state["extra_sources"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("extra_sets", {})
        state.setdefault("extra_hashes", [])
        state.setdefault("extra_sources", {})
        self.__dict__.update(state)
        self._build_index()


__all__ = ["FEATURES", "ITEM_COLUMNS", "Recommendations", "Recommender"]
