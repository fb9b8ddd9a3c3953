"""Per-example scores the prequential loop keeps: loss, exact ROC AUC, rolling River metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from river.metrics.base import Metric


def per_example_loss(y: Any, y_pred: Any) -> float:
    """Log loss for probabilistic classification, squared error for regression."""
    if isinstance(y_pred, Mapping):
        p = float(y_pred.get(y, 0.0))
        return -math.log(min(max(p, 1e-15), 1.0))
    if isinstance(y_pred, bool) or isinstance(y, bool) or isinstance(y, str):
        return float(y_pred != y)
    return (float(y) - float(y_pred)) ** 2


def roc_auc(y: Sequence[Any], score: Sequence[float]) -> float:
    """Exact ROC AUC (the Mann-Whitney statistic, ties counted half); NaN with one class only.

    >>> roc_auc([True, False, True, False], [0.9, 0.1, 0.4, 0.4])
    0.875
    """
    import numpy as np

    truth = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=float)
    n_pos = int(truth.sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    # average rank for ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rolling_metric(metric: Metric, window: int) -> Any:
    import warnings

    from river import utils

    # River deprecates wrapping an instance, but a user's metric may carry constructor
    # state that its parameters do not rebuild (e.g. a confusion matrix), so clone it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return utils.Rolling(metric.clone(), window_size=window)
