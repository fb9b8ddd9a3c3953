"""Promotion records: every version of every feature set, with its lineage and status.

A row per (environment, set, version): the definition hashes, the evaluation
and skew records that opened the gate (or the recorded override), the notebook
or module of origin, the Feast objects, the data range the backfill covered,
and the time. Exactly one version per (environment, set) is ``active``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

STATUSES = ("active", "inactive", "rolled_back")


@dataclass
class PromotionRecord:
    env: str
    feature_set: str
    version: int
    set_hash: str
    feature_hashes: list[str]
    views: dict[str, str]
    evaluation_id: str | None
    skew_id: str | None
    forced: bool
    origin: str
    data_range: dict[str, Any]
    status: str = "active"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)
    # when this version stopped serving (superseded or rolled back); None while active
    ended_at: float | None = None

    @property
    def job(self) -> str:
        from workbench.promote.naming import job_name

        return job_name(self.feature_set, self.version, self.env)

    def lineage(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("status",)}


_JSON = ("feature_hashes", "views", "data_range")


@lru_cache(maxsize=1)
def _table() -> Table:
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint

    md = MetaData()
    return Table(
        "promotions", md,
        Column("id", String(32), primary_key=True),
        Column("env", String(40), nullable=False),
        Column("feature_set", String(200), nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("set_hash", String(32), nullable=False),
        Column("evaluation_id", String(32)),
        Column("skew_id", String(32)),
        Column("forced", Boolean, nullable=False),
        Column("origin", Text, nullable=False),
        Column("status", String(20), nullable=False),
        Column("created_at", Float, nullable=False),
        Column("ended_at", Float),
        *(Column(name, Text, nullable=False) for name in _JSON),
        UniqueConstraint("env", "feature_set", "version"),
    )  # fmt: skip


def engine() -> Any:
    from workbench.db import ready

    return ready(_table().metadata)


def _row(rec: PromotionRecord) -> dict[str, Any]:
    row = asdict(rec)
    for name in _JSON:
        row[name] = json.dumps(row[name], sort_keys=True)
    return row


def _from_row(row: Any) -> PromotionRecord:
    data = dict(row._mapping)
    for name in _JSON:
        data[name] = json.loads(data[name])
    return PromotionRecord(**data)


def insert(conn: Connection, rec: PromotionRecord) -> None:
    conn.execute(_table().insert().values(**_row(rec)))


def set_status(conn: Connection, rec: PromotionRecord, status: str, ended_at: float | None) -> None:
    t = _table()
    conn.execute(t.update().where(t.c.id == rec.id).values(status=status, ended_at=ended_at))


def history(feature_set: str, env: str) -> list[PromotionRecord]:
    """Every version of the set in ``env``, newest first."""
    t = _table()
    q = t.select().where(t.c.env == env, t.c.feature_set == feature_set).order_by(t.c.version.desc())
    with engine().connect() as conn:
        return [_from_row(r) for r in conn.execute(q)]


def active(feature_set: str, env: str) -> PromotionRecord | None:
    return next((r for r in history(feature_set, env) if r.status == "active"), None)


def all_sets(env: str) -> list[str]:
    t = _table()
    with engine().connect() as conn:
        return sorted({r[0] for r in conn.execute(t.select().with_only_columns(t.c.feature_set).where(t.c.env == env))})


def next_version(feature_set: str, env: str) -> int:
    return max((r.version for r in history(feature_set, env)), default=0) + 1


def as_of(feature_set: str, env: str, at_s: float) -> PromotionRecord | None:
    """The version that was serving at ``at_s`` (epoch seconds)."""
    for r in history(feature_set, env):
        if r.created_at <= at_s and (r.ended_at is None or r.ended_at > at_s):
            return r
    return None
