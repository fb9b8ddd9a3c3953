"""The feature review app's panels as plain, typed functions (``review.py`` only lays them out).

Nothing here runs the stream path on the calling thread: marimo runs app
cells on threads, and quixstreams installs signal handlers. Live values come
from a tap through the backfill path (the same values the stream emits, see
:mod:`workbench.features.backfill`); a fresh skew check runs both paths in a
spawned child process (:func:`recheck_skew`).

>>> round(psi([1, 2, 3, 4] * 50, [1, 2, 3, 4] * 50), 6)
0.0
>>> psi([1, 2, 3, 4] * 50, [4] * 200) > DRIFT_PSI
True
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.evaluation.records import EvaluationRecord
    from workbench.features.definition import FeatureSet
    from workbench.taps.tap import Tap

# Population stability index above which a feature is marked as drifted (a common rule of thumb).
DRIFT_PSI = 0.2
# A bin whose own PSI term exceeds this gets a drift mark on the chart.
DRIFT_BIN_PSI = 0.05
_EPS = 1e-4


def definition_frame(feature_set: FeatureSet) -> pd.DataFrame:
    """One row per feature: name, hash, entity, window, aggregation, filter and source."""
    import json

    import pandas as pd

    rows = []
    for f in feature_set.features:
        spec = f.spec()
        rows.append({
            "feature": f.name, "hash": f.hash, "entity": f.entity.name,
            "window": json.dumps(spec["window"], sort_keys=True),
            "aggregation": json.dumps(spec["aggregation"], sort_keys=True),
            "where": "" if spec["where"] is None else json.dumps(spec["where"], sort_keys=True),
            "source": f.source,
        })  # fmt: skip
    return pd.DataFrame(rows)


_taps: dict[tuple[str, str], Tap] = {}
_taps_lock = threading.Lock()


def shared_tap(topic: str, since: str) -> Tap:
    """One live tap per (topic, since) for the whole app process: reruns and tabs share it."""
    from workbench.taps.tap import tap

    with _taps_lock:
        current = _taps.get((topic, since))
        if current is None or not current.running:
            current = _taps[(topic, since)] = tap(topic, since=since)
        return current


def _outputs(feature_set: FeatureSet, events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-record output of every feature over ``events`` (backfill path, processing order)."""
    from workbench.features.backfill import backfill

    if len(events) and {"partition", "offset"} <= set(events.columns):
        events = events.sort_values(["partition", "offset"], kind="stable")
    return {f.name: backfill(f, events) for f in feature_set.features}


def latest_by_feature(feature_set: FeatureSet, events: pd.DataFrame, top: int = 10) -> dict[str, pd.DataFrame]:
    """Per feature: the newest value of its busiest ``top`` keys, with how many records each key had.

    One table per feature, since features of a set may be keyed by different entities.
    """
    from workbench.features.review import latest_values

    tables: dict[str, pd.DataFrame] = {}
    if len(events) == 0:
        return tables
    for name, out in _outputs(feature_set, events).items():
        if len(out) == 0:
            continue
        latest = latest_values(out, name).drop(columns="event_time_ms")
        counts = out.groupby("key").size().reindex(latest.index).fillna(0).astype(int)
        latest = latest.assign(records=counts).sort_values("records", ascending=False, kind="stable")
        latest[name] = latest[name].map(lambda v: round(v, 6) if isinstance(v, float) else v)
        tables[name] = latest.head(top).reset_index()
    return tables


@dataclass(frozen=True)
class SkewSummary:
    """The newest stored skew record for the set's exact hashes, as the gate reads it."""

    ok: bool | None  # None: never checked
    text: str
    record_id: str | None = None


