"""The live phase of an evaluation: continue on the tail of the topic, from the seam on.

History ends at the seam, the topic's end offsets when the evaluation started;
the live phase predicts every record from exactly those offsets on, so no
record is predicted twice or skipped. Its feature values come from the real
stream path: the features compiled into the feature job's quixstreams pipeline
(:mod:`workbench.evaluation.live_stream`), run on the calling thread from one
window plus grace before the seam, so the first live values are complete;
records before the seam only warm up the window state. A prediction gets, per
feature, the stream's last update for its key from records processed before
it and available strictly before its time (a newer one raises
``LeakageError``, as in the history phase).

Each live prediction is logged to the topic ``evaluations.predictions`` (the
vectors of both arms and their predictions). When its label arrives, from
later events through :class:`~workbench.evaluation.labels.LabelJoiner`, the
loop learns from the logged vectors; they are never recomputed. History
predictions whose label was still open at the seam are resolved the same way.
The live tail lasts ``live_s`` seconds once the warm-up reached the seam.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.evaluation.progressive import Example, Progressive

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluation.evaluate import FeatureFrame
    from workbench.evaluation.labels import Label
    from workbench.evaluation.live_stream import LiveEvent, UpdateHistory
    from workbench.features.definition import Feature

PREDICTIONS_TOPIC = "evaluations.predictions"
_MAX_LOOKBACK_MS = 6 * 3_600_000


def window_grace_ms(features: Sequence[Feature | FeatureFrame]) -> int:
    """The longest window plus grace of ``features`` (0 for precomputed frames).

    >>> from workbench.features import aggregations as agg, windows as win
    >>> from workbench.features.definition import USER, Feature
    >>> window_grace_ms([Feature("n", USER, win.Tumbling(size_ms=60_000, grace_ms=5_000), agg.Count())])
    65000
    """
    longest = 0
    for f in features:
        w = getattr(f, "window", None)
        if w is None:
            continue
        spec = w.spec()
        size = max(int(v) for k, v in spec.items() if k.endswith("_ms") and isinstance(v, int | float))
        longest = max(longest, size + int(spec.get("grace_ms", 0)))
    return longest


def lookback_ms(features: Sequence[Feature | FeatureFrame], label: Label) -> int:
    """One window plus grace of the longest feature (capped), plus the label's wait."""
    return min(window_grace_ms(features), _MAX_LOOKBACK_MS) + label.within_ms


def seam_offsets(topic: str) -> dict[int, int]:
    """The topic's end offsets now: where history stops and the live phase starts."""
    from workbench.streams import kafka

    c = kafka.consumer()
    try:
        return {p: kafka.watermarks(c, topic, p)[1] for p in kafka.partitions(c, topic)}
    finally:
        c.close()


def start_offsets(topic: str, seam: dict[int, int], at_ms: int) -> dict[int, int]:
    """Per partition, the first offset stamped at or after ``at_ms`` (at most the seam).

    Records are stamped when sent, never before their event, so this starts
    no later than the event time ``at_ms``: warm-up errs on the side of more.
    """
    from confluent_kafka import TopicPartition

    from workbench.streams import kafka

    c = kafka.consumer()
    try:
        found = kafka.retrying(lambda: c.offsets_for_times(
            [TopicPartition(topic, p, at_ms) for p in seam], timeout=10))
    finally:
        c.close()
    # -1: no record that late, so nothing to warm up from before the seam
    return {tp.partition: seam[tp.partition] if tp.offset < 0 else min(tp.offset, seam[tp.partition])
            for tp in found}


def run_live(
    loop: Progressive,
    *,
    topic: str,
    seam: dict[int, int],
    history: pd.DataFrame,
    label: Label,
    arms: Mapping[str, Sequence[Feature | FeatureFrame]],
    live_s: float,
    evaluation_id: str,
    refresh_s: float = 1.0,
    chart: Any = None,
    warmup_ms: int | None = None,
) -> dict[str, Any]:
    """Predict every record after the seam as the stream path computes its features; learn as labels come in.

    The stream starts one window plus grace before the seam (``warmup_ms``
    caps that, trading complete first values for a shorter warm-up).
    """
    from workbench.evaluation.labels import LabelJoiner
    from workbench.evaluation.live_stream import LiveStream
    from workbench.features.definition import Feature
    from workbench.streams import kafka

    features = list({f.name: f for fs in arms.values() for f in fs}.values())
    streamed = [f for f in features if isinstance(f, Feature)]
    horizon = int(history["event_time_ms"].max()) if len(history) else int(time.time() * 1000)
    joiner = LabelJoiner(label)
    # the history tail tells the joiner which predictions still wait for an outcome
    tail = history[history["event_time_ms"] >= horizon - lookback_ms(features, label)] if len(history) else history
    for key, event in _keyed(tail):
        for k, y, t in joiner.feed(key, event):
            loop.resolve(k, y, t)
    kafka.ensure_topic(PREDICTIONS_TOPIC, partitions=1)
    live = _LivePredictions(loop, label, arms, joiner, kafka.producer(), evaluation_id, seam)
    window = window_grace_ms(streamed)
    warm = window if warmup_ms is None else min(window, warmup_ms)
    start = start_offsets(topic, seam, horizon - warm)
    last_chart = [0.0]

    def tick() -> None:
        live.producer.poll(0)
        if chart is not None and live.changed and time.monotonic() - last_chart[0] >= refresh_s:
            chart.update(loop, loop.snapshot(live.newest_ms))
            last_chart[0], live.changed = time.monotonic(), False

    stream = LiveStream(topic, streamed, seam, start, evaluation_id, live.release, tick)
    try:
        stream.run(live_s)
    finally:
        live.producer.flush(30)
    if chart is not None and live.changed:
        chart.update(loop, loop.snapshot(live.newest_ms))
    if stream.warm_s is None:  # the stream never reached the seam within its warm-up budget
        live.stats["live_warmup_timed_out"] = 1
    return {**live.stats, "warmup_events": stream.warmup_events, "live_unreleased": len(stream.queue),
            "open_at_end": loop.close_open(), "warmup_s": stream.warm_s,
            "start_offsets": {str(p): o for p, o in start.items()},
            "last_offsets": {str(p): o for p, o in live.last.items()}}


