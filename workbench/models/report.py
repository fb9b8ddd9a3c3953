"""Model versions as text: one line per version, and the lineage chain (the CLI prints these).

>>> from workbench.models.version import ModelVersion
>>> v = ModelVersion("ranker", 2, "ranking", parent="ranker/1", depends_on={"emb": 1},
...                  metrics={"auc": 0.71234}, stale=True, stale_because=("emb/2",), created_at=0.0)
>>> version_line(v, width=8)
'ranker/2  ranking     1970-01-01 00:00  parent ranker/1  uses emb/1  auc=0.7123  STALE: emb/2 is newer'
>>> data_range_text({"topic": "events", "partitions": {"0": [0, 99]}, "event_time_ms": [0, 60_000]})
'events p0 [0, 99]; event time 1970-01-01 00:00:00 .. 1970-01-01 00:01:00 UTC'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from workbench.models.version import ModelVersion, numeric_metrics

REBUILD_HINT = "rebuild a feature definition from its hash: workbench.features.definition.load(HASH)"


def version_line(v: ModelVersion, width: int = 10) -> str:
    """``name/N kind created parent uses metrics @aliases STALE``: what ``workbench models list`` prints."""
    parts = [f"{v.ref:<{width}}", f"{v.kind:<10}", _when(v.created_at),
             f"parent {v.parent or '-'}"]
    if v.depends_on:
        parts.append("uses " + ",".join(f"{k}/{n}" for k, n in v.depends_on.items()))
    if v.metrics:
        parts.append(metrics_text(v.metrics, limit=3))
    if v.aliases:
        parts.append(" ".join(f"@{a}" for a in v.aliases))
    if v.stale:
        parts.append("STALE: " + ", ".join(v.stale_because) + (" is" if len(v.stale_because) == 1 else " are")
                     + " newer")
    return "  ".join(parts)


def lineage_text(chain: list[ModelVersion], stored_hashes: set[str] | None = None,
                 stages: Mapping[str, list[str]] | None = None) -> str:  # fmt: skip
    """The chain from a version to its root, every field that makes it reproducible.

    ``stored_hashes``: the definition hashes present in this home's definition
    store, marked ``(stored)``; others are marked ``(not stored here)``.
    ``stages``: per version ref, the serving stages it went through (shadow, canary, ...), as lines.
    """
    lines = []
    for v in chain:
        flags = "".join(f" @{a}" for a in v.aliases)
        lines.append(f"{v.ref}  ({v.kind})  created {_when(v.created_at)} UTC  run {v.run_id or '-'}{flags}")
        lines.append(f"  parent:      {v.parent or '- (root)'}")
        lines.append(f"  data range:  {data_range_text(v.data_range)}")
        lines.append(f"  features:    {_hashes_text(v.feature_hashes, stored_hashes)}")
        lines.append(f"  metrics:     {metrics_text(v.metrics) if v.metrics else '-'}")
        deps = ", ".join(f"{k}/{n}" for k, n in v.depends_on.items()) or "-"
        if v.stale:
            deps += f"  (STALE: {', '.join(v.stale_because)} newer)"
        lines.append(f"  depends on:  {deps}")
        lines.append(f"  artifact:    {artifact_text(v.artifact)}")
        if v.description:
            lines.append(f"  description: {' '.join(v.description.split())}")
        for j, stage in enumerate((stages or {}).get(v.ref, ())):
            lines.append(f"  {'serving:' if j == 0 else '':<12} {stage}")
    if any(v.feature_hashes for v in chain):
        lines.append(REBUILD_HINT)
    return "\n".join(lines)


def data_range_text(rng: Mapping[str, Any] | None) -> str:
    if not rng:
        return "-"
    parts = sorted((rng.get("partitions") or {}).items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
    text = f"{rng.get('topic') or '-'} " + (" ".join(f"p{p} [{a}, {b}]" for p, (a, b) in parts) or "no offsets")
    bounds = rng.get("event_time_ms")
    if bounds:
        text += f"; event time {_when(bounds[0] / 1000, seconds=True)} .. {_when(bounds[1] / 1000, seconds=True)} UTC"
    return text


def metrics_text(metrics: Mapping[str, Any], limit: int | None = None) -> str:
    flat = numeric_metrics(metrics)
    words = [f"{k}={v:.4g}" for k, v in flat.items()]
    words += [f"{k}={v}" for k, v in metrics.items() if isinstance(v, str)]
    if limit is not None and len(words) > limit:
        words = [*words[:limit], f"(+{len(words) - limit})"]
    return " ".join(words)


def artifact_text(info: Mapping[str, Any]) -> str:
    if not info:
        return "-"
    what = info.get("python_type") or info.get("file") or f"{info.get('files', '?')} files"
    return f"{info.get('format')} {what}, {info.get('bytes', 0):,} bytes, sha256 {str(info.get('sha256', ''))[:12]}"


def _hashes_text(hashes: tuple[str, ...], stored: set[str] | None) -> str:
    if not hashes:
        return "-"
    if stored is None:
        return ", ".join(hashes)
    return ", ".join(f"{h} ({'stored' if h in stored else 'not stored here'})" for h in hashes)


def _when(epoch_s: float, seconds: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime(fmt)
