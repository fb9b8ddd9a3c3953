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
from collections.abc import Iterable, Iterator, Mapping
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
        primary = metric or (metrics.LogLoss() if self.classifier else metrics.MAE())
        extras = list(extra_metrics) or (
            [metrics.ROCAUC(), metrics.Accuracy()] if self.classifier else [metrics.RMSE()]
        )
        protos = [primary, *extras]
        self.metric_names = [type(m).__name__ for m in protos]
        # label metrics (accuracy) score the argmax; probabilistic ones (log loss, AUC) the proba dict
        self.needs_label = [bool(getattr(m, "requires_labels", False)) for m in protos]
        self.metrics = {a: [m.clone() for m in protos] for a in self.arms}
        # a rolling copy costs a full metric update per example; by default only the primary
        # metric (the one the chart draws) gets one
        rolled = protos if rolling_all else protos[:1]
        self.rolling_names = self.metric_names[: len(rolled)]
        self.rolling = {a: [_rolling(m, rolling_window) for m in rolled] for a in self.arms}
        self.adwin = {a: drift.ADWIN() for a in self.arms}
        self.label_delay_ms = label_delay_ms
        self.max_label_wait_ms = max_label_wait_ms
        self.every = every
        self._pending: list[tuple[int, int, _Pending]] = []
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
        self.t_bounds = [ex.t_ms, ex.t_ms] if not self.t_bounds else [self.t_bounds[0], ex.t_ms]
        if ex.y is None:
            self.counts["missing"] += 1
            return
        label_t = ex.label_time_ms if ex.label_time_ms is not None else ex.t_ms + self.label_delay_ms
        if self.max_label_wait_ms is not None and label_t - ex.t_ms > self.max_label_wait_ms:
            self.counts["late"] += 1
            return
        self._seq += 1
        # log the vectors as they were at prediction time; the caller may reuse its dicts
        logged = Example(ex.key, ex.t_ms, {a: dict(ex.x[a]) for a in self.arms}, ex.y, label_t, ex.feature_time_ms)
        heapq.heappush(self._pending, (label_t, self._seq, _Pending(logged, y_pred)))

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
            if y_pred is not None and y_pred != {}:
                label = max(y_pred, key=lambda k: y_pred[k]) if isinstance(y_pred, dict) else y_pred
                for m, needs_label in zip(self.metrics[arm], self.needs_label, strict=True):
                    m.update(y, label if needs_label else y_pred)
                for r, needs_label in zip(self.rolling[arm], self.needs_label, strict=False):
                    r.update(y, label if needs_label else y_pred)
            loss = per_example_loss(y, y_pred)
            self.losses[arm].append(loss)
            adwin = self.adwin[arm]
            adwin.update(loss)
            if adwin.drift_detected:
                self.drift_points.append((arm, len(self.losses[arm]), label_t))
            # the logged vector, never a recomputed one
            self.models[arm].learn_one(ex.x[arm], y)  # type: ignore[attr-defined]
        self.label_times.append(label_t)
        self.counts["labelled"] += 1
        if self.counts["labelled"] % max(1, self.every // 5) == 0:
            self.curve.append({"n": self.counts["labelled"], "t_ms": label_t, **self._flat_metrics()})

    # -- reporting ----------------------------------------------------------
    def _flat_metrics(self) -> dict[str, float]:
        out = {}
        for arm in self.arms:
            for name, m in zip(self.metric_names, self.metrics[arm], strict=True):
                out[f"{arm}.{name}"] = float(m.get())
            for name, r in zip(self.rolling_names, self.rolling[arm], strict=True):
                out[f"{arm}.{name}.rolling"] = float(r.get())
        return out

    def snapshot(self, t_ms: int) -> Snapshot:
        return Snapshot(
            n_predicted=self.counts["predicted"],
            n_labelled=self.counts["labelled"],
            t_ms=t_ms,
            metrics={a: {n: float(m.get()) for n, m in zip(self.metric_names, self.metrics[a], strict=True)}
                     for a in self.arms},
            rolling={a: {n: float(r.get()) for n, r in zip(self.rolling_names, self.rolling[a], strict=True)}
                     for a in self.arms},
            drift=list(self.drift_points),
        )

    def result(self, baseline: str | None = None, candidate: str | None = None) -> EvaluationResult:
        from workbench.evaluation.result import EvaluationResult

        return EvaluationResult.from_loop(self, baseline or self.arms[0], candidate or self.arms[-1])