class _LivePredictions:
    """Released live records -> predictions (logged, then learned when labelled)."""

    def __init__(self, loop: Progressive, label: Label, arms: Mapping[str, Sequence[Feature | FeatureFrame]],
                 joiner: Any, producer: Any, evaluation_id: str, seam: dict[int, int]) -> None:
        from workbench.evaluation.evaluate import FeatureFrame

        self.loop, self.label, self.arms, self.joiner = loop, label, arms, joiner
        self.producer, self.evaluation_id = producer, evaluation_id
        self.frames = [f for fs in arms.values() for f in fs if isinstance(f, FeatureFrame)]
        self.last = {p: o - 1 for p, o in seam.items()}
        self.stats = {"live_events": 0, "live_predictions": 0}
        self.newest_ms = -(2**62)
        self.changed = False

    def release(self, batch: list[LiveEvent], updates: UpdateHistory) -> None:
        frames = self._frame_values(batch)
        for i, ev in enumerate(batch):
            event = ev.event
            t = int(event["event_time_ms"])
            if event["event_type"] == self.label.on:
                x, newest = self._vector(ev, t, updates, frames, i)
                ex = Example(ev.key, t, x, feature_time_ms=newest, owned=True)
                y_pred = self.loop.predict_open(ex)
                self.producer.produce(PREDICTIONS_TOPIC, key=ev.key.encode(), value=json.dumps(
                    {"evaluation": self.evaluation_id, "key": ev.key, "t_ms": t, "x": x,
                     "y_pred": {a: _jsonable(v) for a, v in y_pred.items()}}).encode())
                self.stats["live_predictions"] += 1
            for k, y, lt in self.joiner.feed(ev.key, event):
                self.loop.resolve(k, y, lt)
            self.last[ev.partition] = max(self.last[ev.partition], ev.offset)
            self.newest_ms = max(self.newest_ms, t)
        self.stats["live_events"] += len(batch)
        self.changed = self.changed or bool(batch)

    def _vector(self, ev: LiveEvent, t: int, updates: UpdateHistory, frames: dict[str, Any],
                i: int) -> tuple[dict[str, dict[str, float]], int | None]:
        from workbench.evaluation.evaluate import FeatureFrame

        values: dict[str, Any] = {}
        newest: int | None = None
        for fs in self.arms.values():
            for f in fs:
                if f.name in values:
                    continue
                if isinstance(f, FeatureFrame):
                    v, src = frames[f.name][0][i], int(frames[f.name][1][i])
                    source_ms = src if src > -(2**62) else None
                else:
                    key = f.entity.key_of(ev.event)
                    hit = None if key is None else updates.before(f.name, key, t, ev.processed)
                    v, source_ms = (None, None) if hit is None else (hit[3], hit[2])
                values[f.name] = v
                if source_ms is not None and (newest is None or source_ms > newest):
                    newest = source_ms
        x = {arm: {f.name: _number(f.name, values[f.name]) for f in fs if _present(values[f.name])}
             for arm, fs in self.arms.items()}
        return x, newest

    def _frame_values(self, batch: list[LiveEvent]) -> dict[str, Any]:
        """Precomputed frames, joined as of each prediction as in the history phase."""
        if not self.frames:
            return {}
        import pandas as pd

        from workbench.evaluation.evaluate import _values_as_of

        out = {}
        preds = pd.DataFrame([ev.event for ev in batch])
        for f in self.frames:
            values, newest = _values_as_of(preds, [f], preds)
            out[f.name] = (values[f.name], newest)
        return out


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _number(name: str, v: Any) -> float:
    if isinstance(v, int | float):  # bool too
        return float(v)
    raise WorkbenchError(f"feature {name!r} has non-numeric values ({type(v).__name__}); "
                         "evaluate a numeric feature derived from it")


def _keyed(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    rows = frame.to_dict("records")
    return [(str(r.get("event_id") or f"{r['partition']}:{r['offset']}"), r) for r in rows]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): float(p) for k, p in v.items()}
    return None if v is None else float(v)
