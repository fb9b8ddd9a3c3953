"""How a tap looks: a live ipywidgets view in Jupyter, HTML elsewhere, plotly for marimo.

The live view is a rate sparkline (a plotly ``FigureWidget``: messages per
second over the last minute), the latest rows and per-field summaries. A
background thread redraws it at most every ``tap_refresh_s`` seconds (slower
when a redraw itself is slow), so the kernel is never blocked and a fast topic
never floods the browser. ipywidgets and plotly load only here, on first display.
"""

from __future__ import annotations

import html as _html
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.taps.tap import Tap

LATEST_ROWS = 10
SPARK_SECONDS = 60


def header(tap: Tap) -> str:
    """One line: state, rate, buffer use and malformed count."""
    msgs_s, bytes_s = tap.rate.per_second()
    bad = sum(tap.malformed_counts.values())
    state = "live" if tap.running else "stopped"
    lag = sum(v for v in list(tap._lag.values()) if v is not None)
    line = (
        f"tap {tap.topic!r} ({state}, {tap.mode}): {msgs_s:,.0f} msg/s, {bytes_s / 1e3:,.1f} kB/s, "
        f"lag {lag:,}, {len(tap._buffer):,}/{tap._buffer.max_rows:,} rows buffered, {bad:,} malformed"
    )
    return line if tap.error is None else f"{line}; error: {tap.error}"


def summaries(tap: Tap) -> pd.DataFrame:
    """Per-field null rate, distinct count and min/max over the latest buffered rows."""
    import pandas as pd

    from workbench.taps.records import schema_summary
    from workbench.taps.tap import SCHEMA_SAMPLE_ROWS

    df = tap.df(last=SCHEMA_SAMPLE_ROWS)
    return pd.DataFrame(schema_summary(df), columns=["column", "dtype", "null_rate", "distinct", "min", "max"])


def _malformed_html(tap: Tap) -> str:
    if not tap.malformed_counts:
        return ""
    counts = ", ".join(f"{_html.escape(k)}: {v:,}" for k, v in sorted(tap.malformed_counts.items()))
    recent = tap.malformed().tail(5).to_html(index=False, border=0)
    return f"<details><summary>malformed records ({counts})</summary>{recent}</details>"


def html(tap: Tap) -> str:
    """Static HTML: header, latest rows, field summaries and malformed records."""
    rows = tap.df(last=LATEST_ROWS).to_html(index=False, border=0, max_cols=20)
    fields = summaries(tap).to_html(index=False, border=0, na_rep="")
    return (
        f"<div><b>{_html.escape(header(tap))}</b>"
        f"<div style='overflow-x:auto'>{rows}</div>"
        f"<details><summary>fields</summary>{fields}</details>{_malformed_html(tap)}</div>"
    )


def sparkline(tap: Tap, figure: go.Figure | None = None) -> go.Figure:
    """Messages per second over the last minute; updates ``figure`` in place when given."""
    import plotly.graph_objects as go

    ys = tap.rate.series(seconds=SPARK_SECONDS)
    xs = list(range(-len(ys) + 1, 1))
    if figure is not None:
        with figure.batch_update():
            figure.data[0].x = xs
            figure.data[0].y = ys
        return figure
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", fill="tozeroy", line={"width": 1}))
    fig.update_layout(
        height=120,
        margin={"l": 40, "r": 10, "t": 10, "b": 25},
        xaxis={"title": None, "ticksuffix": "s"},
        yaxis={"title": "msg/s", "rangemode": "tozero"},
        showlegend=False,
    )
    return fig


def marimo_view(tap: Tap) -> Any:
    """What marimo shows for a tap (its ``_display_``): header, sparkline, latest rows, fields."""
    import marimo as mo

    return mo.vstack([mo.md(f"**{header(tap)}**"), sparkline(tap), tap.df(last=LATEST_ROWS), summaries(tap)])


class TapView:
    """The live Jupyter widget of a tap, redrawn by a background thread."""

    def __init__(self, tap: Tap, refresh_s: float) -> None:
        import ipywidgets as widgets
        import plotly.graph_objects as go

        self.tap = tap
        self.refresh_s = refresh_s
        self.title = widgets.HTML()
        self.figure = go.FigureWidget(sparkline(tap))
        self.rows = widgets.HTML()
        self.fields = widgets.HTML()
        self.malformed = widgets.HTML()
        self.widget = widgets.VBox(
            [self.title, self.figure, self.rows, widgets.Accordion([self.fields], titles=("fields",)),
             self.malformed]
        )
        self._stop = threading.Event()
        self.redraw()
        self._thread = threading.Thread(target=self._loop, name=f"tap-view:{tap.topic}", daemon=True)
        self._thread.start()

    def redraw(self) -> None:
        tap = self.tap
        self.title.value = f"<b>{_html.escape(header(tap))}</b>"
        sparkline(tap, self.figure)
        self.rows.value = tap.df(last=LATEST_ROWS).to_html(index=False, border=0, max_cols=20)
        self.fields.value = summaries(tap).to_html(index=False, border=0, na_rep="")
        self.malformed.value = _malformed_html(tap)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.redraw()
            except Exception as exc:  # a drawing error must not kill the thread silently
                self.title.value = f"<b>view error: {_html.escape(repr(exc))}</b>"
            if not self.tap.running:
                return  # one last redraw shows the final state
            took = time.monotonic() - started
            # throttle: never spend more than about a third of the time redrawing
            self._stop.wait(max(self.refresh_s, 3 * took))

    def stop(self) -> None:
        self._stop.set()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def show(tap: Tap) -> None:
    """Display the live widget in a Jupyter kernel, or the HTML fallback elsewhere."""
    from IPython.display import HTML, display

    if _in_kernel():
        try:
            view = TapView(tap, tap._s.tap_refresh_s)
        except ImportError:  # ipywidgets / anywidget missing: static HTML still works
            display(HTML(html(tap)))
            return
        tap._views.append(view)
        display(view.widget)
    else:
        display(HTML(html(tap)))