def skew_summary(feature_set: FeatureSet) -> SkewSummary:
    """``0 mismatches over N records`` (expected), the mismatch count, or "no skew check yet"."""
    import datetime as dt

    from workbench.features.review import latest_skew

    report = latest_skew([f.hash for f in feature_set.features])
    if report is None:
        return SkewSummary(None, "no skew check yet for these definitions: run one below, or "
                                 "`feature_set.check_skew(history)` in a notebook")
    at = dt.datetime.fromtimestamp(report.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    first = next((m[0] for m in report.mismatches.values() if m), "")
    text = f"{report.mismatch_count} mismatches over {report.records} records (checked {at}, id {report.id})"
    return SkewSummary(report.mismatch_count == 0, text + (f"; first: {first}" if first else ""), report.id)


def _skew_child(name: str, set_hash: str, last_records: int) -> tuple[str, int, int]:
    """In the child process: replay the newest records of the set's source and check skew (stored)."""
    from workbench.features.sets import load_set
    from workbench.taps.replay import replay

    fs = load_set(name, set_hash)
    history = replay(fs.features[0].source, -last_records, progress=False)
    report = fs.check_skew(history)
    return report.id, report.mismatch_count, report.records


def recheck_skew(feature_set: FeatureSet, last_records: int = 2_000) -> tuple[str, int, int]:
    """Both paths over the newest ``last_records`` per partition, in a spawned child process.

    The child stores the skew record (what the gate reads) and returns
    ``(record id, mismatches, records)``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no forked copy of the app's threads and sockets
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_skew_child, feature_set.name, feature_set.hash, last_records).result()


def training_window(feature_set: FeatureSet, record: EvaluationRecord | None, max_records: int = 20_000) -> pd.DataFrame:
    """The events the evaluation trained on when it read a topic; else the newest ``max_records``.

    An evaluation over an in-memory frame names no topic, so the source's
    recent history stands in for it (the chart says which one it used).
    """
    from workbench.taps.replay import replay

    source = feature_set.features[0].source
    rng = (record.data_range if record is not None else {}) or {}
    parts = rng.get("partitions") or {}
    if rng.get("topic") == source and parts:
        start = {int(p): max(int(lo), int(hi) + 1 - max_records) for p, (lo, hi) in parts.items()}
        end = {int(p): int(hi) + 1 for p, (_lo, hi) in parts.items()}
        return replay(source, start, end, progress=False)
    return replay(source, -max_records, progress=False)


def numeric_values(feature_set: FeatureSet, events: pd.DataFrame) -> dict[str, list[float]]:
    """Every on-time numeric value each feature emitted over ``events``."""
    out: dict[str, list[float]] = {}
    for name, frame in _outputs(feature_set, events).items():
        on_time = frame[~frame["late"].astype(bool)]["value"] if len(frame) else frame.get("value", [])
        values = [float(v) for v in on_time if isinstance(v, int | float) and not isinstance(v, bool)]
        if values or len(on_time) == 0:
            out[name] = values
    return out


def _bins(expected: Any, bins: int) -> Any:
    import numpy as np

    edges = np.unique(np.quantile(np.asarray(expected, float), np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        v = float(edges[0]) if len(edges) else 0.0
        edges = np.array([v - 0.5, v + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def psi_terms(expected: Any, actual: Any, bins: int = 10) -> tuple[Any, Any, Any, Any]:
    """Bin edges (training quantiles), both shares per bin, and each bin's PSI term."""
    import numpy as np

    edges = _bins(expected, bins)
    e = np.histogram(np.asarray(expected, float), edges)[0] / max(len(expected), 1)
    a = np.histogram(np.asarray(actual, float), edges)[0] / max(len(actual), 1)
    e, a = np.clip(e, _EPS, None), np.clip(a, _EPS, None)
    return edges, e, a, (a - e) * np.log(a / e)


def psi(expected: Any, actual: Any, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (0: same distribution)."""
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    return float(psi_terms(expected, actual, bins)[3].sum())


def distribution_figure(training: dict[str, list[float]], recent: dict[str, list[float]]) -> tuple[go.Figure, dict[str, float]]:
    """Per feature: share per training-quantile bin, training vs recent, with drift marks; and PSI."""
    import math

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [n for n in training if training[n] and recent.get(n)]
    scores = {n: psi(training[n], recent[n]) for n in names}
    titles = [f"{n}: PSI {scores[n]:.3f} " + ("DRIFT" if scores[n] > DRIFT_PSI else "stable") for n in names]
    fig = make_subplots(rows=max(len(names), 1), cols=1, subplot_titles=titles or ["no numeric values yet"])
    for row, name in enumerate(names, start=1):
        edges, e, a, terms = psi_terms(training[name], recent[name])
        labels = [_bin_label(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        first = row == 1
        fig.add_trace(go.Bar(x=labels, y=e, name="training window", marker_color="#636efa",
                             legendgroup="t", showlegend=first), row=row, col=1)
        fig.add_trace(go.Bar(x=labels, y=a, name="recent (tap)", marker_color="#ef553b",
                             legendgroup="r", showlegend=first), row=row, col=1)
        marked = [i for i, t in enumerate(terms) if t > DRIFT_BIN_PSI]
        fig.add_trace(go.Scatter(x=[labels[i] for i in marked], y=[max(e[i], a[i]) * 1.08 for i in marked],
                                 mode="markers", marker={"symbol": "triangle-down", "color": "#c00", "size": 11},
                                 name=f"drift (bin PSI > {DRIFT_BIN_PSI})", legendgroup="d",
                                 showlegend=first), row=row, col=1)
        fig.update_yaxes(tickformat=".0%", row=row, col=1)
    fig.update_layout(barmode="group", template="plotly_white", height=max(260 * len(names), 260),
                      margin={"l": 50, "r": 10, "t": 50, "b": 40},
                      title={"text": "distribution: recent vs training window", "x": 0.01})
    return fig, {n: (s if not math.isnan(s) else float("nan")) for n, s in scores.items()}


def _bin_label(lo: float, hi: float) -> str:
    import math

    def fmt(v: float) -> str:
        return f"{v:.3g}"

    if math.isinf(lo):
        return f"< {fmt(hi)}"
    if math.isinf(hi):
        return f">= {fmt(lo)}"
    return f"[{fmt(lo)}, {fmt(hi)})"


def evaluation_records(feature_set: FeatureSet) -> list[EvaluationRecord]:
    """This set's evaluations, oldest first: by name, and any other record of its exact hashes."""
    from workbench.evaluation.records import find_passing, list_records

    found = {r.id: r for r in list_records(limit=50, feature_set=feature_set.name)}
    passing = find_passing([f.hash for f in feature_set.features])
    if passing is not None:
        found.setdefault(passing.id, passing)
    return sorted(found.values(), key=lambda r: r.created_at)


def lift_figure(records: list[EvaluationRecord], hashes: list[str]) -> go.Figure:
    """Relative loss reduction of each evaluation with its 95% band; the set's exact hashes in bold."""
    import datetime as dt

    import plotly.graph_objects as go

    fig = go.Figure()
    rows = [r for r in records if isinstance(r.lift.get("relative"), int | float)]
    x = [dt.datetime.fromtimestamp(r.created_at, dt.UTC).strftime("%m-%d %H:%M:%S") + f" · {r.id[:6]}"
         for r in rows]
    rel = [float(r.lift["relative"]) for r in rows]
    low = [float(r.lift.get("relative_low", v)) for r, v in zip(rows, rel, strict=True)]
    high = [float(r.lift.get("relative_high", v)) for r, v in zip(rows, rel, strict=True)]
    if len(rows) > 1:
        fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", fillcolor="rgba(0,150,80,0.15)",
                                 line={"width": 0}, hoverinfo="skip", name="95% band"))
    exact = sorted(hashes)
    colours = ["#00a060" if r.verdict == "better" else "#c00" if r.verdict == "worse" else "#888" for r in rows]
    sizes = [14 if sorted(r.candidate_hashes) == exact else 8 for r in rows]
    fig.add_trace(go.Scatter(
        x=x, y=rel, mode="markers+lines", name="lift (95% band)", line={"color": "#00a060", "width": 1},
        marker={"color": colours, "size": sizes},
        error_y={"type": "data", "symmetric": False, "array": [h - v for h, v in zip(high, rel, strict=True)],
                 "arrayminus": [v - lo for v, lo in zip(rel, low, strict=True)], "color": "#555"},
        text=[f"{r.verdict}, n={r.lift.get('n')}" for r in rows], hovertemplate="%{y:+.2%} %{text}"))
    fig.add_hline(y=0, line={"dash": "dot", "color": "grey"})
    last = rows[-1] if rows else None
    title = ("no evaluation yet: run wb.evaluate(..., feature_set=NAME)" if last is None else
             f"<b>{last.verdict}</b>: loss reduction {rel[-1]:+.2%} [{low[-1]:+.2%}, {high[-1]:+.2%}], "
             f"n={last.lift.get('n')}")
    fig.update_layout(template="plotly_white", height=340, margin={"l": 50, "r": 10, "t": 50, "b": 60},
                      title={"text": "evaluation lift: " + title, "x": 0.01, "font": {"size": 14}},
                      yaxis={"tickformat": ".1%", "title": "candidate loss reduction"})
    return fig
