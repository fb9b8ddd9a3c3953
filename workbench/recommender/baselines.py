"""Baselines the recommender must beat: popularity and session-kNN (SKNN).

Both follow the same offline protocol as the recommender: ``fit(sessions)`` on
training sessions, then ``recommend(session_items, k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from workbench.recommender.sessions import Sessions


class Popularity:
    """The most interacted-with items of the training window."""

    name = "popularity"

    def fit(self, sessions: Sessions) -> Popularity:
        import numpy as np

        flat = np.concatenate(sessions.items) if len(sessions) else np.zeros(0, dtype=str)
        ids, counts = np.unique(flat, return_counts=True)
        self.ranked = ids[np.argsort(-counts, kind="stable")]
        return self

    def recommend(self, session_items: Sequence[str], k: int = 20) -> list[str]:
        seen = set(session_items[-1:])
        return [str(i) for i in self.ranked[: k + 1] if i not in seen][:k]


class SessionKNN:
    """SKNN: score items by the cosine similarity of past sessions that share items with this one."""

    name = "sknn"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, sessions: Sessions) -> SessionKNN:
        import numpy as np
        from scipy import sparse

        flat = np.concatenate(sessions.items) if len(sessions) else np.zeros(0, dtype=str)
        self.ids, codes = np.unique(flat, return_inverse=True)
        self.pos = {str(i): j for j, i in enumerate(self.ids)}
        lengths = np.array([len(s) for s in sessions.items])
        rows = np.repeat(np.arange(len(lengths)), lengths)
        m = sparse.csr_matrix((np.ones(len(codes)), (rows, codes)), shape=(len(lengths), len(self.ids)))
        m.data[:] = 1.0  # binary: a repeat does not count twice
        m.sum_duplicates()
        m.data[:] = 1.0
        norms = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
        self.matrix = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ m
        self.item_to_sessions = self.matrix.T.tocsr()
        return self

    def scores(self, session_items: Sequence[str]) -> np.ndarray:
        import numpy as np

        cols = sorted({self.pos[i] for i in session_items if i in self.pos})
        out = np.zeros(len(self.ids))
        if not cols:
            return out
        q = np.zeros(len(self.ids))
        q[cols] = 1.0 / np.sqrt(len(cols))
        sims = np.asarray(self.item_to_sessions[cols].sum(axis=0)).ravel() / np.sqrt(len(cols))
        cand = np.flatnonzero(sims)
        if len(cand) > self.neighbours:
            cand = cand[np.argpartition(-sims[cand], self.neighbours - 1)[: self.neighbours]]
        return np.asarray(self.matrix[cand].T @ sims[cand]).ravel()

    def recommend(self, session_items: Sequence[str], k: int = 20) -> list[str]:
        import numpy as np

        s = self.scores(session_items)
        if session_items and session_items[-1] in self.pos:
            s[self.pos[session_items[-1]]] = -np.inf
        nz = np.flatnonzero(s > 0)
        top = nz[np.argsort(-s[nz], kind="stable")][:k]
        return [str(i) for i in self.ids[top]]


def evaluate_next_item(model: Any, test: Sessions, k: int = 20, max_predictions: int = 20_000,
                       seed: int = 0) -> dict[str, float]:
    """HR@k and MRR@k of predicting item i+1 from items[:i+1], over test sessions' prefixes."""
    import numpy as np

    pairs = [(s, i) for s in test.items for i in range(1, len(s))]
    if len(pairs) > max_predictions:
        rng = np.random.default_rng(seed)
        pairs = [pairs[j] for j in sorted(rng.choice(len(pairs), max_predictions, replace=False))]
    hits, rr = 0, 0.0
    for seq, i in pairs:
        recs = model.recommend(list(seq[:i]), k)
        target = seq[i]
        if target in recs:
            hits += 1
            rr += 1.0 / (recs.index(target) + 1)
    n = max(len(pairs), 1)
    return {f"HR@{k}": hits / n, f"MRR@{k}": rr / n, "predictions": len(pairs)}
