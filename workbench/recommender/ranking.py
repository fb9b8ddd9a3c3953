"""Ranking: a River model scoring all candidates of a request at once (numpy, not item by item).

Three kinds of features describe each candidate (:data:`FEATURES`):

* **item features** read from the feature store (offline: the point-in-time
  backfill of the same definitions, see :mod:`workbench.recommender.feature_sets`):
  views over 1 h / 1 d / 7 d, the smoothed CTR of the last day;
* **session features**: how long the session is, how old its last event is;
* **request-time features**: cosine similarity to the session embedding, to
  the last item and the best match among recent items, the retrieval rank,
  whether the session already saw the item, the item's age (now minus the
  item's newest event).

The model is a River pipeline (``StandardScaler | LogisticRegression``)
that learns online, one example or a mini-batch at a time. Scoring reads
its current scaler statistics and weights into arrays once per model update
and ranks a ``(candidates, features)`` matrix with one matrix-vector
product; :meth:`Ranker.score` equals River's own ``predict_proba_many``:

>>> import numpy as np
>>> r = Ranker()
>>> X = np.random.default_rng(0).normal(size=(64, len(FEATURES)))
>>> r.learn_many(X, (X[:, 0] > 0).astype(int))
>>> import pandas as pd
>>> river_p = r.model.predict_proba_many(pd.DataFrame(X, columns=FEATURES))[True].to_numpy()
>>> bool(np.allclose(r.score(X), river_p))
True
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FEATURES = (
    # request-time
    "sim_session", "sim_last", "sim_max", "log_rank", "seen", "log_item_age_s",
    # item features (feature store)
    "log_views_1h", "log_views_1d", "log_views_7d", "ctr_1d", "item_known",
    # session features
    "log_session_items", "log_since_last_event_s",
    # interactions: popularity matters among items that fit the session
    "views_1h_x_sim", "views_1d_x_sim",
)  # fmt: skip
# Where each item feature sits in the item feature matrix (see item_features()).
ITEM_COLUMNS = ("item_views_1h", "item_views_1d", "item_views_7d", "item_impressions_1d", "item_clicks_1d",
                "item_ctr_1d", "item_last_event_ms")  # fmt: skip
_CTR_PRIOR, _CTR_STRENGTH = 0.05, 20.0
_NEVER_S = 30 * 86_400.0  # the age given to an item the store has never seen
_MIN_VAR = 1e-12  # below this a standardized column is treated as constant


@dataclass
class Session:
    """What the ranker knows of a session, as the online store holds it (see ``feature_sets.session_features``).

    ``items`` are the last distinct items, oldest first; ``last_event_ms`` the newest event time.
    """

    items: list[str]
    last_event_ms: int | None
    now_ms: int


def session_embedding(rows: np.ndarray, vectors: np.ndarray, half_life_items: float | None) -> np.ndarray | None:
    """The mean of the session's item vectors (oldest first), the newest weighing 1, each older one less.

    The ``j``-th newest item weighs ``2 ** -(j / half_life_items)``; ``None`` weighs all alike.

    >>> import numpy as np
    >>> session_embedding(np.array([0, 1]), np.eye(2), half_life_items=1).round(4).tolist()
    [0.3333, 0.6667]
    """
    import numpy as np

    if len(rows) == 0:
        return None
    age = np.arange(len(rows) - 1, -1, -1, dtype="float64")
    w = np.ones(len(rows)) if half_life_items is None else np.exp2(-age / half_life_items)
    return np.asarray((w @ vectors[rows].astype("float64")) / w.sum())


def candidate_features(
    session: Session,
    session_rows: np.ndarray,
    query: np.ndarray,
    cand_rows: np.ndarray,
    vectors: np.ndarray,
    item_matrix: np.ndarray,
) -> np.ndarray:
    """The ``(len(cand_rows), len(FEATURES))`` matrix for one request, all columns at once.

    ``session_rows`` and ``cand_rows`` index ``vectors`` (unit rows);
    ``item_matrix`` holds the candidates' item features in :data:`ITEM_COLUMNS` order (NaN: missing).
    """
    import numpy as np

    n = len(cand_rows)
    cv = vectors[cand_rows]
    q = query / max(float(np.linalg.norm(query)), 1e-12)
    X = np.empty((n, len(FEATURES)))
    X[:, 0] = cv @ q.astype(cv.dtype)
    if len(session_rows):
        # (session items, candidates): reductions run along the long contiguous axis (numpy is slow across
        # a few columns), and a few session items compare faster at once than through np.isin's sort
        sims = vectors[session_rows] @ cv.T
        X[:, 1] = sims[-1]
        X[:, 2] = sims.max(axis=0)
        X[:, 4] = (session_rows[:, None] == cand_rows[None, :]).any(axis=0)
    else:
        X[:, [1, 2, 4]] = 0.0
    X[:, 3] = _log_ranks(n)
    im = item_matrix
    missing = np.isnan(im)
    known = np.where(missing, 0.0, im)  # NaN (not in the store) as 0; np.nan_to_num also scans for infinities
    age_s = (session.now_ms - known[:, 6]) / 1000.0
    np.minimum(np.maximum(age_s, 0.0, out=age_s), _NEVER_S, out=age_s)
    age_s[missing[:, 6]] = _NEVER_S
    np.log1p(age_s, out=X[:, 5])
    np.log1p(known[:, :3], out=X[:, 6:9])
    X[:, 9] = (known[:, 4] + _CTR_PRIOR * _CTR_STRENGTH) / (known[:, 3] + _CTR_STRENGTH)
    X[:, 10] = ~missing[:, 6]
    X[:, 11] = math.log1p(len(session.items))
    since = 0.0 if session.last_event_ms is None else (session.now_ms - session.last_event_ms) / 1000.0
    X[:, 12] = math.log1p(max(since, 0.0))
    fit = np.maximum(X[:, 0], 0.0)
    np.multiply(X[:, 6:8], fit[:, None], out=X[:, 13:15])
    return X


@functools.cache
def _log_ranks(n: int) -> np.ndarray:
    """``log1p`` of the retrieval ranks ``0..n-1`` (the same for every request of ``n`` candidates)."""
    import numpy as np

    ranks = np.log1p(np.arange(n))
    ranks.flags.writeable = False
    return ranks


class Ranker:
    """A River ``StandardScaler | LogisticRegression`` over :data:`FEATURES`, scored vectorized."""

    def __init__(self, learning_rate: float = 0.05, l2: float = 1e-4, model: Any = None) -> None:
        from river import linear_model, optim, preprocessing

        self.model = model or (preprocessing.StandardScaler() | linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=l2))  # fmt: skip
        self.features = FEATURES
        self._lock = threading.Lock()
        self._arrays: tuple[Any, Any, Any, float] | None = None
        self.examples = 0

    def _compiled(self) -> tuple[Any, Any, Any, float]:
        import numpy as np

        arrays = self._arrays
        if arrays is None:
            scaler, lr = self.model.steps.values()
            means = np.array([scaler.means.get(f, 0.0) for f in self.features])
            var = np.array([scaler.vars.get(f, 0.0) for f in self.features])
            inv_std = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var >= _MIN_VAR)
            w = np.array([lr.weights.get(f, 0.0) for f in self.features])
            arrays = self._arrays = (means, inv_std, w, float(lr.intercept))
        return arrays

    def score(self, X: np.ndarray) -> np.ndarray:
        """P(chosen) per row of ``X``; one matrix-vector product."""
        import numpy as np

        means, inv_std, w, b = self._compiled()
        z = ((X - means) * inv_std) @ w + b
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def learn_many(self, X: np.ndarray, y: np.ndarray) -> None:
        """One online mini-batch update (River's ``learn_many``)."""
        import pandas as pd

        if len(X) == 0:
            return
        frame = pd.DataFrame(X, columns=list(self.features))
        with self._lock:
            scaler, lr = self.model.steps.values()
            # what the pipeline's learn_many does, plus one guard: River's batched variance of a
            # constant column comes out a hair off 0 (below: its sqrt fails; above: a huge 1/std
            # turns rounding noise into a feature), so such a column is constant, as it should be
            scaler.learn_many(frame)
            for c, v in scaler.vars.items():
                if v < _MIN_VAR:
                    scaler.vars[c] = 0.0
            lr.learn_many(scaler.transform_many(frame), pd.Series(y.astype(bool)))
            self.examples += len(X)
            self._arrays = None

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        with self._lock:
            self.model.learn_one(x, y)
            self.examples += 1
            self._arrays = None

    def weights(self) -> dict[str, float]:
        """The model's weight per (standardized) feature, for reading what it learned."""
        _, _, w, _ = self._compiled()
        return {f: round(float(x), 4) for f, x in zip(self.features, w, strict=True)}

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "features": self.features, "examples": self.examples}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(model=state["model"])  # type: ignore[misc]
        self.features = tuple(state["features"])
        self.examples = state["examples"]
