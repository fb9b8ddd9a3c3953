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
from functools import reduce
from itertools import chain
from operator import add, call
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

# per_example_loss and roc_auc are imported from here by callers
from workbench.evaluation.scores import per_example_loss as per_example_loss
from workbench.evaluation.scores import roc_auc as roc_auc
from workbench.evaluation.scores import rolling_metric

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


@dataclass(frozen=True)
class Columns:
    """Examples as columns, one list per field (what history builds): no object per example.

    ``vectors`` maps arm name to one feature dict per example, each fresh (the
    loop keeps them as the logged vectors). ``iterate`` and ``run`` take it in
    place of examples and do exactly what they do for the same examples.
    """

    keys: Sequence[str]
    t_ms: Sequence[int]
    vectors: Mapping[str, Sequence[Mapping[str, Any]]]
    y: Sequence[Any]
    label_time_ms: Sequence[int | None]
    feature_time_ms: Sequence[int | None]

    def __len__(self) -> int:
        return len(self.keys)

    def examples(self) -> Iterator[Example]:
        arms = list(self.vectors)
        for key, t, y, label_t, feature_t, *vectors in zip(self.keys, self.t_ms, self.y, self.label_time_ms,
                                                           self.feature_time_ms, *self.vectors.values(), strict=True):
            yield Example(key, t, dict(zip(arms, vectors, strict=True)), y, label_t, feature_t, {}, True)


@dataclass
class _Pending:
    vectors: Sequence[Mapping[str, Any]]  # logged, in arm order
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


def _leak(key: str, feature_t: int, t: int) -> LeakageError:
    return LeakageError(f"example {key}: a feature value from {feature_t} ms is newer than the "
                        f"prediction time {t} ms")


