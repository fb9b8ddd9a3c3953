"""How a feature set maps onto Feast objects: names, join keys and value types.

One FeatureView per entity of the set and version. A one-entity set, the
common case, gets the plain versioned name:

>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import ITEM, USER, Feature, FeatureSet
>>> fs = FeatureSet("shop", [Feature("views_1h", USER, win.Tumbling(size_ms=3_600_000), agg.Count())])
>>> view_names(fs, 3)
{'views_1h': 'shop_v3'}
>>> fs2 = FeatureSet("shop", [*fs.features, Feature("buys_1h", ITEM, win.Tumbling(size_ms=3_600_000), agg.Count())])
>>> view_names(fs2, 3)
{'views_1h': 'shop_user_v3', 'buys_1h': 'shop_item_v3'}
>>> join_key(USER), feast_type(fs.features[0])
('user_id', 'Int64')
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.features.definition import Entity, Feature, FeatureSet

# aggregation kind -> Feast type name (feast.types); anything else is stored as a JSON string
_TYPES = {
    "count": "Int64",
    "distinct_count": "Int64",
    "sum": "Float64",
    "mean": "Float64",
    "min": "Float64",
    "max": "Float64",
    "decayed_sum": "Float64",
    "decayed_count": "Float64",
    "last_n": "Array(String)",
}


def join_key(entity: Entity) -> str:
    """The Feast join key: the event field for a plain key, ``<entity>_key`` for a derived one."""
    expr = entity.key_expr
    return str(expr.args[0]) if expr.op == "col" else f"{entity.name}_key"


def view_name(set_name: str, entity: Entity, version: int, multi_entity: bool) -> str:
    return f"{set_name}_{entity.name}_v{version}" if multi_entity else f"{set_name}_v{version}"


def entities(feature_set: FeatureSet) -> list[Entity]:
    """The set's entities in first-use order."""
    seen: dict[str, Entity] = {}
    for f in feature_set.features:
        seen.setdefault(f.entity.name, f.entity)
    return list(seen.values())


def view_names(feature_set: FeatureSet, version: int) -> dict[str, str]:
    """Feature name -> the FeatureView that holds it in ``version``."""
    multi = len(entities(feature_set)) > 1
    return {f.name: view_name(feature_set.name, f.entity, version, multi) for f in feature_set.features}


def job_name(set_name: str, version: int, env: str) -> str:
    """The feature job of a version; environments share a broker, so each has its own job and group.

    >>> job_name("shop", 2, "local"), job_name("shop", 2, "production")
    ('shop_v2', 'shop_v2_production')
    """
    return f"{set_name}_v{version}" if env == "local" else f"{set_name}_v{version}_{env}"


def feast_type(feature: Feature) -> str:
    return _TYPES.get(feature.aggregation.kind, "String")


def online_value(feature: Feature, value: Any) -> Any:
    """A feature value as the online store holds it (see :func:`feast_type`).

    >>> from workbench.features import aggregations as agg, windows as win
    >>> from workbench.features.definition import USER, Feature
    >>> top = Feature("top", USER, win.Tumbling(size_ms=60_000), agg.TopK("item_id", k=2))
    >>> online_value(top, [["i1", 3], ["i2", 1]])
    '[["i1",3],["i2",1]]'
    """
    if value is None:
        return None
    kind = feast_type(feature)
    if kind == "Int64":
        return int(value)
    if kind == "Float64":
        return float(value)
    if kind == "Array(String)":
        return [v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in value]
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
