"""A feature in the notebook: live preview, backfill, and the skew check with its stored record.

``preview`` runs the real stream path (quixstreams, broker-less through
``StreamingDataFrame.test``) on the records a tap has read, on the calling
thread and bounded in time: quixstreams installs signal handlers, so it never
runs on a background thread. Nothing joins a consumer group or writes to a topic.

``check_skew`` runs both paths over the same history and stores a skew record
(definition hashes, data range, mismatch count) that the promotion gate reads.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Table

    from workbench.features.definition import Feature, FeatureSet
    from workbench.taps.tap import Tap


@dataclass
class SkewReport:
    """Mismatches per feature between the stream path and the backfill over the same events."""

    feature_hashes: list[str]
    data_range: dict[str, Any]
    records: int
    mismatches: dict[str, list[str]]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)

    @property
    def mismatch_count(self) -> int:
        return sum(len(v) for v in self.mismatches.values())

    def __repr__(self) -> str:
        worst = next((f"; first: {v[0]}" for v in self.mismatches.values() if v), "")
        return (f"SkewReport({self.mismatch_count} mismatches over {self.records} records, "
                f"{len(self.feature_hashes)} definitions{worst})")

    def _repr_html_(self) -> str:
        colour = "#0a0" if self.mismatch_count == 0 else "#c00"
        rows = "".join(f"<tr><td>{name}</td><td>{len(m)}</td><td>{'<br>'.join(m[:3])}</td></tr>"
                       for name, m in self.mismatches.items())
        return (f"<b style='color:{colour}'>{self.mismatch_count} mismatches</b> over {self.records} records"
                f"<table><tr><th>feature</th><th>mismatches</th><th>first</th></tr>{rows}</table>")


def _features(target: Feature | FeatureSet) -> list[Feature]:
    from workbench.features.definition import Feature

    return [target] if isinstance(target, Feature) else list(target.features)


def check_skew(target: Feature | FeatureSet, history: pd.DataFrame, record: bool = True) -> SkewReport:
    """Both paths over ``history``; every mismatch is listed (the expectation is zero)."""
    from workbench.evaluation.evaluate import data_range
    from workbench.features.definition import Feature, save
    from workbench.features.skew import skew_check

    features = _features(target)
    source = features[0].source if features else None
    report = SkewReport(
        feature_hashes=sorted(f.hash for f in features),
        data_range=data_range(history, source),
        records=len(history),
        mismatches=skew_check(features, history),
    )
    if record:
        save(features)
        _save(report)
        if not isinstance(target, Feature):
            from workbench.features.sets import save_set

            save_set(target)
    return report


@lru_cache(maxsize=1)
def _table() -> Table:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    return Table(
        "skew_checks", MetaData(),
        Column("id", String(32), primary_key=True),
        Column("created_at", Float, nullable=False),
        Column("feature_hashes", Text, nullable=False, index=True),
        Column("records", Integer, nullable=False),
        Column("mismatch_count", Integer, nullable=False),
        Column("data_range", Text, nullable=False),
        Column("mismatches", Text, nullable=False),
    )  # fmt: skip


def _save(report: SkewReport, url: str | None = None) -> None:
    from workbench.db import ready

    row = asdict(report)
    row["feature_hashes"] = json.dumps(report.feature_hashes)
    row["data_range"] = json.dumps(report.data_range, default=str)
    row["mismatches"] = json.dumps(report.mismatches)
    row["mismatch_count"] = report.mismatch_count
    with ready(_table().metadata, url).begin() as conn:
        conn.execute(_table().insert().values(**row))


def latest_skew(feature_hashes: list[str], url: str | None = None) -> SkewReport | None:
    """The newest skew record for exactly these definition hashes (the promotion gate reads it)."""
    from workbench.db import ready

    t = _table()
    key = json.dumps(sorted(feature_hashes))
    with ready(t.metadata, url).connect() as conn:
        row = conn.execute(t.select().where(t.c.feature_hashes == key).order_by(t.c.created_at.desc())).first()
    if row is None:
        return None
    m = row._mapping
    return SkewReport(json.loads(m["feature_hashes"]), json.loads(m["data_range"]), m["records"],
                      json.loads(m["mismatches"]), m["id"], m["created_at"])


def latest_values(output: pd.DataFrame, name: str) -> pd.DataFrame:
    """The newest non-late value per key from a per-record output (what an online store would hold)."""
    live = output[~output["late"].astype(bool)]
    last = live.groupby("key", sort=False).tail(1)
    return last[["key", "event_time_ms", "value"]].rename(columns={"value": name}).set_index("key")


def preview(
    target: Feature | FeatureSet,
    tap: Tap,
    duration_s: float = 10.0,
    refresh_s: float = 1.0,
    top: int = 15,
) -> pd.DataFrame:
    """Watch live values for ``duration_s`` seconds: a table of the busiest keys and a chart.

    Returns the latest value per key (one column per feature) when the time is up.
    """
    from workbench.features.stream import run_stream_on_frame

    features = _features(target)
    view = _PreviewView.create(features, top)
    deadline = time.monotonic() + duration_s
    latest: pd.DataFrame | None = None
    while True:
        events = tap.df()
        if len(events):
            events = events.sort_values(["partition", "offset"], kind="stable")
            parts = [latest_values(run_stream_on_frame(f, events), f.name) for f in features]
            latest = parts[0].drop(columns="event_time_ms").join(
                [p.drop(columns="event_time_ms") for p in parts[1:]], how="outer") if parts else None
            if view is not None and latest is not None:
                view.update(latest, len(events))
        if time.monotonic() >= deadline:
            break
        time.sleep(min(refresh_s, max(0.0, deadline - time.monotonic())))
    import pandas as pd

    return latest if latest is not None else pd.DataFrame(columns=[f.name for f in features])


class _PreviewView:
    """Table + bar chart of the busiest keys, redrawn in place (notebooks only)."""

    def __init__(self, html: Any, fig: Any, names: list[str], top: int) -> None:
        self.html, self.fig, self.names, self.top = html, fig, names, top

    @classmethod
    def create(cls, features: list[Feature], top: int) -> _PreviewView | None:
        try:
            from IPython import get_ipython

            if get_ipython() is None or not hasattr(get_ipython(), "kernel"):
                return None
        except ImportError:
            return None
        import ipywidgets as widgets
        import plotly.graph_objects as go
        from IPython.display import display

        names = [f.name for f in features]
        fig = go.FigureWidget(data=[go.Bar(name=n, x=[], y=[]) for n in names],
                              layout={"height": 260, "template": "plotly_white", "barmode": "group",
                                      "margin": {"l": 40, "r": 10, "t": 30, "b": 60}})
        html = widgets.HTML()
        display(widgets.VBox([html, fig]))
        return cls(html, fig, names, top)

    def update(self, latest: pd.DataFrame, n_events: int) -> None:
        numeric = [n for n in self.names if n in latest and latest[n].map(_is_number).all()]
        order = latest[numeric[0]].astype(float).nlargest(self.top).index if numeric else latest.index[: self.top]
        shown = latest.loc[order]
        self.html.value = (f"<b>{len(latest)} keys</b> from {n_events} tapped events "
                           f"(stream path, bounded, in this kernel)" + shown.to_html(max_rows=self.top))
        with self.fig.batch_update():
            for trace, name in zip(self.fig.data, self.names, strict=True):
                if name in numeric:
                    trace.x = [str(k) for k in shown.index]
                    trace.y = shown[name].astype(float).tolist()


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
