"""Durable evaluation records, read by ``workbench evaluations`` and the promotion gate.

A record holds everything needed to judge and reproduce an evaluation: the
model spec, the feature definition hashes of both arms, the data range
(topic partitions with start/end offsets plus event-time bounds), label delay,
metrics, lift with its interval, and the verdict.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table


@dataclass
class EvaluationRecord:
    model_spec: dict[str, Any]
    baseline_hashes: list[str]
    candidate_hashes: list[str]
    data_range: dict[str, Any]
    label_delay_ms: int
    metrics: dict[str, Any]
    lift: dict[str, Any]
    verdict: str
    counts: dict[str, int] = field(default_factory=dict)
    feature_set: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)


_JSON_FIELDS = ("model_spec", "baseline_hashes", "candidate_hashes", "data_range", "metrics", "lift", "counts")


@lru_cache(maxsize=1)
def _table() -> Table:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    md = MetaData()
    return Table(
        "evaluations", md,
        Column("id", String(32), primary_key=True),
        Column("created_at", Float, nullable=False, index=True),
        Column("feature_set", String(200), index=True),
        Column("verdict", String(20), nullable=False),
        Column("label_delay_ms", Integer, nullable=False),
        *(Column(name, Text, nullable=False) for name in _JSON_FIELDS),
    )  # fmt: skip


def _engine(url: str | None) -> Any:
    from workbench.db import ready

    return ready(_table().metadata, url)


def save(record: EvaluationRecord, url: str | None = None) -> str:
    row = asdict(record)
    for name in _JSON_FIELDS:
        row[name] = json.dumps(row[name], sort_keys=True, default=str)
    with _engine(url).begin() as conn:
        conn.execute(_table().insert().values(**row))
    return record.id


def _from_row(row: Any) -> EvaluationRecord:
    data = dict(row._mapping)
    for name in _JSON_FIELDS:
        data[name] = json.loads(data[name])
    return EvaluationRecord(**data)


def get(record_id: str, url: str | None = None) -> EvaluationRecord | None:
    t = _table()
    with _engine(url).connect() as conn:
        row = conn.execute(t.select().where(t.c.id == record_id)).first()
    return _from_row(row) if row else None


def list_records(limit: int = 50, feature_set: str | None = None, url: str | None = None) -> list[EvaluationRecord]:
    t = _table()
    q = t.select().order_by(t.c.created_at.desc()).limit(limit)
    if feature_set:
        q = q.where(t.c.feature_set == feature_set)
    with _engine(url).connect() as conn:
        return [_from_row(r) for r in conn.execute(q)]


def find_passing(candidate_hashes: list[str], url: str | None = None) -> EvaluationRecord | None:
    """The newest record with verdict "better" for exactly these definition hashes (the promotion gate)."""
    wanted = sorted(candidate_hashes)
    for rec in list_records(limit=1000, url=url):
        if rec.verdict == "better" and sorted(rec.candidate_hashes) == wanted:
            return rec
    return None
