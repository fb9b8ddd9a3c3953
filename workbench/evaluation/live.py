"""The live phase of an evaluation: continue on the tail of the topic, from the seam on.

History ends at the seam, the topic's end offsets when the evaluation started;
the live phase taps from exactly those offsets, so no record is predicted
twice or skipped. Feature values for live predictions come from a rolling
buffer that starts one window plus grace before the seam, so the first live
values are complete. They are computed with the backfill engine over that
buffer, which the conformance suite holds equal to the stream path at every
record, and joined as of the prediction time, as in the history phase.

Each live prediction is logged to the topic ``evaluations.predictions`` (the
vectors of both arms and their predictions). When its label arrives, from
later events through :class:`~workbench.evaluation.labels.LabelJoiner`, the
loop learns from the logged vectors; they are never recomputed. History
predictions whose label was still open at the seam are resolved the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.evaluation.progressive import Example, Progressive

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluation.evaluate import FeatureFrame
    from workbench.evaluation.labels import Label
    from workbench.features.definition import Feature

PREDICTIONS_TOPIC = "evaluations.predictions"
_MAX_LOOKBACK_MS = 6 * 3_600_000


def lookback_ms(features: Sequence[Feature | FeatureFrame], label: Label) -> int:
    """One window plus grace of the longest feature (capped), plus the label's wait."""
    longest = 0
    for f in features:
        w = getattr(f, "window", None)
        if w is None:
            continue
        spec = w.spec()
        size = max(int(v) for k, v in spec.items() if k.endswith("_ms") and isinstance(v, int | float))
        longest = max(longest, size + int(spec.get("grace_ms", 0)))
    return min(longest, _MAX_LOOKBACK_MS) + label.within_ms


def seam_offsets(topic: str) -> dict[int, int]:
    """The topic's end offsets now: where history stops and the live phase starts."""
    from workbench.streams import kafka

    c = kafka.consumer()
    try:
        return {p: kafka.watermarks(c, topic, p)[1] for p in kafka.partitions(c, topic)}
    finally:
        c.close()


def run_live(
    loop: Progressive,
    *,
    topic: str,
    seam: dict[int, int],
    history: pd.DataFrame,
    label: Label,
    arms: dict[str, Sequence[Feature | FeatureFrame]],
    live_s: float,
    evaluation_id: str,
    refresh_s: float = 1.0,
    chart: Any = None,
) -> dict[str, Any]:
    """Predict every record after the seam as it arrives and learn as labels come in."""
    import pandas as pd

    import workbench as wb
    from workbench.evaluation.evaluate import _values_as_of
    from workbench.evaluation.labels import LabelJoiner
    from workbench.streams import kafka

    features = list({f.name: f for fs in arms.values() for f in fs}.values())
    back = lookback_ms(features, label)
    horizon = int(history["event_time_ms"].max()) if len(history) else 0
    buffer = history[history["event_time_ms"] >= horizon - back] if len(history) else history
    joiner = LabelJoiner(label)
    # the history tail tells the joiner which predictions still wait for an outcome
    for key, event in _keyed(buffer):
        for k, y, t in joiner.feed(key, event):
            loop.resolve(k, y, t)
    producer = kafka.producer()
    kafka.ensure_topic(PREDICTIONS_TOPIC, partitions=1)
    seen = {p: o - 1 for p, o in seam.items()}
    stats: dict[str, Any] = {"live_events": 0, "live_predictions": 0}
    deadline = time.monotonic() + live_s
    with wb.tap(topic, offset=seam) as tap:
        while time.monotonic() < deadline:
            time.sleep(min(refresh_s, max(0.0, deadline - time.monotonic())))
            frame = tap.df()
            if frame.empty:
                continue
            fresh = frame[frame["offset"] > frame["partition"].map(seen).fillna(-1)]
            if fresh.empty:
                continue
            for p, o in fresh.groupby("partition")["offset"].max().items():
                seen[int(p)] = int(o)
            fresh = fresh.sort_values("event_time_ms", kind="stable")
            buffer = pd.concat([buffer, fresh], ignore_index=True)
            newest_t = int(buffer["event_time_ms"].max())
            buffer = buffer[buffer["event_time_ms"] >= newest_t - back].reset_index(drop=True)
            stats["live_events"] += len(fresh)
            preds = fresh[fresh["event_type"] == label.on]
            vectors = _vectors(preds, features, arms, buffer, _values_as_of) if len(preds) else {}
            for key, event in _keyed(fresh):
                if key in vectors:
                    x, newest = vectors[key]
                    ex = Example(key, int(event["event_time_ms"]), x, feature_time_ms=newest, owned=True)
                    y_pred = loop.predict_open(ex)
                    producer.produce(PREDICTIONS_TOPIC, key=key.encode(), value=json.dumps(
                        {"evaluation": evaluation_id, "key": key, "t_ms": ex.t_ms, "x": x,
                         "y_pred": {a: _jsonable(v) for a, v in y_pred.items()}}).encode())
                    stats["live_predictions"] += 1
                for k, y, t in joiner.feed(key, event):
                    loop.resolve(k, y, t)
            producer.poll(0)
            if chart is not None:
                chart.update(loop, loop.snapshot(newest_t))
    producer.flush(30)
    stats["open_at_end"] = loop.close_open()
    stats["last_offsets"] = {str(p): o for p, o in seen.items()}
    return stats


def _keyed(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    rows = frame.to_dict("records")
    return [(str(r.get("event_id") or f"{r['partition']}:{r['offset']}"), r) for r in rows]


def _vectors(preds: pd.DataFrame, features: list[Any], arms: dict[str, Sequence[Any]], buffer: pd.DataFrame,
             values_as_of: Any) -> dict[str, tuple[dict[str, dict[str, float]], int | None]]:
    import math

    values, newest = values_as_of(preds, features, buffer)
    out = {}
    for i, (key, _) in enumerate(_keyed(preds)):
        x: dict[str, dict[str, float]] = {}
        for arm, fs in arms.items():
            row = {}
            for f in fs:
                v = values[f.name][i]
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    row[f.name] = float(v)
            x[arm] = row
        n = int(newest[i])
        out[key] = (x, n if n > -(2**62) else None)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): float(p) for k, p in v.items()}
    return None if v is None else float(v)
