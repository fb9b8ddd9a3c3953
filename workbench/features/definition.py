"""Feature definitions: plain module-level objects with a stable content hash.

Write definitions Feast-style, as module-level objects in a file you import
explicitly:

>>> from workbench.features import aggregations as agg, windows as win
>>> views_5m = Feature(
...     name="views_5m",
...     entity=USER,
...     window=win.Tumbling(size_ms=300_000, grace_ms=10_000),
...     aggregation=agg.Count(),
...     where=col("event_type") == "view",
... )
>>> views_5m.hash == Feature.from_spec(views_5m.spec()).hash
True
>>> len(views_5m.hash)
16

The hash is computed from a canonical spec (window parameters, aggregation,
field, filter as an expression tree, entity key, source topic), never from
text, so reformatting changes nothing and changing logic changes the hash:

>>> views_5m.hash == Feature("views_5m", USER, win.Tumbling(size_ms=300_000, grace_ms=10_000),
...                          agg.Count(), where=col("event_type") == "view").hash
True
>>> views_5m.hash == Feature("views_5m", USER, win.Tumbling(size_ms=300_000, grace_ms=10_000),
...                          agg.Count(), where=col("event_type") == "click").hash
False
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from workbench.features.aggregations import Aggregation, aggregation_from_spec
from workbench.features.expr import Expr, as_expr, col
from workbench.features.windows import Window

HASH_CHARS = 16
SPEC_VERSION = 1  # bump when the meaning of a spec field changes; changes every hash


@dataclass(frozen=True)
class Entity:
    """What a feature is about, and how to get its key from an event.

    ``key`` is a field name or an expression (a key derived from the event).
    The session entity is the Kafka message key, so its features need no
    repartitioning; any other entity is regrouped by key first.

    >>> Entity("user_category", col("user_id") + "|" + col("category")).key_of(
    ...     {"user_id": "u1", "category": "books"})
    'u1|books'
    """

    name: str
    key: str | Expr

    @property
    def key_expr(self) -> Expr:
        return as_expr(self.key)

    def key_of(self, event: dict[str, Any]) -> Any:
        value = self.key_expr.evaluate(event)
        return None if value is None else str(value)

    @property
    def is_message_key(self) -> bool:
        """True when the key is the events topic's own record key (session_id)."""
        return self.key_expr.spec() == ["col", "session_id"]

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key_expr.spec()}

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> Entity:
        key = Expr.from_spec(spec["key"])
        return Entity(spec["name"], key.args[0] if key.op == "col" else key)


USER = Entity("user", "user_id")
SESSION = Entity("session", "session_id")
ITEM = Entity("item", "item_id")
CATEGORY = Entity("category", "category")


@dataclass(frozen=True, eq=False)
class Feature:
    """One windowed aggregation over one source topic, per entity key."""

    name: str
    entity: Entity
    window: Window
    aggregation: Aggregation
    where: Expr | None = None
    source: str = "events"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"feature name {self.name!r}: use letters, digits and _")

    def spec(self) -> dict[str, Any]:
        """Canonical JSON form; everything that changes a value is in here, and nothing else."""
        return {
            "version": SPEC_VERSION,
            "name": self.name,
            "entity": self.entity.spec(),
            "source": self.source,
            "where": None if self.where is None else self.where.spec(),
            "window": self.window.spec(),
            "aggregation": self.aggregation.spec(),
        }

    @cached_property
    def hash(self) -> str:
        """Stable content hash of :meth:`spec` (sha256, hex, first 16 chars)."""
        return spec_hash(self.spec())

    @staticmethod
    def from_spec(spec: dict[str, Any], aggregation: Aggregation | None = None) -> Feature:
        """Rebuild a feature; a custom aggregation must be passed (or imported by the registry)."""
        return Feature(
            name=spec["name"],
            entity=Entity.from_spec(spec["entity"]),
            window=Window.from_spec(spec["window"]),
            aggregation=aggregation or aggregation_from_spec(spec["aggregation"]),
            where=None if spec["where"] is None else Expr.from_spec(spec["where"]),
            source=spec["source"],
        )

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, hash={self.hash})"

    # -- in the notebook ------------------------------------------------------
    def backfill(self, history: Any) -> Any:
        """What the stream path emits at every record of ``history`` (an events DataFrame)."""
        from workbench.features.backfill import backfill

        return backfill(self, history)

    def check_skew(self, history: Any, record: bool = True) -> Any:
        """Run both paths over ``history``; a SkewReport lists every mismatch (expect 0)."""
        from workbench.features.review import check_skew

        return check_skew(self, history, record=record)

    def preview(self, tap: Any, duration_s: float = 10.0, **kwargs: Any) -> Any:
        """Live values from a tap, as a table and a chart, for ``duration_s`` seconds."""
        from workbench.features.review import preview

        return preview(self, tap, duration_s=duration_s, **kwargs)


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features computed by one stream job and written to ``features.<name>``.

    >>> from workbench.features import aggregations as agg, windows as win
    >>> fs = FeatureSet("shop", [Feature("n", SESSION, win.Session(gap_ms=1800_000), agg.Count())])
    >>> fs.topic, len(fs.hash)
    ('features.shop', 16)
    """

    name: str
    features: list[Feature] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature set {self.name!r} has duplicate feature names")
        if len({f.source for f in self.features}) > 1:
            raise ValueError(f"feature set {self.name!r} mixes source topics")

    @property
    def topic(self) -> str:
        return f"features.{self.name}"

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "features": sorted(f.hash for f in self.features)}

    @property
    def hash(self) -> str:
        return spec_hash(self.spec())

    def backfill(self, history: Any) -> Any:
        """Every feature's per-record output over ``history``, stacked with a ``feature`` column."""
        import pandas as pd

        from workbench.features.backfill import backfill

        return pd.concat([backfill(f, history).assign(feature=f.name) for f in self.features], ignore_index=True)

    def check_skew(self, history: Any, record: bool = True) -> Any:
        from workbench.features.review import check_skew

        return check_skew(self, history, record=record)

    def preview(self, tap: Any, duration_s: float = 10.0, **kwargs: Any) -> Any:
        from workbench.features.review import preview

        return preview(self, tap, duration_s=duration_s, **kwargs)


