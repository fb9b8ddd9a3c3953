"""Stateful vs stateless retraining of a River model, with the lineage each version needs.

* **stateless** -- a new model from scratch on a trailing window (e.g. 28 days) of labelled examples;
* **stateful** -- a copy of the previous version, continued on the feedback that arrived since it
  was trained (e.g. one day), and nothing else.

Both take the prediction examples of :mod:`workbench.evaluation` (point-in-time
features, labels with their arrival times). A version is trained only on labels
known at its cut-off: ``label_time_ms < end_ms``. Each :class:`TrainedVersion`
carries what the model store records -- kind, parent, data range, CPU seconds --
so the chain from a served model back to its data can be printed.

:func:`compare_retraining` runs the daily protocol: each day, both designs make
a new version; each version is then scored by predict-then-learn on the next
day (a copy, so scoring never leaks into the next version), paired on the same
examples through :class:`workbench.evaluation.progressive.Progressive`.

>>> from river import linear_model
>>> from workbench.evaluation.progressive import Example
>>> day = 86_400_000
>>> exs = [Example(str(i), i * 60_000, {"m": {"x": float(i % 2)}}, i % 2 == 0, i * 60_000 + 1)
...        for i in range(4 * 1440)]
>>> report = compare_retraining(exs, linear_model.LogisticRegression, start_ms=0, history_days=2,
...                             update_days=2, bootstrap=50)
>>> v = report["versions"][-1]
>>> v["name"], v["parent"], v["data_range"]["examples"]
('stateful-1', 'stateful-0', 1440)
>>> report["cpu_ratio"] > 1
True
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np

    from workbench.evaluation.progressive import Example

DAY_MS = 86_400_000


@dataclass
class TrainedVersion:
    """A trained model and its lineage: what it continued from and which labelled data it saw."""

    name: str
    kind: str  # "stateless" | "stateful"
    model: Any
    parent: str | None
    data_range: dict[str, Any]
    cpu_s: float
    metrics: dict[str, Any] = field(default_factory=dict)

    def lineage(self) -> dict[str, Any]:
        """JSON-ready description (everything but the model), for a model store record."""
        return {"name": self.name, "kind": self.kind, "parent": self.parent, "data_range": self.data_range,
                "cpu_s": self.cpu_s, "metrics": self.metrics}


def _learn(model: Any, examples: Sequence[Example], arm: str) -> float:
    """Learn every example in order; returns CPU seconds (process time)."""
    cpu0 = time.process_time()
    for ex in examples:
        model.learn_one(ex.x[arm], ex.y)
    return time.process_time() - cpu0


def _range(examples: Sequence[Example], start_ms: int | None, end_ms: int) -> dict[str, Any]:
    times = [ex.t_ms for ex in examples]
    return {"event_time_ms": [min(times), max(times)] if times else None,
            "label_known_before_ms": end_ms, "label_since_ms": start_ms, "examples": len(examples)}


def retrain_stateless(factory: Callable[[], Any], examples: Sequence[Example], *, start_ms: int, end_ms: int,
                      arm: str, name: str = "stateless") -> TrainedVersion:
    """From scratch on examples predicted at or after ``start_ms`` whose label is known before ``end_ms``."""
    data = [ex for ex in examples if ex.y is not None and ex.t_ms >= start_ms and _label_t(ex) < end_ms]
    data.sort(key=_label_t)  # the order the labels arrived in, as online training sees them
    model = factory()
    cpu = _learn(model, data, arm)
    return TrainedVersion(name, "stateless", model, None, _range(data, None, end_ms), cpu)


def retrain_stateful(previous: TrainedVersion, examples: Sequence[Example], *, since_ms: int, end_ms: int,
                     arm: str, name: str = "stateful") -> TrainedVersion:
    """A copy of ``previous`` continued on the labels that arrived in ``[since_ms, end_ms)`` only."""
    data = [ex for ex in examples if ex.y is not None and since_ms <= _label_t(ex) < end_ms]
    data.sort(key=_label_t)
    cpu0 = time.process_time()
    model = copy.deepcopy(previous.model)  # the previous version stays as it was (it is an artifact)
    cpu = time.process_time() - cpu0 + _learn(model, data, arm)
    return TrainedVersion(name, "stateful", model, previous.name, _range(data, since_ms, end_ms), cpu)


def _label_t(ex: Example) -> int:
    return ex.label_time_ms if ex.label_time_ms is not None else ex.t_ms


def compare_retraining(examples: Sequence[Example], factory: Callable[[], Any], *, start_ms: int,
                       history_days: int = 28, update_days: int = 7, arm: str = "m", bootstrap: int = 1000,
                       seed: int = 0, feature_hashes: Sequence[str] = (),
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Daily stateless (trailing window) vs stateful (one day) retraining, scored on each next day.

    Day ``k`` of the week starts at ``start_ms + (history_days + k) days``. Its
    stateless version trains on the ``history_days`` before it; its stateful
    version is the previous one continued on the labels of the day before (the
    first continues a version trained on all history but that day). Quality is
    log loss and ROC AUC of predict-then-learn over the day, with 95% intervals
    from a block bootstrap over hours (paired: the same resampled hours for
    both). Compute is CPU seconds of training only; scoring is the same work
    for both and reported apart.
    """
    import numpy as np

    from workbench.evaluation.progressive import Example, Progressive

    if history_days < 1 or update_days < 1:
        raise WorkbenchError("history_days and update_days must be >= 1")
    say = progress or (lambda _msg: None)
    examples = sorted(examples, key=lambda e: e.t_ms)
    first = start_ms + history_days * DAY_MS
    base = retrain_stateless(factory, examples, start_ms=start_ms, end_ms=first - DAY_MS, arm=arm, name="initial")
    base.kind = "stateful"
    versions: list[TrainedVersion] = [base]
    previous = base
    losses: dict[str, list[float]] = {"stateless": [], "stateful": []}
    scores: dict[str, list[float]] = {"stateless": [], "stateful": []}
    truths: list[bool] = []
    blocks: list[int] = []
    days = []
    for k in range(update_days):
        d0 = first + k * DAY_MS
        stateless = retrain_stateless(factory, examples, start_ms=d0 - history_days * DAY_MS, end_ms=d0, arm=arm,
                                      name=f"stateless-{k}")
        stateful = retrain_stateful(previous, examples, since_ms=d0 - DAY_MS if k else previous_cut(base),
                                    end_ms=d0, arm=arm, name=f"stateful-{k}")
        previous = stateful
        loop = Progressive({"stateless": copy.deepcopy(stateless.model), "stateful": copy.deepcopy(stateful.model)},
                           every=10**12)
        day = [Example(ex.key, ex.t_ms, {"stateless": ex.x[arm], "stateful": ex.x[arm]}, ex.y, ex.label_time_ms,
                       ex.feature_time_ms) for ex in examples if d0 <= ex.t_ms < d0 + DAY_MS]
        cpu0 = time.process_time()
        result = loop.run(day)
        score_cpu = time.process_time() - cpu0
        n0 = len(truths)
        for a in losses:
            losses[a].extend(loop.losses[a])
            scores[a].extend(loop.scores[a])
        truths.extend(bool(y) for y in loop.truths)
        blocks.extend(int(t) // 3_600_000 for t in loop.label_times)
        for v in (stateless, stateful):
            v.metrics = {"day": k, **result.metrics[v.kind]}
            if feature_hashes:
                v.data_range["feature_hashes"] = sorted(feature_hashes)
        versions += [stateless, stateful]
        days.append({"day": k, "examples": len(truths) - n0,
                     "stateless": {"cpu_s": round(stateless.cpu_s, 4), "train_examples": stateless.data_range["examples"],
                                   **_rounded(result.metrics["stateless"])},
                     "stateful": {"cpu_s": round(stateful.cpu_s, 4), "train_examples": stateful.data_range["examples"],
                                  **_rounded(result.metrics["stateful"])},
                     "scoring_cpu_s_both": round(score_cpu, 4)})
        say(f"day {k + 1}/{update_days}: stateless {stateless.cpu_s:.2f} s on {stateless.data_range['examples']} "
            f"examples, stateful {stateful.cpu_s:.3f} s on {stateful.data_range['examples']}")
    quality = _bootstrap(np.asarray(losses["stateless"]), np.asarray(losses["stateful"]),
                         np.asarray(scores["stateless"]), np.asarray(scores["stateful"]),
                         np.asarray(truths, dtype=bool), np.asarray(blocks), bootstrap, seed)
    cpu = {kind: sum(v.cpu_s for v in versions[1:] if v.kind == kind) for kind in ("stateless", "stateful")}
    ll = quality["log_loss"]
    return {
        "days": days,
        "cpu_s": {k: round(v, 4) for k, v in cpu.items()},
        "initial_version_cpu_s": round(base.cpu_s, 4),
        "cpu_ratio": round(cpu["stateless"] / max(cpu["stateful"], 1e-9), 2),
        "quality": quality,
        "stateful_within_stateless_ci": ll["stateless"]["ci95"][0] <= ll["stateful"]["value"]
        <= ll["stateless"]["ci95"][1],
        "versions": [v.lineage() for v in versions],
    }


def previous_cut(version: TrainedVersion) -> int:
    """The label cut-off ``version`` was trained to: the next stateful update starts there."""
    return int(version.data_range["label_known_before_ms"])


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in metrics.items()}


