"""The prequential loop: for each example in time order, predict with every arm, then learn
when its label arrives (log and wait).

Examples carry the feature vectors each arm sees at prediction time and the
time their label becomes known. The vectors used for a prediction are kept
("logged") and reused, never recomputed, when the label arrives. A label known
at time L is learned before any later prediction at a time >= L, so with a zero
delay the loop is exactly River's ``progressive_val_score``.

>>> from river import linear_model, metrics
>>> xs = [({"a": {"x": float(i % 3)}, "b": {"x": float(i % 3), "y": float(i % 2)}}, i % 2 == 1)
...       for i in range(200)]
>>> examples = [Example(key=str(i), t_ms=i, x=x, y=y) for i, (x, y) in enumerate(xs)]
>>> loop = Progressive({"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()},
...                    metric=metrics.LogLoss())
>>> result = loop.run(examples)
>>> result.counts["labelled"], result.metrics["b"]["LogLoss"] < result.metrics["a"]["LogLoss"]
(200, True)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from river.base import Estimator
    from river.metrics.base import Metric

    from workbench.evaluation.result import EvaluationResult


class LeakageError(WorkbenchError):
    """A feature value used for a prediction is newer than the prediction time."""


@dataclass
class Example:
    """One prediction to make and, maybe, its label.

    ``x`` maps arm name to that arm's feature dict. ``feature_time_ms`` is the
    newest source event time any of those values used; it must not exceed
    ``t_ms``. ``label_time_ms`` is when the label becomes known (defaults to
    ``t_ms + label_delay``); ``y=None`` means the label never arrives.
    """

    key: str
    t_ms: int
    x: Mapping[str, Mapping[str, Any]]
    y: Any = None
    label_time_ms: int | None = None
    feature_time_ms: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # True when nobody else holds ``x``'s dicts (e.g. built fresh for this example), so the
    # loop may keep them as the logged vectors without copying
    owned: bool = False


@dataclass
class _Pending:
    example: Example
    y_pred: dict[str, Any]


@dataclass
class Snapshot:
    """Progress of the loop, yielded every ``every`` labelled examples."""

    n_predicted: int
    n_labelled: int
    t_ms: int
    metrics: dict[str, dict[str, float]]
    rolling: dict[str, dict[str, float]]
    drift: list[tuple[str, int, int]]


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


def _rolling(metric: Metric, window: int) -> Any:
    import warnings

    from river import utils

    # River deprecates wrapping an instance, but a user's metric may carry constructor
    # state that its parameters do not rebuild (e.g. a confusion matrix), so clone it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return utils.Rolling(metric.clone(), window_size=window)


class Progressive:
    """Paired prequential evaluation of several River models (arms) in one pass."""

    def __init__(
        self,
        models: Mapping[str, Estimator],
        metric: Metric | None = None,
        extra_metrics: Iterable[Metric] = (),
        label_delay_ms: int = 0,
        max_label_wait_ms: int | None = None,
        rolling_window: int = 1000,
        rolling_all: bool = False,
        every: int = 500,
    ) -> None:
        from river import base, drift, metrics

        if not models:
            raise WorkbenchError("evaluate needs at least one model")
        self.arms = list(models)
        self.models = dict(models)
        first = next(iter(models.values()))
        self.classifier = isinstance(first, base.Classifier)
        # With no metric given, the loop scores from running sums of the per-example losses it
        # keeps anyway (same formulas as River's LogLoss/Accuracy/MAE/RMSE, exact ROC AUC): a
        # River metric object per arm and per rolling window would cost more than the models.
        self.native = metric is None and not list(extra_metrics)
        self.rolling_window = rolling_window
        if self.native:
            protos: list[Any] = []
            self.metric_names = ["LogLoss", "Accuracy", "ROCAUC"] if self.classifier else ["MAE", "RMSE"]
            self.rolling_names = self.metric_names[:1]
        else:
            primary = metric or (metrics.LogLoss() if self.classifier else metrics.MAE())
            protos = [primary, *extra_metrics]
            self.metric_names = [type(m).__name__ for m in protos]
            # a rolling copy costs a full metric update per example; by default only the primary
            rolled = protos if rolling_all else protos[:1]
            self.rolling_names = self.metric_names[: len(rolled)]
        # label metrics (accuracy) score the argmax; probabilistic ones (log loss, AUC) the proba dict
        self.needs_label = [bool(getattr(m, "requires_labels", False)) for m in protos]
        self.metrics = {a: [m.clone() for m in protos] for a in self.arms}
        self.rolling = {a: [_rolling(m, rolling_window) for m in protos[: len(self.rolling_names)]]
                        for a in self.arms}
        self.scores: dict[str, list[float]] = {a: [] for a in self.arms}  # p(True) or the prediction
        self.truths: list[Any] = []
        self._sums = {a: {"primary": 0.0, "second": 0.0, "roll": 0.0} for a in self.arms}
        self.adwin = {a: drift.ADWIN() for a in self.arms}
        self.label_delay_ms = label_delay_ms
        self.max_label_wait_ms = max_label_wait_ms
        self.every = every
        self._pending: list[tuple[int, int, _Pending]] = []
        self.keep_open = False
        self.open: dict[str, _Pending] = {}
        self._seq = 0
        self.losses: dict[str, list[float]] = {a: [] for a in self.arms}
        self.label_times: list[int] = []
        self.curve: list[dict[str, Any]] = []
        self.drift_points: list[tuple[str, int, int]] = []
        self.counts = {"predicted": 0, "labelled": 0, "missing": 0, "late": 0}
        self.t_bounds: list[int] = []

    # -- the loop -----------------------------------------------------------
    def iterate(self, examples: Iterable[Example]) -> Iterator[Snapshot]:
        """Predict-then-learn over examples in time order; yields a Snapshot every ``every`` labels."""
        last_t = -(2**63)
        for ex in examples:
            if ex.t_ms < last_t:
                raise WorkbenchError(f"examples must come in time order: {ex.key} at {ex.t_ms} after {last_t}")
            last_t = ex.t_ms
            if ex.feature_time_ms is not None and ex.feature_time_ms > ex.t_ms:
                raise LeakageError(
                    f"example {ex.key}: a feature value from {ex.feature_time_ms} ms is newer than the "
                    f"prediction time {ex.t_ms} ms"
                )
            yield from self._release(ex.t_ms)
            self._predict(ex)
            yield from self._release(ex.t_ms)
        yield from self._release(None)
        yield self.snapshot(last_t)

    def run(self, examples: Iterable[Example]) -> EvaluationResult:
        """Run to the end, headless, and return the result."""
        for _ in self.iterate(examples):
            pass
        return self.result()

    def _predict(self, ex: Example) -> None:
        y_pred = {}
        for arm in self.arms:
            model = self.models[arm]
            x = ex.x[arm]
            y_pred[arm] = model.predict_proba_one(x) if self.classifier else model.predict_one(x)  # type: ignore[attr-defined]
        self.counts["predicted"] += 1
        if self.t_bounds:
            self.t_bounds[1] = ex.t_ms
        else:
            self.t_bounds = [ex.t_ms, ex.t_ms]
        if ex.y is None:
            if self.keep_open:  # a live phase may still bring this label (log and wait)
                self.open[ex.key] = _Pending(self._logged(ex, None), y_pred)
            else:
                self.counts["missing"] += 1
            return
        label_t = ex.label_time_ms if ex.label_time_ms is not None else ex.t_ms + self.label_delay_ms
        if self.max_label_wait_ms is not None and label_t - ex.t_ms > self.max_label_wait_ms:
            self.counts["late"] += 1
            return
        self._seq += 1
        heapq.heappush(self._pending, (label_t, self._seq, _Pending(self._logged(ex, label_t), y_pred)))

    def _logged(self, ex: Example, label_t: int | None) -> Example:
        # log the vectors as they were at prediction time; the caller may reuse its dicts
        x = ex.x if ex.owned else {a: dict(ex.x[a]) for a in self.arms}
        return Example(ex.key, ex.t_ms, x, ex.y, label_t, ex.feature_time_ms, owned=True)

    # -- live: predict now, learn when the label arrives --------------------------------
    def predict_open(self, ex: Example) -> dict[str, Any]:
        """Predict ``ex`` (its label unknown yet) and keep the logged vectors for :meth:`resolve`."""
        if ex.feature_time_ms is not None and ex.feature_time_ms > ex.t_ms:
            raise LeakageError(f"example {ex.key}: a feature value from {ex.feature_time_ms} ms is newer "
                               f"than the prediction time {ex.t_ms} ms")
        keep, self.keep_open = self.keep_open, True
        try:
            self._predict(Example(ex.key, ex.t_ms, ex.x, None, None, ex.feature_time_ms, owned=ex.owned))
        finally:
            self.keep_open = keep
        return self.open[ex.key].y_pred

    def resolve(self, key: str, y: Any, label_t: int) -> bool:
        """Learn an open example from its label; False when the key is not open."""
        p = self.open.pop(key, None)
        if p is None:
            return False
        p.example.y = y
        self._learn(p, label_t)
        return True

    def close_open(self) -> int:
        """Count the labels that never arrived as missing; returns how many."""
        n = len(self.open)
        self.counts["missing"] += n
        self.open.clear()
        return n

    def _release(self, until_ms: int | None) -> Iterator[Snapshot]:
        while self._pending and (until_ms is None or self._pending[0][0] <= until_ms):
            label_t, _, p = heapq.heappop(self._pending)
            self._learn(p, label_t)
            if self.counts["labelled"] % self.every == 0:
                yield self.snapshot(label_t)

    def _learn(self, p: _Pending, label_t: int) -> None:
        ex, y = p.example, p.example.y
        for arm in self.arms:
            y_pred = p.y_pred[arm]
            if self.native:
                loss = self._native_update(arm, y, y_pred)
            else:
                loss = per_example_loss(y, y_pred)
                self.losses[arm].append(loss)
            if not self.native and y_pred is not None and y_pred != {}:
                label = max(y_pred, key=lambda k: y_pred[k]) if isinstance(y_pred, dict) else y_pred
                for m, needs_label in zip(self.metrics[arm], self.needs_label, strict=True):
                    m.update(y, label if needs_label else y_pred)
                for r, needs_label in zip(self.rolling[arm], self.needs_label, strict=False):
                    r.update(y, label if needs_label else y_pred)
            adwin = self.adwin[arm]
            adwin.update(loss)
            if adwin.drift_detected:
                self.drift_points.append((arm, len(self.losses[arm]), label_t))
            # the logged vector, never a recomputed one
            self.models[arm].learn_one(ex.x[arm], y)  # type: ignore[attr-defined]
        self.label_times.append(label_t)
        if self.native:
            self.truths.append(y)
        self.counts["labelled"] += 1
        if self.counts["labelled"] % max(1, self.every // 5) == 0:
            self.curve.append({"n": self.counts["labelled"], "t_ms": label_t, **self._flat_metrics()})

    def _native_update(self, arm: str, y: Any, y_pred: Any) -> float:
        """Running sums for the default metrics; returns the example's loss (as per_example_loss)."""
        sums, w, losses = self._sums[arm], self.rolling_window, self.losses[arm]
        if self.classifier:
            # binary, as River's LogLoss: the probability of True, clamped away from 0 and 1
            p_true = float(y_pred.get(True, 0.0)) if isinstance(y_pred, dict) else float(bool(y_pred))
            self.scores[arm].append(p_true)
            p = min(max(p_true if y else 1.0 - p_true, 1e-15), 1.0 - 1e-15)
            loss = primary = -math.log(p)
            second = float((p_true > 0.5) == bool(y))  # argmax; a 0.5 tie predicts False, as River's
        else:
            err = float(y) - float(y_pred or 0.0)
            self.scores[arm].append(abs(err))
            loss = second = err * err
            primary = abs(err)
        losses.append(loss)
        sums["primary"] += primary
        sums["second"] += second
        sums["roll"] += primary
        if len(losses) > w:  # the example leaving the rolling window
            sums["roll"] -= losses[-w - 1] if self.classifier else self.scores[arm][-w - 1]
        return loss

    def _native_metrics(self, arm: str, auc: bool = True) -> dict[str, float]:
        n = max(len(self.losses[arm]), 1)
        sums = self._sums[arm]
        if self.classifier:
            out = {"LogLoss": sums["primary"] / n, "Accuracy": sums["second"] / n}
            if auc:
                out["ROCAUC"] = roc_auc(self.truths, self.scores[arm])
            return out
        return {"MAE": sums["primary"] / n, "RMSE": math.sqrt(sums["second"] / n)}

    def _rolling_value(self, arm: str) -> float:
        return self._sums[arm]["roll"] / max(min(len(self.losses[arm]), self.rolling_window), 1)

    # -- reporting ----------------------------------------------------------
    def _flat_metrics(self) -> dict[str, float]:
        out = {}
        for arm in self.arms:
            if self.native:
                for name, v in self._native_metrics(arm, auc=False).items():
                    out[f"{arm}.{name}"] = v
                out[f"{arm}.{self.metric_names[0]}.rolling"] = self._rolling_value(arm)
                continue
            for name, m in zip(self.metric_names, self.metrics[arm], strict=True):
                out[f"{arm}.{name}"] = float(m.get())
            for name, r in zip(self.rolling_names, self.rolling[arm], strict=True):
                out[f"{arm}.{name}.rolling"] = float(r.get())
        return out

    def _metrics(self, arm: str, auc: bool = True) -> dict[str, float]:
        if self.native:
            return self._native_metrics(arm, auc)
        return {n: float(m.get()) for n, m in zip(self.metric_names, self.metrics[arm], strict=True)}

    def _rolling_metrics(self, arm: str) -> dict[str, float]:
        if self.native:
            return {self.metric_names[0]: self._rolling_value(arm)}
        return {n: float(r.get()) for n, r in zip(self.rolling_names, self.rolling[arm], strict=True)}

    def snapshot(self, t_ms: int, auc: bool = False) -> Snapshot:
        """Progress so far; the exact AUC (a sort of every score) only when asked."""
        return Snapshot(
            n_predicted=self.counts["predicted"],
            n_labelled=self.counts["labelled"],
            t_ms=t_ms,
            metrics={a: self._metrics(a, auc) for a in self.arms},
            rolling={a: self._rolling_metrics(a) for a in self.arms},
            drift=list(self.drift_points),
        )

    def result(self, baseline: str | None = None, candidate: str | None = None) -> EvaluationResult:
        from workbench.evaluation.result import EvaluationResult

        return EvaluationResult.from_loop(self, baseline or self.arms[0], candidate or self.arms[-1])
