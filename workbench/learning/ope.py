"""Off-policy evaluation: the value a new policy would have had, from logged bandit feedback.

Logged feedback is any set of rows ``(context, action, reward, propensity)``:
what was known when the decision was made, what was shown, what came of it,
and the probability the logging policy had of showing it. Workbench's
exploration slots log exactly this (:mod:`workbench.learning.exploration`);
feedback from elsewhere works the same way, as arrays or a DataFrame.

* :func:`ips` -- inverse propensity scoring: ``mean(pi(a|x) / p * r)``; unbiased, can be noisy.
* :func:`snips` -- self-normalised IPS: divides by the mean weight instead of 1; a little bias, less noise.
* :func:`dr` -- doubly robust: a reward model's prediction for the target policy plus an IPS
  correction of its error on the logged action; unbiased if either the propensities or the
  model are right, usually the tightest. The default model is a ridge regression per action,
  cross-fitted (each row is predicted by a model that did not see it).

The target policy is given per logged row as ``(n, actions)`` probabilities, a
callable ``contexts -> (n, actions)``, or ``(n,)`` action indices for a
deterministic policy.

>>> import numpy as np
>>> logged = LoggedFeedback(contexts=np.zeros((4, 1)), actions=[0, 1, 0, 1], rewards=[1, 0, 1, 1],
...                         propensities=[0.5, 0.5, 0.5, 0.5])
>>> ips(logged, target=np.array([0, 0, 0, 0])).value   # always action 0: its rewards were 1, 1
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """A policy value with its standard error, 95% normal interval and effective sample size."""

    method: str
    value: float
    stderr: float
    n: int
    effective_n: float

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.value - 1.96 * self.stderr, self.value + 1.96 * self.stderr)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci95
        return {"method": self.method, "value": self.value, "stderr": self.stderr, "ci95": [lo, hi],
                "n": self.n, "effective_n": self.effective_n}


class LoggedFeedback:
    """Validated logged bandit feedback; actions are integer indices ``0 .. n_actions - 1``."""

    def __init__(self, *, contexts: Any, actions: Any, rewards: Any, propensities: Any,
                 n_actions: int | None = None, action_labels: Sequence[Any] | None = None) -> None:
        import numpy as np

        self.actions = np.asarray(actions, dtype=np.int64)
        self.rewards = np.asarray(rewards, dtype=np.float64)
        self.propensities = np.asarray(propensities, dtype=np.float64)
        self.contexts = np.asarray(contexts, dtype=np.float64).reshape(len(self.actions), -1)
        n = len(self.actions)
        if n == 0:
            raise WorkbenchError("no logged feedback to evaluate on")
        if not (len(self.rewards) == len(self.propensities) == len(self.contexts) == n):
            raise WorkbenchError("contexts, actions, rewards and propensities need one row each")
        if not ((self.propensities > 0) & (self.propensities <= 1)).all():
            raise WorkbenchError("propensities must be in (0, 1]: a logged action had some chance of being shown")
        if (self.actions < 0).any():
            raise WorkbenchError("actions must be indices >= 0 (use from_frame to map labels)")
        self.n_actions = int(n_actions if n_actions is not None else self.actions.max() + 1)
        self.action_labels = list(action_labels) if action_labels is not None else None

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, context: str | Sequence[str], action: str = "action",
                   reward: str = "reward", propensity: str = "propensity",
                   actions: Sequence[Any] | None = None) -> LoggedFeedback:
        """From a DataFrame: ``context`` is a list of numeric columns or one column of vectors.

        Action labels (any hashable, e.g. item ids) map to indices in the order
        of ``actions`` (default: sorted unique labels).
        """
        import numpy as np

        labels = list(actions) if actions is not None else sorted(df[action].unique().tolist())
        index = {a: i for i, a in enumerate(labels)}
        unknown = set(df[action].unique().tolist()) - set(index)
        if unknown:
            raise WorkbenchError(f"logged actions not in `actions`: {sorted(map(str, unknown))[:5]}")
        if isinstance(context, str):
            ctx = np.stack([np.asarray(v, dtype=np.float64) for v in df[context].tolist()])
        else:
            ctx = df[list(context)].to_numpy(dtype=np.float64)
        return cls(contexts=ctx, actions=df[action].map(index).to_numpy(), rewards=df[reward].to_numpy(),
                   propensities=df[propensity].to_numpy(), n_actions=len(labels), action_labels=labels)


Target = Any  # (n, A) probabilities | (n,) action indices | callable contexts -> (n, A)


def _target_matrix(logged: LoggedFeedback, target: Target) -> np.ndarray:
    import numpy as np

    pi = target(logged.contexts) if callable(target) else target
    pi = np.asarray(pi)
    n, k = len(logged), logged.n_actions
    if pi.ndim == 1:
        if len(pi) != n:
            raise WorkbenchError(f"a deterministic target needs one action per logged row ({n}), got {len(pi)}")
        k = max(k, int(pi.max()) + 1)
        out = np.zeros((n, k))
        out[np.arange(n), pi.astype(np.int64)] = 1.0
        return out
    if pi.shape[0] != n or pi.shape[1] < k:
        raise WorkbenchError(f"target probabilities need shape ({n}, >= {k}), got {pi.shape}")
    if (pi < -1e-12).any() or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
        raise WorkbenchError("target probabilities must be >= 0 and sum to 1 per row")
    return pi.astype(np.float64)


def _estimate(method: str, terms: np.ndarray, weights: np.ndarray) -> Estimate:
    import numpy as np

    n = len(terms)
    ess = float(weights.sum() ** 2 / max((weights**2).sum(), 1e-300))
    return Estimate(method, float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf,
                    n, ess if np.isfinite(ess) else 0.0)


def ips(logged: LoggedFeedback, target: Target, *, clip: float | None = None) -> Estimate:
    """Inverse propensity scoring; ``clip`` caps the importance weights (bias for variance)."""
    import numpy as np

    pi = _target_matrix(logged, target)
    w = pi[np.arange(len(logged)), logged.actions] / logged.propensities
    if clip is not None:
        w = np.minimum(w, clip)
    return _estimate("ips" if clip is None else f"ips(clip={clip:g})", w * logged.rewards, w)


def snips(logged: LoggedFeedback, target: Target) -> Estimate:
    """Self-normalised IPS (the standard error is the delta-method one)."""
    import numpy as np

    pi = _target_matrix(logged, target)
    w = pi[np.arange(len(logged)), logged.actions] / logged.propensities
    mean_w = w.mean()
    if mean_w <= 0:
        raise WorkbenchError("the target policy never takes a logged action: nothing to estimate from")
    value = float((w * logged.rewards).sum() / w.sum())
    terms = w * (logged.rewards - value) / mean_w
    est = _estimate("snips", terms, w)
    return Estimate("snips", value, est.stderr, est.n, est.effective_n)


def dr(logged: LoggedFeedback, target: Target, *, reward_model: Callable[[LoggedFeedback], Any] | None = None,
       folds: int = 2, ridge: float = 1.0, seed: int = 0) -> Estimate:
    """Doubly robust estimate.

    ``reward_model`` takes the logged feedback and returns ``(n, actions)``
    predicted rewards for every logged context (it is responsible for not
    predicting a row with a model fit on it). By default: one ridge regression
    per action on the contexts plus a bias, cross-fitted over ``folds``.
    """
    import numpy as np

    pi = _target_matrix(logged, target)
    q = reward_model(logged) if reward_model is not None else _ridge_per_action(logged, folds, ridge, seed)
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (len(logged), pi.shape[1]):
        if q.shape[0] == len(logged) and q.shape[1] < pi.shape[1]:
            q = np.pad(q, ((0, 0), (0, pi.shape[1] - q.shape[1])))
        else:
            raise WorkbenchError(f"reward_model returned shape {q.shape}, expected ({len(logged)}, {pi.shape[1]})")
    rows = np.arange(len(logged))
    w = pi[rows, logged.actions] / logged.propensities
    terms = (pi * q).sum(axis=1) + w * (logged.rewards - q[rows, logged.actions])
    return _estimate("dr", terms, w)


def _ridge_per_action(logged: LoggedFeedback, folds: int, ridge: float, seed: int) -> np.ndarray:
    """Cross-fitted ridge regressions of the reward on [1, context], one per action."""
    import numpy as np

    n, k = len(logged), logged.n_actions
    X = np.column_stack([np.ones(n), logged.contexts])
    fold = np.random.default_rng(seed).integers(0, max(folds, 1), size=n) if folds > 1 else np.zeros(n, int)
    q = np.zeros((n, k))
    reg = ridge * np.eye(X.shape[1])
    reg[0, 0] = 1e-9  # leave the bias unpenalised
    for f in range(max(folds, 1)):
        test = fold == f
        train = ~test if folds > 1 else np.ones(n, bool)
        for a in range(k):
            sel = train & (logged.actions == a)
            if not sel.any():
                q[test, a] = logged.rewards[train].mean() if train.any() else 0.0
                continue
            Xa = X[sel]
            coef = np.linalg.solve(Xa.T @ Xa + reg, Xa.T @ logged.rewards[sel])
            q[test, a] = X[test] @ coef
    return q