def _bootstrap(loss_a: np.ndarray, loss_b: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
               truth: np.ndarray, blocks: np.ndarray, replicates: int, seed: int) -> dict[str, Any]:
    """Paired block bootstrap (blocks = hours) of log loss and ROC AUC for both arms and their difference."""
    import numpy as np

    from workbench.evaluation.progressive import roc_auc

    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(blocks, return_inverse=True)
    nb = len(ids)
    n_in = np.bincount(inverse, minlength=nb).astype(float)
    sum_a = np.bincount(inverse, weights=loss_a, minlength=nb)
    sum_b = np.bincount(inverse, weights=loss_b, minlength=nb)
    pick = rng.integers(0, nb, size=(replicates, nb))
    mean_a = sum_a[pick].sum(axis=1) / n_in[pick].sum(axis=1)
    mean_b = sum_b[pick].sum(axis=1) / n_in[pick].sum(axis=1)
    members = [np.flatnonzero(inverse == j) for j in range(nb)]
    auc_reps = min(replicates, 200)  # each AUC replicate sorts every example
    auc_a, auc_b = np.empty(auc_reps), np.empty(auc_reps)
    for r in range(auc_reps):
        idx = np.concatenate([members[j] for j in pick[r]])
        auc_a[r] = roc_auc(cast(Any, truth[idx]), cast(Any, score_a[idx]))
        auc_b[r] = roc_auc(cast(Any, truth[idx]), cast(Any, score_b[idx]))

    def summary(value: float, reps: np.ndarray) -> dict[str, Any]:
        lo, hi = np.nanpercentile(reps, [2.5, 97.5])
        return {"value": round(float(value), 5), "ci95": [round(float(lo), 5), round(float(hi), 5)]}

    la, lb = float(loss_a.mean()), float(loss_b.mean())
    aa, ab = roc_auc(cast(Any, truth), cast(Any, score_a)), roc_auc(cast(Any, truth), cast(Any, score_b))
    return {
        "examples": len(truth), "blocks": nb, "replicates": {"log_loss": replicates, "roc_auc": auc_reps},
        "block": "hour of label arrival",
        "log_loss": {"stateless": summary(la, mean_a), "stateful": summary(lb, mean_b),
                     "stateful_minus_stateless": summary(lb - la, mean_b - mean_a)},
        "roc_auc": {"stateless": summary(aa, auc_a), "stateful": summary(ab, auc_b),
                    "stateful_minus_stateless": summary(ab - aa, auc_b - auc_a)},
    }
