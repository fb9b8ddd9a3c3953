"""Plotly charts of an evaluation: metric curves, lift band, drift marks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from workbench.evaluation.result import EvaluationResult

_BAND_POINTS = 40
_BAND_BOOT = 300


def lift_band(losses_base: Any, losses_cand: Any, points: int = _BAND_POINTS) -> dict[str, list[float]]:
    """Cumulative relative loss reduction and its block-bootstrap band at ``points`` prefixes."""
    import numpy as np

    from workbench.evaluation.lift import paired_lift

    base, cand = np.asarray(losses_base, float), np.asarray(losses_cand, float)
    n = len(base)
    out: dict[str, list[float]] = {"n": [], "lift": [], "low": [], "high": []}
    if n < 20:
        return out
    for k in np.unique(np.linspace(20, n, num=min(points, n - 19)).astype(int)):
        lf = paired_lift(base[:k] - cand[:k], baseline_loss=base[:k], n_boot=_BAND_BOOT, seed=int(k))
        out["n"].append(int(k))
        out["lift"].append(lf.relative)
        out["low"].append(lf.relative_low)
        out["high"].append(lf.relative_high)
    return out


def evaluation_figure(result: EvaluationResult) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    name = result.metric_names[0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"{name} (rolling)", "loss reduction of candidate vs baseline"))
    ns = [row["n"] for row in result.curve]
    for arm, color in ((result.baseline, "#636efa"), (result.candidate, "#ef553b")):
        fig.add_trace(go.Scatter(x=ns, y=[row[f"{arm}.{name}.rolling"] for row in result.curve], name=arm,
                                 line={"color": color}), row=1, col=1)
    band = lift_band(result.losses[result.baseline], result.losses[result.candidate])
    fig.add_trace(go.Scatter(x=band["n"] + band["n"][::-1], y=band["high"] + band["low"][::-1], fill="toself",
                             fillcolor="rgba(0,150,80,0.2)", line={"width": 0}, name="95% band",
                             hoverinfo="skip"), row=2, col=1)
    fig.add_trace(go.Scatter(x=band["n"], y=band["lift"], name="lift", line={"color": "#00a060"}), row=2, col=1)
    fig.add_hline(y=0, line={"dash": "dot", "color": "grey"}, row=2, col=1)  # type: ignore[arg-type]
    # drift marks as thin lines, one legend entry per arm (labels on every line would pile up)
    for arm, color in ((result.baseline, "rgba(99,110,250,0.45)"), (result.candidate, "rgba(239,85,59,0.45)")):
        ns_arm = [n for a, n, _t in result.drift if a == arm]
        for n in ns_arm:
            fig.add_vline(x=n, line={"dash": "dot", "color": color, "width": 1})
        if ns_arm:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"drift ({arm}, ADWIN)",
                                     line={"dash": "dot", "color": color}), row=1, col=1)
    lf = result.lift
    fig.update_layout(
        height=500, margin={"l": 50, "r": 10, "t": 70, "b": 40}, template="plotly_white",
        title={"text": f"<b>{lf.verdict}</b>: candidate loss reduction {lf.relative:+.2%} "
                       f"[{lf.relative_low:+.2%}, {lf.relative_high:+.2%}], n={lf.n}",
               "font": {"size": 14}, "x": 0.01},
    )
    fig.update_xaxes(title_text="labelled examples", row=2, col=1)
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    return fig


class LiveChart:
    """A FigureWidget that redraws as the evaluation generator yields snapshots (notebooks only)."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    @classmethod
    def in_notebook(cls) -> LiveChart | None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            return None
        if shell is None or not hasattr(shell, "kernel"):
            return None
        import plotly.graph_objects as go
        from IPython.display import display

        widget = go.FigureWidget(
            data=[go.Scatter(name="baseline", x=[], y=[]), go.Scatter(name="candidate", x=[], y=[])],
            layout={"height": 300, "template": "plotly_white", "title": "evaluating...",
                    "xaxis": {"title": "labelled examples"}, "margin": {"l": 40, "r": 10, "t": 40, "b": 30}},
        )
        display(widget)
        return cls(widget)

    def update(self, loop: Any, snap: Any) -> None:
        name = loop.metric_names[0]
        ns = [row["n"] for row in loop.curve]
        with self.widget.batch_update():
            for trace, arm in zip(self.widget.data, ("baseline", "candidate"), strict=True):
                trace.x = ns
                trace.y = [row[f"{arm}.{name}.rolling"] for row in loop.curve]
            self.widget.layout.title = f"{name} (rolling), {snap.n_labelled} labelled"

    def finish(self, result: EvaluationResult) -> None:
        from IPython.display import display

        self.widget.layout.title = result.summary()[:110]
        display(result.figure())
