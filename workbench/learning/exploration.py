"""Exploration slots in a recommendation list, chosen by linear Thompson sampling, with propensities.

A list of ``k`` items keeps ``k - n_explore`` slots for the ranker (exploit)
and fills ``n_explore`` slots with a contextual bandit over a feature vector
per (session, candidate item) -- e.g. the product of the session and item
embeddings, the item's CTR, its age. The bandit is Bayesian linear regression
on the click reward; each request draws ``draws`` weight vectors from the
posterior (Thompson sampling) and, for each exploration slot in turn, the
distribution over the remaining candidates is

    p(i) = (1 - epsilon) * share of draws whose best remaining candidate is i
           + epsilon / number of remaining candidates

The slot's item is *sampled from p*, so ``p(item)`` is its exact propensity,
not an estimate: logged with the impression, it makes the feedback usable by
off-policy evaluation (:mod:`workbench.learning.ope`). The epsilon floor keeps
every candidate's propensity above ``epsilon / candidates``, which bounds the
variance of those estimates. Items in exploitation slots are deterministic
given the ranker and are logged with propensity 1.

>>> import numpy as np
>>> bandit = LinearThompson(dim=3, seed=0)
>>> X = np.random.default_rng(1).normal(size=(50, 3))
>>> slate = fill_list(np.arange(50.0), X, k=8, n_explore=2, bandit=bandit)
>>> slate.items[:6].tolist(), slate.propensities[:6].tolist()
([49, 48, 47, 46, 45, 44], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
>>> [round(float(d.sum()), 6) for d in slate.slot_distributions]
[1.0, 1.0]
>>> bool(slate.explored[6:].all()), bool((slate.propensities[6:] > 0).all())
(True, True)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np


class LinearThompson:
    """Bayesian linear regression of the reward on a feature vector, sampled for Thompson sampling.

    Prior ``N(0, I / prior_precision)`` on the weights; observation noise sd
    ``noise_sd`` (it also scales exploration: a larger value explores more).
    Thread-safe; updates are cheap (rank-one), the Cholesky factor is rebuilt
    lazily on the next draw.
    """

    def __init__(self, dim: int, *, prior_precision: float = 1.0, noise_sd: float = 0.5, draws: int = 256,
                 epsilon: float = 0.05, seed: int | None = None) -> None:
        import numpy as np

        if dim < 1 or draws < 1 or prior_precision <= 0 or noise_sd <= 0 or not 0 <= epsilon <= 1:
            raise WorkbenchError("need dim >= 1, draws >= 1, prior_precision > 0, noise_sd > 0, 0 <= epsilon <= 1")
        self.dim, self.draws, self.epsilon, self.noise_sd = dim, draws, epsilon, noise_sd
        self._precision = np.eye(dim) * prior_precision  # A = prior + X'X / noise^2
        self._b = np.zeros(dim)  # X'r / noise^2
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._factor: tuple[Any, Any] | None = None  # (mean, inverse Cholesky transpose)
        self.n_updates = 0

    def update(self, x: Any, reward: float) -> None:
        """Learn one (feature vector, reward) pair."""
        import numpy as np

        self.update_many(np.asarray(x, dtype=np.float64)[None, :], [reward])

    def update_many(self, X: Any, rewards: Any) -> None:
        """Learn a batch: ``X`` (n, dim), ``rewards`` (n,)."""
        import numpy as np

        X = np.asarray(X, dtype=np.float64)
        r = np.asarray(rewards, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim or len(r) != len(X):
            raise WorkbenchError(f"update_many needs X of shape (n, {self.dim}) and n rewards")
        s2 = self.noise_sd**2
        with self._lock:
            self._precision += X.T @ X / s2
            self._b += X.T @ r / s2
            self._factor = None
            self.n_updates += len(r)

    def mean(self) -> np.ndarray:
        """Posterior mean of the weights."""
        with self._lock:
            return self._posterior()[0].copy()  # type: ignore[no-any-return]

    def _posterior(self) -> tuple[Any, Any]:
        import numpy as np

        if self._factor is None:
            chol = np.linalg.cholesky(self._precision)
            mean = np.linalg.solve(self._precision, self._b)
            # draws: mean + L^-T z has covariance (L L^T)^-1 = A^-1
            self._factor = (mean, np.linalg.inv(chol).T)
        return self._factor

    def sample(self, n: int | None = None) -> np.ndarray:
        """``n`` (default ``draws``) weight vectors from the posterior, shape (n, dim)."""
        with self._lock:
            mean, inv_t = self._posterior()
            z = self._rng.standard_normal((n or self.draws, self.dim))
        return mean + z @ inv_t.T  # type: ignore[no-any-return]

    def choose(self, X: Any, n: int, exclude: Any = ()) -> list[SlotDecision]:
        """Fill ``n`` exploration slots from the rows of ``X`` (candidates), skipping ``exclude``.

        Each decision carries the chosen row, its propensity and the whole
        distribution it was sampled from (zero on unavailable rows, sums to 1).
        """
        import numpy as np

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise WorkbenchError(f"candidates need shape (n, {self.dim}), got {X.shape}")
        available = np.ones(len(X), dtype=bool)
        available[np.asarray(exclude, dtype=np.int64)] = False
        if n > int(available.sum()):
            raise WorkbenchError(f"{n} exploration slots but only {int(available.sum())} candidates left")
        scores = self.sample() @ X.T  # (draws, candidates): one Thompson sample of every score
        decisions = []
        for _ in range(n):
            masked = np.where(available, scores, -np.inf)
            best = np.bincount(masked.argmax(axis=1), minlength=len(X)) / len(scores)
            p = (1 - self.epsilon) * best + self.epsilon * available / available.sum()
            with self._lock:
                pick = int(self._rng.choice(len(X), p=p))
            decisions.append(SlotDecision(pick, float(p[pick]), p))
            available[pick] = False
        return decisions


@dataclass(frozen=True)
class SlotDecision:
    """One exploration slot: the candidate row chosen, its propensity, and the full distribution."""

    index: int
    propensity: float
    distribution: np.ndarray


@dataclass(frozen=True)
class Slate:
    """A filled list: candidate rows in position order, which were explored, their propensities."""

    items: np.ndarray
    explored: np.ndarray
    propensities: np.ndarray
    slot_distributions: list[np.ndarray]

    def log_rows(self, ids: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """One dict per shown item (position from 1), as an impression log wants them."""
        items = self.items.tolist()
        return [{"item": ids[i] if ids is not None else i, "position": pos + 1, "explored": bool(e),
                 "propensity": float(p)}
                for pos, (i, e, p) in enumerate(zip(items, self.explored.tolist(), self.propensities.tolist(),
                                                    strict=True))]


def fill_list(exploit_scores: Any, X: Any, *, k: int, n_explore: int, bandit: LinearThompson,
              explore_positions: Sequence[int] | None = None) -> Slate:
    """Top ``k - n_explore`` candidates by ``exploit_scores``, plus ``n_explore`` bandit slots.

    ``X`` holds one feature row per candidate (same order as the scores).
    ``explore_positions`` (0-based, default the last ``n_explore`` positions)
    says where the explored items go in the list.
    """
    import numpy as np

    scores = np.asarray(exploit_scores, dtype=np.float64)
    if len(scores) != len(X):
        raise WorkbenchError(f"{len(scores)} scores for {len(X)} candidate feature rows")
    if not 0 <= n_explore <= k or k > len(scores):
        raise WorkbenchError(f"need 0 <= n_explore <= k <= candidates, got {n_explore}, {k}, {len(scores)}")
    positions = list(range(k - n_explore, k)) if explore_positions is None else list(explore_positions)
    if len(positions) != n_explore or len(set(positions)) != n_explore or not all(0 <= p < k for p in positions):
        raise WorkbenchError(f"explore_positions needs {n_explore} distinct positions in [0, {k})")
    n_exploit = k - n_explore
    exploit = np.argsort(-scores, kind="stable")[:n_exploit]
    decisions = bandit.choose(X, n_explore, exclude=exploit) if n_explore else []
    items = np.empty(k, dtype=np.int64)
    explored = np.zeros(k, dtype=bool)
    props = np.ones(k)
    explore_at = set(positions)
    rest = iter(exploit.tolist())
    for pos in range(k):
        if pos not in explore_at:
            items[pos] = next(rest)
    for pos, d in zip(sorted(positions), decisions, strict=True):
        items[pos], explored[pos], props[pos] = d.index, True, d.propensity
    return Slate(items, explored, props, [d.distribution for d in decisions])