class _Arm:
    """One arm's model calls and running state, as the hot loop reads them (slots: cheap access)."""

    __slots__ = ("name", "learn", "adwin", "losses", "scores", "primary", "second", "roll")

    def __init__(self, name: str, model: Any, adwin: Any) -> None:
        self.name = name
        self.learn = model.learn_one
        self.adwin = adwin
        self.losses: list[float] = []
        self.scores: list[float] = []  # p(True) or the absolute error
        # running sums of the default metrics: log loss / MAE, accuracy / squared error, rolling primary
        self.primary = self.second = self.roll = 0.0


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
        self.rolling = {a: [rolling_metric(m, rolling_window) for m in protos[: len(self.rolling_names)]]
                        for a in self.arms}
        self.adwin = {a: drift.ADWIN() for a in self.arms}
        self._arms = [_Arm(a, m, self.adwin[a]) for a, m in self.models.items()]
        self._predicts = [m.predict_proba_one if self.classifier else m.predict_one  # type: ignore[attr-defined]
                          for m in self.models.values()]
        # the same lists the arms append to, by name, for results and callers
        self.scores: dict[str, list[float]] = {s.name: s.scores for s in self._arms}  # p(True) or |error|
        self.losses: dict[str, list[float]] = {s.name: s.losses for s in self._arms}
        self.truths: list[Any] = []
        self._unsettled: list[list[Any]] = []  # predictions of labels learned but not yet scored
        self._curve_every = max(1, every // 5)
        self.label_delay_ms = label_delay_ms
        self.max_label_wait_ms = max_label_wait_ms
        self.every = every
        # (label time, sequence, logged vectors, y, predictions), in arm order: a heap on label time
        self._pending: list[tuple[int, int, Sequence[Mapping[str, Any]], Any, list[Any]]] = []
        self.keep_open = False
        self.open: dict[str, _Pending] = {}
        self._seq = 0
        self.label_times: list[int] = []
        self.curve: list[dict[str, Any]] = []
        self.drift_points: list[tuple[str, int, int]] = []
        self.counts = {"predicted": 0, "labelled": 0, "missing": 0, "late": 0}
        self.t_bounds: list[int] = []

    # -- the loop -----------------------------------------------------------
    def iterate(self, examples: Iterable[Example] | Columns) -> Iterator[Snapshot]:
        """Predict-then-learn over examples in time order; yields a Snapshot every ``every`` labels."""
        if isinstance(examples, Columns):
            yield from self._iterate_columns(examples)
            return
        last_t = -(2**63)
        pending, predict, release, arms = self._pending, self._predict, self._release, self.arms
        for ex in examples:
            t = ex.t_ms
            if t < last_t:
                raise WorkbenchError(f"examples must come in time order: {ex.key} at {t} after {last_t}")
            last_t = t
            if ex.feature_time_ms is not None and ex.feature_time_ms > t:
                raise _leak(ex.key, ex.feature_time_ms, t)
            # labels known by now are learned before predicting (only then is a generator worth it)
            if pending and pending[0][0] <= t:
                yield from release(t)
            x = ex.x
            predict(ex.key, t, [x[a] for a in arms], ex.y, ex.label_time_ms, ex.owned)
            if pending and pending[0][0] <= t:
                yield from release(t)
        yield from release(None)
        yield self.snapshot(last_t)

    def _iterate_columns(self, cols: Columns) -> Iterator[Snapshot]:
        # the checks run up front; the rows before the first failing one still run, as above
        keys, ts, feature_ts = cols.keys, cols.t_ms, cols.feature_time_ms
        stop, error = len(ts), None
        for i, (t, feature_t) in enumerate(zip(ts, feature_ts, strict=True)):
            if i and t < ts[i - 1]:
                stop, error = i, WorkbenchError(f"examples must come in time order: {keys[i]} at {t} after "
                                                f"{ts[i - 1]}")
                break
            if feature_t is not None and feature_t > t:
                stop, error = i, _leak(keys[i], feature_t, t)
                break
        pending, predict, release = self._pending, self._predict, self._release
        vectors = zip(*(cols.vectors[a] for a in self.arms), strict=True)
        for _, key, t, x, y, label_t in zip(range(stop), keys, ts, vectors, cols.y, cols.label_time_ms,
                                            strict=False):
            if pending and pending[0][0] <= t:
                yield from release(t)
            predict(key, t, x, y, label_t, True)
            if pending and pending[0][0] <= t:
                yield from release(t)
        if error is not None:
            raise error
        yield from release(None)
        yield self.snapshot(ts[-1] if ts else -(2**63))

    def run(self, examples: Iterable[Example] | Columns) -> EvaluationResult:
        """Run to the end, headless, and return the result."""
        for _ in self.iterate(examples):
            pass
        return self.result()

    def _predict(self, key: str, t: int, vectors: Sequence[Mapping[str, Any]], y: Any, label_t: int | None,
                 owned: bool) -> None:
        """Predict with every arm (``vectors`` in arm order), then log the example until its label."""
        y_pred = list(map(call, self._predicts, vectors))
        counts = self.counts
        counts["predicted"] += 1
        if self.t_bounds:
            self.t_bounds[1] = t
        else:
            self.t_bounds = [t, t]
        # log the vectors as they were at prediction time; the caller may reuse its dicts
        if y is None:
            if self.keep_open:  # a live phase may still bring this label (log and wait)
                logged = vectors if owned else [dict(v) for v in vectors]
                self.open[key] = _Pending(logged, dict(zip(self.arms, y_pred, strict=True)))
            else:
                counts["missing"] += 1
            return
        if label_t is None:
            label_t = t + self.label_delay_ms
        if self.max_label_wait_ms is not None and label_t - t > self.max_label_wait_ms:
            counts["late"] += 1
            return
        self._seq += 1
        heapq.heappush(self._pending, (label_t, self._seq, vectors if owned else [dict(v) for v in vectors], y, y_pred))

    # -- live: predict now, learn when the label arrives --------------------------------
    def predict_open(self, ex: Example) -> dict[str, Any]:
        """Predict ``ex`` (its label unknown yet) and keep the logged vectors for :meth:`resolve`."""
        if ex.feature_time_ms is not None and ex.feature_time_ms > ex.t_ms:
            raise _leak(ex.key, ex.feature_time_ms, ex.t_ms)
        keep, self.keep_open = self.keep_open, True
        try:
            self._predict(ex.key, ex.t_ms, [ex.x[a] for a in self.arms], None, None, ex.owned)
        finally:
            self.keep_open = keep
        return self.open[ex.key].y_pred

    def resolve(self, key: str, y: Any, label_t: int) -> bool:
        """Learn an open example from its label; False when the key is not open."""
        p = self.open.pop(key, None)
        if p is None:
            return False
        self._learn(p.vectors, y, [p.y_pred[a] for a in self.arms], label_t)
        return True

    def close_open(self) -> int:
        """Count the labels that never arrived as missing; returns how many."""
        n = len(self.open)
        self.counts["missing"] += n
        self.open.clear()
        return n

    def _release(self, until_ms: int | None) -> Iterator[Snapshot]:
        pending, learn, counts, every, pop = self._pending, self._learn, self.counts, self.every, heapq.heappop
        while pending and (until_ms is None or pending[0][0] <= until_ms):
            label_t, _, vectors, y, y_pred = pop(pending)
            learn(vectors, y, y_pred, label_t)
            if counts["labelled"] % every == 0:
                yield self.snapshot(label_t)

    def _learn(self, vectors: Sequence[Mapping[str, Any]], y: Any, y_preds: list[Any], label_t: int) -> None:
        """Score then learn every arm from the logged vectors (never recomputed ones)."""
        if self.native and self.classifier:
            self._learn_native_classifier(vectors, y, y_preds, label_t)
        else:
            for arm, x, y_pred in zip(self._arms, vectors, y_preds, strict=True):
                name = arm.name
                if self.native:
                    loss = self._native_update(arm, y, y_pred)
                else:
                    loss = per_example_loss(y, y_pred)
                    arm.losses.append(loss)
                    if y_pred is not None and y_pred != {}:
                        label = max(y_pred, key=lambda k: y_pred[k]) if isinstance(y_pred, dict) else y_pred
                        for m, needs_label in zip(self.metrics[name], self.needs_label, strict=True):
                            m.update(y, label if needs_label else y_pred)
                        for r, needs_label in zip(self.rolling[name], self.needs_label, strict=False):
                            r.update(y, label if needs_label else y_pred)
                arm.adwin.update(loss)
                if arm.adwin.drift_detected:
                    self.drift_points.append((name, len(arm.losses), label_t))
                arm.learn(x, y)
        self._labelled(y, label_t)

    def _learn_native_classifier(self, vectors: Sequence[Mapping[str, Any]], y: Any, y_preds: list[Any],
                                 label_t: int) -> None:
        # scoring needs only the logged predictions: it is batched in _settle, learning is not
        self._unsettled.append(y_preds)
        for arm, x in zip(self._arms, vectors, strict=True):
            arm.learn(x, y)

    def _labelled(self, y: Any, label_t: int) -> None:
        self.label_times.append(label_t)
        if self.native:
            self.truths.append(y)
        counts = self.counts
        counts["labelled"] += 1
        if counts["labelled"] % self._curve_every == 0:
            self.curve.append({"n": counts["labelled"], "t_ms": label_t, **self._flat_metrics()})

    def _settle(self) -> None:
        """Score the labels learned since the last call (default classifier metrics).

        Every number is what scoring each label as it came gives: the same
        float operations in the same order (sums by ``reduce``, ``a - b`` as
        ``a + -b``), and ADWIN sees the losses one by one. Snapshots, the curve
        and the result call it first; ``losses``, ``scores`` and ``drift_points``
        are up to date after each.
        """
        batch = self._unsettled
        if not batch:
            return
        self._unsettled = []
        n0 = len(self.truths) - len(batch)
        positive = [bool(y) for y in self.truths[n0:]]
        label_ts = self.label_times[n0:]
        w, drifts = self.rolling_window, []
        for i, arm in enumerate(self._arms):
            # binary, as River's LogLoss: the probability of True, clamped away from 0 and 1
            p_true = [float(p.get(True, 0.0)) if isinstance(p, dict) else float(bool(p)) for p in
                      [y_preds[i] for y_preds in batch]]
            losses = [-math.log(min(max(p if pos else 1.0 - p, 1e-15), 1.0 - 1e-15))
                      for p, pos in zip(p_true, positive, strict=True)]
            # argmax; a 0.5 tie predicts False, as River's. Adding 1.0s is exact, so add the count
            arm.second += float(sum(1 for p, pos in zip(p_true, positive, strict=True) if (p > 0.5) == pos))
            arm.scores.extend(p_true)
            arm.primary = reduce(add, losses, arm.primary)
            history = arm.losses
            start = len(history)
            history.extend(losses)
            # the rolling sum adds each loss, then takes out the one leaving the window
            full = max(0, min(w - start, len(losses)))  # until the window is full, nothing leaves
            arm.roll = reduce(add, losses[:full], arm.roll)
            leaving = [-v for v in history[start + full - w:start + len(losses) - w]] if full < len(losses) else []
            arm.roll = reduce(add, chain.from_iterable(zip(losses[full:], leaving, strict=True)), arm.roll)
            adwin = arm.adwin
            for k, loss in enumerate(losses):
                adwin.update(loss)
                if adwin.drift_detected:
                    drifts.append((k, i, arm.name, start + k + 1, label_ts[k]))
        drifts.sort()  # as one label at a time appends them: by label, then arm
        self.drift_points.extend((name, n, t) for _, _, name, n, t in drifts)

    def _native_update(self, arm: _Arm, y: Any, y_pred: Any) -> float:
        """Running sums for the default regression metrics; returns the example's loss (as per_example_loss)."""
        err = float(y) - float(y_pred or 0.0)
        arm.scores.append(abs(err))
        loss = second = err * err
        primary = abs(err)
        arm.losses.append(loss)
        arm.primary += primary
        arm.second += second
        arm.roll += primary
        if len(arm.losses) > self.rolling_window:  # the example leaving the rolling window
            arm.roll -= arm.scores[-self.rolling_window - 1]
        return loss

    def _native_metrics(self, arm: str, auc: bool = True) -> dict[str, float]:
        state = self._arms[self.arms.index(arm)]
        n = max(len(state.losses), 1)
        if self.classifier:
            out = {"LogLoss": state.primary / n, "Accuracy": state.second / n}
            if auc:
                out["ROCAUC"] = roc_auc(self.truths, state.scores)
            return out
        return {"MAE": state.primary / n, "RMSE": math.sqrt(state.second / n)}

    def _rolling_value(self, arm: str) -> float:
        state = self._arms[self.arms.index(arm)]
        return state.roll / max(min(len(state.losses), self.rolling_window), 1)

    # -- reporting ----------------------------------------------------------
    def _flat_metrics(self) -> dict[str, float]:
        self._settle()
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
        self._settle()
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

        self._settle()
        return EvaluationResult.from_loop(self, baseline or self.arms[0], candidate or self.arms[-1])
