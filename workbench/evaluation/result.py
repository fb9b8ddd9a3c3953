"""The outcome of an evaluation: metrics per arm, lift with its interval, drift marks, a chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.evaluation.lift import Lift, paired_lift

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from workbench.evaluation.progressive import Progressive


@dataclass
class EvaluationResult:
    baseline: str
    candidate: str
    metric_names: list[str]
    metrics: dict[str, dict[str, float]]
    lift: Lift
    counts: dict[str, int]
    drift: list[tuple[str, int, int]]
    curve: list[dict[str, Any]]
    losses: dict[str, list[float]] = field(repr=False, default_factory=dict)
    t_bounds: tuple[int, int] | None = None
    record_id: str | None = None

    @classmethod
    def from_loop(cls, loop: Progressive, baseline: str, candidate: str) -> EvaluationResult:
        import numpy as np

        base = np.asarray(loop.losses[baseline])
        cand = np.asarray(loop.losses[candidate])
        lift = paired_lift(base - cand, baseline_loss=base)
        snap = loop.snapshot(loop.t_bounds[1] if loop.t_bounds else 0, auc=True)
        return cls(
            baseline=baseline,
            candidate=candidate,
            metric_names=list(loop.metric_names),
            metrics=snap.metrics,
            lift=lift,
            counts=dict(loop.counts),
            drift=list(loop.drift_points),
            curve=list(loop.curve),
            losses={a: list(v) for a, v in loop.losses.items()},
            t_bounds=(loop.t_bounds[0], loop.t_bounds[1]) if loop.t_bounds else None,
        )

    @property
    def verdict(self) -> str:
        return self.lift.verdict

    def summary(self) -> str:
        name = self.metric_names[0]
        b, c = self.metrics[self.baseline][name], self.metrics[self.candidate][name]
        lf = self.lift
        return (
            f"{self.candidate} vs {self.baseline}: {name} {c:.4f} vs {b:.4f}; "
            f"loss reduction {lf.relative:+.2%} [{lf.relative_low:+.2%}, {lf.relative_high:+.2%}] "
            f"({lf.confidence:.0%} block bootstrap, n={lf.n}) -> {lf.verdict}; "
            f"labels: {self.counts['labelled']} used, {self.counts['missing']} missing, {self.counts['late']} late"
        )

    def __repr__(self) -> str:
        return f"EvaluationResult({self.summary()})"

    def figure(self) -> go.Figure:
        """Both metric curves, the cumulative lift with its band, and drift marks."""
        from workbench.evaluation.chart import evaluation_figure

        return evaluation_figure(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = self.figure()._repr_mimebundle_(include, exclude)
        bundle["text/plain"] = self.summary()
        return bundle