def spec_hash(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]


# -- the registry: spec (and custom code) stored under the hash -------------------


def registry_dir() -> Path:
    from workbench.config import settings

    return settings().home / "definitions"


def save(features: Feature | Iterable[Feature], root: Path | None = None) -> list[str]:
    """Store each feature's spec (and a custom aggregation's source) under its hash.

    >>> import tempfile
    >>> from workbench.features import aggregations as agg, windows as win
    >>> f = Feature("n", SESSION, win.Tumbling(size_ms=60_000), agg.Count())
    >>> root = Path(tempfile.mkdtemp())
    >>> save(f, root) == [f.hash]
    True
    >>> load(f.hash, root).hash == f.hash
    True
    """
    root = root or registry_dir()
    root.mkdir(parents=True, exist_ok=True)
    hashes = []
    for f in [features] if isinstance(features, Feature) else features:
        record: dict[str, Any] = {"hash": f.hash, "spec": f.spec()}
        agg_cls = type(f.aggregation)
        if not agg_cls.builtin:
            record["custom"] = {
                "module": agg_cls.__module__,
                "qualname": agg_cls.__qualname__,
                "source": _source_of(agg_cls),
            }
        path = root / f"{f.hash}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
        tmp.replace(path)  # atomic: a reader never sees half a definition
        hashes.append(f.hash)
    return hashes


def load(hash_: str, root: Path | None = None) -> Feature:
    """Rebuild a feature from its hash alone; the rebuilt hash is checked."""
    record = json.loads(((root or registry_dir()) / f"{hash_}.json").read_text())
    aggregation = None
    custom = record.get("custom")
    if custom:
        module = importlib.import_module(custom["module"])
        cls: Any = module
        for part in custom["qualname"].split("."):
            cls = getattr(cls, part)
        agg_spec = record["spec"]["aggregation"]
        # a custom aggregation's constructor takes its field and its params() as keywords
        params = {k: v for k, v in agg_spec.items() if k not in ("kind", "field", "code")}
        aggregation = cls(*_field_arg(agg_spec), **params)
    feature = Feature.from_spec(record["spec"], aggregation)
    if feature.hash != hash_:
        raise ValueError(f"definition {hash_} rebuilt with hash {feature.hash}: its code changed")
    return feature


def _field_arg(agg_spec: dict[str, Any]) -> list[Any]:
    spec = agg_spec.get("field")
    if spec is None:
        return []
    expr = Expr.from_spec(spec)
    return [expr.args[0] if expr.op == "col" else expr]


def _source_of(cls: type) -> str:
    import inspect

    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


__all__ = ["CATEGORY", "ITEM", "SESSION", "USER", "Entity", "Feature", "FeatureSet", "col", "load", "save"]
