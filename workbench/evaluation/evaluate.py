"""``wb.evaluate``: a candidate feature list against a baseline, prequentially, on history.

For every prediction event (the label's ``on`` events), each arm gets the
values of its features as they were available strictly before the prediction
time (the features issue's point-in-time join), predicts, and learns when the
label arrives. The record of the run is stored for the promotion gate.

>>> import pandas as pd
>>> from river import linear_model
>>> from workbench.evaluation.labels import purchase_within
>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import SESSION, Feature, col
>>> views = Feature("views", SESSION, win.Sliding(size_ms=600_000), agg.Count(), where=col("event_type") == "view")
>>> ev = pd.DataFrame({"session_id": ["s"] * 4, "item_id": ["a", "b", "a", "a"],
...     "event_type": ["view", "view", "view", "purchase"], "event_time_ms": [0, 1_000, 2_000, 3_000],
...     "partition": 0, "offset": [0, 1, 2, 3]})
>>> res = evaluate(linear_model.LogisticRegression(), label=purchase_within(30), baseline=[],
...                candidate=[views], source=ev, record=False)
>>> res.counts["predicted"], res.counts["missing"]
(3, 1)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.evaluation.progressive import Columns, Example, Progressive

if TYPE_CHECKING:
    import pandas as pd
    from river.base import Estimator

    from workbench.evaluation.labels import Label
    from workbench.evaluation.result import EvaluationResult
    from workbench.features.definition import Feature


@dataclass(frozen=True)
class FeatureFrame:
    """Precomputed values to join as of ``time``; ``source_time`` is the newest event each value used.

    The evaluation joins on ``time`` and checks ``source_time`` against the
    prediction time, so a frame joined on the wrong clock (e.g. a window's
    start while its value used the whole window) raises ``LeakageError``.
    """

    name: str
    frame: pd.DataFrame
    key: str
    value: str
    time: str
    source_time: str


def _values_as_of(
    predictions: pd.DataFrame, features: Sequence[Feature | FeatureFrame], events: pd.DataFrame
) -> tuple[dict[str, Any], Any]:
    """Feature name -> values aligned to ``predictions``, and the newest source time per row."""
    import numpy as np
    import pandas as pd

    from workbench.features.backfill import backfill
    from workbench.features.training import available_updates

    out: dict[str, Any] = {}
    newest = np.full(len(predictions), -(2**62), dtype="int64")
    t = predictions["event_time_ms"].to_numpy(dtype="int64")
    for f in features:
        left = pd.DataFrame({"_row": np.arange(len(predictions)), "_t": t})
        if isinstance(f, FeatureFrame):
            left["key"] = predictions[f.key].astype(str).to_numpy()
            right = pd.DataFrame({"key": f.frame[f.key].astype(str).to_numpy(), "_at": f.frame[f.time].to_numpy(),
                                  "value": f.frame[f.value].to_numpy(), "_src": f.frame[f.source_time].to_numpy()})
        else:
            left["key"] = f.entity.key_expr.evaluate_frame(predictions).astype(str).to_numpy()
            # "last update wins" among updates with the same (key, available_ms) needs no
            # drop_duplicates: merge_asof takes the last of tied rows, and the sort below is stable
            ups = available_updates(backfill(f, events))
            right = ups[["key", "available_ms", "value"]].rename(columns={"available_ms": "_at"})
            right = right.assign(_src=right["_at"], key=right["key"].astype(str))
        right = right.assign(_at=right["_at"].astype("int64")).sort_values("_at", kind="stable")
        joined = pd.merge_asof(left.sort_values("_t", kind="stable"), right, left_on="_t", right_on="_at",
                               by="key", allow_exact_matches=False, direction="backward").sort_values("_row")
        out[f.name] = joined["value"].to_numpy()
        src = joined["_src"].fillna(-(2**62)).to_numpy(dtype="int64")
        newest = np.maximum(newest, src)
    return out, newest


def examples_from_history(
    events: pd.DataFrame,
    label: Label,
    arms: dict[str, Sequence[Feature | FeatureFrame]],
) -> Iterator[Example]:
    """Prediction examples in event-time order, with point-in-time features and delayed labels."""
    yield from history_columns(events, label, arms).examples()


def history_columns(
    events: pd.DataFrame,
    label: Label,
    arms: dict[str, Sequence[Feature | FeatureFrame]],
) -> Columns:
    """The same examples as :func:`examples_from_history`, as columns (what ``evaluate`` runs on)."""
    events = events.reset_index(drop=True)
    preds = label.compute(events).sort_values("event_time_ms", kind="stable").reset_index(drop=True)
    names = {f.name for fs in arms.values() for f in fs}
    by_name = {f.name: f for fs in arms.values() for f in fs}
    values, newest = _values_as_of(preds, [by_name[n] for n in sorted(names)], events)
    columns = {name: _numeric_column(name, values[name]) for name in names}
    return Columns(
        keys=preds["event_id"].astype(str).tolist() if "event_id" in preds else [str(i) for i in preds.index],
        t_ms=preds["event_time_ms"].to_numpy(dtype="int64").tolist(),
        vectors={arm: _vectors([f.name for f in fs], columns, len(preds)) for arm, fs in arms.items()},
        y=[None if y is None else bool(y) for y in preds["y"].to_numpy().tolist()],
        label_time_ms=preds["label_time_ms"].to_numpy(dtype="int64").tolist(),
        feature_time_ms=[int(v) if v > -(2**62) else None for v in newest.tolist()],
    )


def _vectors(names: list[str], columns: dict[str, Any], n: int) -> list[dict[str, float]]:
    """One fresh dict per row; NaN (no value yet) is left out of the dict, as River expects.

    >>> import numpy as np
    >>> _vectors(["a", "b"], {"a": np.array([1.0, np.nan]), "b": np.array([2.0, 3.0])}, 2)
    [{'a': 1.0, 'b': 2.0}, {'b': 3.0}]
    """
    import numpy as np

    if not names:
        return [{} for _ in range(n)]
    cols = [columns[name].tolist() for name in names]
    # dict(zip(names, row)) row by row runs in C; the few rows with a gap are rebuilt after
    rows = list(map(dict, map(zip, repeat(names), zip(*cols, strict=True))))
    gaps = np.isnan(columns[names[0]])
    for name in names[1:]:
        gaps |= np.isnan(columns[name])
    for i in np.flatnonzero(gaps).tolist():
        rows[i] = {k: v for k, v in rows[i].items() if v == v}
    return rows


def _numeric_column(name: str, values: Any) -> Any:
    """Feature values as float64 with NaN for "no value yet"; a clear error for non-numbers."""
    import numpy as np

    try:
        arr = np.asarray(values)
        if arr.dtype.kind in "biufO":  # object: None becomes NaN, as float("nan") for "no value"
            return arr.astype("float64")
        return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    except (TypeError, ValueError):
        bad = next(v for v in values if v is not None and not isinstance(v, int | float | bool))
        raise WorkbenchError(f"feature {name!r} has non-numeric values ({type(bad).__name__}); "
                             "evaluate a numeric feature derived from it") from None


def data_range(events: pd.DataFrame, topic: str | None) -> dict[str, Any]:
    """(topic, partition -> [first, last] offset) plus event-time bounds: enough to replay it."""
    parts: dict[str, list[int]] = {}
    if "partition" in events and "offset" in events and len(events):
        g = events.groupby("partition")["offset"].agg(["min", "max"])
        parts = {str(p): [int(r["min"]), int(r["max"])] for p, r in g.iterrows()}
    times = events["event_time_ms"]
    return {"topic": topic, "partitions": parts,
            "event_time_ms": [int(times.min()), int(times.max())] if len(events) else None}


def model_spec(model: Estimator) -> dict[str, Any]:
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "repr": repr(model)}


def evaluate(
    model: Estimator,
    *,
    label: Label,
    baseline: Sequence[Feature | FeatureFrame],
    candidate: Sequence[Feature | FeatureFrame],
    source: pd.DataFrame | str | None = None,
    start: Any = None,
    end: Any = None,
    feature_set: str | None = None,
    max_label_wait_ms: int | None = None,
    chart: bool | None = None,
    record: bool = True,
    every: int = 500,
    live_s: float = 0.0,
    live_warmup_ms: int | None = None,
) -> EvaluationResult:
    """Paired prequential evaluation of ``candidate`` vs ``baseline`` features: history, then live.

    ``source`` is an events frame (with ``partition`` and ``offset``), or a topic
    name read with ``wb.replay(source, start, end)``. With ``live_s`` > 0 (a topic
    source only), history ends at the topic's current end offsets and the
    evaluation continues on the live tail from exactly there for ``live_s``
    seconds once its stream path, started one window plus grace before the seam,
    has warmed up (:mod:`workbench.evaluation.live`); ``live_warmup_ms`` caps
    that warm-up (first values of longer windows are then partial). In a notebook, ``chart``
    (default on) draws both metric curves, the lift band and drift marks live.
    """
    from workbench.config import settings

    topic = (source or settings().events_topic) if isinstance(source, str) or source is None else None
    seam: dict[int, int] | None = None
    if live_s > 0:
        if topic is None:
            raise WorkbenchError("a live phase needs a topic source, e.g. source='events'")
        from workbench.evaluation.live import seam_offsets

        seam = seam_offsets(topic)
        end = seam  # history stops exactly where the live phase starts
    if topic is not None:
        from workbench.taps.replay import replay

        events = replay(topic, start, end)
    else:
        events = source  # type: ignore[assignment]
    if len(events) == 0 and not live_s:
        raise WorkbenchError("no events to evaluate on: widen the range or stream some history first")
    loop = Progressive({"baseline": model.clone(), "candidate": model.clone()},
                       max_label_wait_ms=max_label_wait_ms, every=every)
    loop.keep_open = live_s > 0  # labels open at the seam may still arrive live
    arms = {"baseline": baseline, "candidate": candidate}
    live = _live_chart() if chart is None or chart else None
    if len(events):
        for snap in loop.iterate(history_columns(events, label, arms)):
            if live is not None:
                live.update(loop, snap)
    live_stats: dict[str, Any] = {}
    if seam is not None and topic is not None:
        import uuid

        from workbench.evaluation.live import run_live

        live_stats = run_live(loop, topic=topic, seam=seam, history=events, label=label, arms=arms,
                              live_s=live_s, evaluation_id=uuid.uuid4().hex[:12], chart=live,
                              warmup_ms=live_warmup_ms)
    result = loop.result("baseline", "candidate")
    result.counts.update({k: v for k, v in live_stats.items() if isinstance(v, int)})
    if live is not None:
        live.finish(result)
    if record:
        rng = data_range(events, topic)
        if live_stats:
            rng["live_last_offsets"] = live_stats["last_offsets"]
            rng["seam_offsets"] = {str(p): o for p, o in (seam or {}).items()}
            rng["live_warmup_offsets"] = live_stats["start_offsets"]  # the stream path started here
        result.record_id = _store(result, model, label, baseline, candidate, rng, topic, feature_set)
    return result


def _hashes(features: Sequence[Feature | FeatureFrame]) -> list[str]:
    return sorted(getattr(f, "hash", f"frame:{f.name}") for f in features)


def _store(result: EvaluationResult, model: Estimator, label: Label, baseline: Sequence[Any],
           candidate: Sequence[Any], rng: dict[str, Any], topic: str | None, feature_set: str | None) -> str:
    from workbench.evaluation.records import EvaluationRecord, save
    from workbench.features.definition import Feature
    from workbench.features.definition import save as save_definitions

    defined = [f for f in [*baseline, *candidate] if isinstance(f, Feature)]
    save_definitions(defined)  # so the record's hashes can be rebuilt later
    if feature_set and candidate and all(isinstance(f, Feature) for f in candidate):
        from workbench.features.definition import FeatureSet
        from workbench.features.sets import save_set

        save_set(FeatureSet(feature_set, list(candidate)))  # `workbench promote NAME` finds it
    rec = EvaluationRecord(
        model_spec={**model_spec(model), "label": label.spec()},
        baseline_hashes=_hashes(baseline),
        candidate_hashes=_hashes(candidate),
        data_range=rng,
        label_delay_ms=label.within_ms,
        metrics=result.metrics,
        lift=result.lift.to_dict(),
        verdict=result.verdict,
        counts=result.counts,
        feature_set=feature_set,
    )
    return save(rec)


def _live_chart() -> Any:
    from workbench.evaluation.chart import LiveChart

    return LiveChart.in_notebook()
