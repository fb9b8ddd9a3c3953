"""Served-value skew: what production actually served, against the backfill of the same definitions.

Every impression on the ``feedback`` topic carries the raw online values the
request read (per feature set and entity, with the set's version and the
serving time). For each such value this check rebuilds the version's
definitions from their hashes, backfills them over the source topic, and
asks: was the served value the backfill's value for that key at some
instant in ``[served_at - max_lag_ms, served_at)``? (The online store trails
the stream by a checkpoint interval, and the service may reuse a row for
its cache TTL; ``max_lag_ms`` covers both.) Anything else is a mismatch:
a served value that no correct pipeline could have produced.

>>> matches(3.0, [(100, 2), (200, 3)], served_at_ms=250, max_lag_ms=100)
True
>>> matches(2.0, [(100, 2), (200, 3)], served_at_ms=450, max_lag_ms=100)
False
>>> matches(None, [(100, 2)], served_at_ms=50, max_lag_ms=10)
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from workbench.features.definition import Feature


def matches(served: Any, updates: list[tuple[int, Any]], served_at_ms: int, max_lag_ms: int,
            same: Callable[[Any, Any], bool] | None = None) -> bool:  # fmt: skip
    """True when ``served`` was the key's value at some instant of ``[served_at - max_lag, served_at)``.

    ``updates`` are ``(available_ms, value)`` in processing order; before the first one the value is None.
    """
    from workbench.features.skew import same_value

    eq = same or same_value
    lo = served_at_ms - max_lag_ms
    current: Any = None  # the value in force at ``lo``
    window: list[Any] = []
    for t, v in updates:
        if t < lo:
            current = v
        elif t < served_at_ms:
            window.append(v)
    return any(eq(served, v) for v in [current, *window])


@dataclass
class ServedSkewReport:
    feature_set: str
    compared: int = 0
    impressions: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def mismatch_count(self) -> int:
        return len(self.mismatches)

    def summary(self) -> str:
        return (f"{self.feature_set}: {self.compared} served values from {self.impressions} impressions, "
                f"{self.mismatch_count} mismatches")  # fmt: skip


def read_impressions(topic: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Every impression record on ``topic`` up to its end now (a bounded read; never commits)."""
    import orjson
    from confluent_kafka import TopicPartition

    from workbench.streams.kafka import consumer, partitions, watermarks

    c = consumer()
    out: list[dict[str, Any]] = []
    try:
        parts = partitions(c, topic)
        ends = {p: watermarks(c, topic, p) for p in parts}
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in parts])
        while todo and (limit is None or len(out) < limit):
            batch = c.consume(1000, timeout=2.0)
            if not batch:
                break
            for m in batch:
                if m.error() is not None:
                    continue
                if m.offset() >= ends[m.partition()][1] - 1:
                    todo.discard(m.partition())
                rec = orjson.loads(m.value())
                if isinstance(rec, dict) and rec.get("type") == "impression":
                    out.append(rec)
    finally:
        c.close()
    return out


def _definitions(feature_set: str, version: str | None, env: str | None) -> list[Feature]:
    from workbench.errors import WorkbenchError
    from workbench.features.definition import load
    from workbench.promote import versions

    infos = versions(feature_set, env)
    if not infos:
        raise WorkbenchError(f"feature set {feature_set!r} was never promoted; nothing was served from it")
    info = next((v for v in infos if str(v.version) == str(version)), None) if version else None
    info = info or next((v for v in infos if v.status == "active"), infos[0])
    return [load(h) for h in info.lineage["feature_hashes"]]


def served_skew(feature_set: str, *, feedback_topic: str = "feedback", history: pd.DataFrame | None = None,
                max_lag_ms: int = 10_000, env: str | None = None) -> ServedSkewReport:  # fmt: skip
    """Compare every logged served value of ``feature_set`` with the backfill at its serving time."""
    from workbench.features.backfill import backfill
    from workbench.features.skew import same_value
    from workbench.features.training import available_updates
    from workbench.promote.naming import online_value
    from workbench.taps.replay import replay

    report = ServedSkewReport(feature_set)
    served: dict[str | None, list[tuple[str, int, dict[str, Any], str]]] = {}
    for rec in read_impressions(feedback_topic):
        report.impressions += 1
        for table in rec.get("served", ()):
            if table.get("set") != feature_set:
                continue
            for key, row in zip(table["keys"], table["rows"], strict=True):
                values = dict(zip(table["columns"], row, strict=True))
                served.setdefault(table.get("version"), []).append((str(key), int(rec["served_at_ms"]), values,
                                                                    rec["request_id"]))  # fmt: skip
    for version, rows in served.items():
        features = _definitions(feature_set, version, env)
        sources = {f.source for f in features}
        frames = {src: history if history is not None else replay(src) for src in sources}
        for f in features:
            ups = available_updates(backfill(f, frames[f.source]))
            by_key: dict[str, list[tuple[int, Any]]] = {}
            for k, t, v in zip(ups["key"].astype(str), ups["available_ms"], ups["value"], strict=True):
                by_key.setdefault(k, []).append((int(t), online_value(f, v)))

            def same(a: Any, b: Any, f: Feature = f) -> bool:
                return same_value(a, b) or (isinstance(a, str) and a == online_value(f, b))

            for key, at, values, request_id in rows:
                if f.name not in values:
                    continue
                report.compared += 1
                updates = by_key.get(key, [])
                if not matches(values[f.name], updates, at, max_lag_ms, same):
                    expected = next((v for t, v in reversed(updates) if t < at), None)
                    report.mismatches.append(f"{f.name}[{key}] request {request_id} at {at}: served "
                                             f"{values[f.name]!r}, backfill {expected!r}")  # fmt: skip
    return report
