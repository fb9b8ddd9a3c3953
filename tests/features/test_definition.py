"""Definition hashes: stable under reformatting, changed by logic; registry round trips."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.features.test_conformance import AGGREGATIONS, ENTITIES, FILTERS, WINDOWS, SumOfSquares
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import USER, Feature, FeatureSet, col, load, save
from workbench.features.expr import Expr


def views() -> Feature:
    return Feature(
        "views_5m",
        USER,
        win.Tumbling(size_ms=300_000, grace_ms=10_000),
        agg.Count(),
        where=col("event_type") == "view",
    )


def test_golden_hash() -> None:
    # Pinned: if this changes, every stored evaluation and promotion record is orphaned.
    # Change it only together with SPEC_VERSION.
    assert views().hash == "5041c39a47740c22"


def test_same_definition_same_hash() -> None:
    assert views().hash == views().hash
    assert Feature.from_spec(views().spec()).hash == views().hash


@pytest.mark.parametrize(
    "changed",
    [
        Feature(
            "views_5m",
            USER,
            win.Tumbling(size_ms=300_001, grace_ms=10_000),
            agg.Count(),
            where=col("event_type") == "view",
        ),
        Feature(
            "views_5m",
            USER,
            win.Tumbling(size_ms=300_000, grace_ms=0),
            agg.Count(),
            where=col("event_type") == "view",
        ),
        Feature(
            "views_5m",
            USER,
            win.Hopping(size_ms=300_000, step_ms=300_000, grace_ms=10_000),
            agg.Count(),
            where=col("event_type") == "view",
        ),
        Feature(
            "views_5m",
            USER,
            win.Tumbling(size_ms=300_000, grace_ms=10_000),
            agg.Count(),
            where=col("event_type") == "click",
        ),
        Feature("views_5m", USER, win.Tumbling(size_ms=300_000, grace_ms=10_000), agg.Count()),
        Feature(
            "views_5m",
            ENTITIES[0],
            win.Tumbling(size_ms=300_000, grace_ms=10_000),
            agg.Count(),
            where=col("event_type") == "view",
        ),
        Feature(
            "views_5m",
            USER,
            win.Tumbling(size_ms=300_000, grace_ms=10_000),
            agg.Sum("price"),
            where=col("event_type") == "view",
        ),
        Feature(
            "views_5m",
            USER,
            win.Tumbling(size_ms=300_000, grace_ms=10_000),
            agg.Count(),
            where=col("event_type") == "view",
            source="other",
        ),
    ],
)
def test_logic_changes_the_hash(changed: Feature) -> None:
    assert changed.hash != views().hash


def test_parameters_of_aggregations_are_in_the_hash() -> None:
    hashes = {
        Feature("f", USER, win.Session(gap_ms=10), a).hash
        for a in [
            agg.LastN("item_id", n=3),
            agg.LastN("item_id", n=4),
            agg.TopK("item_id", k=3),
            agg.LastN("category", n=3),
        ]
    }
    assert len(hashes) == 4


def test_description_is_not_logic() -> None:
    described = Feature(
        "views_5m",
        USER,
        win.Tumbling(size_ms=300_000, grace_ms=10_000),
        agg.Count(),
        where=col("event_type") == "view",
        description="views in the last five minutes",
    )
    assert described.hash == views().hash


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(sorted(WINDOWS)),
    w=st.integers(0, 1),
    a=st.sampled_from(sorted(AGGREGATIONS)),
    e=st.integers(0, len(ENTITIES) - 1),
    f=st.integers(0, len(FILTERS) - 1),
)
def test_spec_round_trip_keeps_the_hash(kind: str, w: int, a: str, e: int, f: int) -> None:
    feat = Feature(f"{kind}_{a}", ENTITIES[e], WINDOWS[kind][w], AGGREGATIONS[a], where=FILTERS[f])
    custom = None if type(feat.aggregation).builtin else feat.aggregation
    assert Feature.from_spec(feat.spec(), custom).hash == feat.hash
    assert Expr.from_spec(feat.entity.key_expr.spec()).spec() == feat.entity.key_expr.spec()


CUSTOM_A = '''
class Clicks(Aggregation):
    """Counts clicks."""
    kind = "clicks"
    def initialize(self): return 0
    def update(self, state, value, event_time_ms): return state + (value == "click")
    def merge(self, a, b): return a + b
'''
CUSTOM_A_REFORMATTED = '''
class Clicks(Aggregation):
    # a comment, a different docstring, other spacing and quotes
    """The number of click events."""

    kind = 'clicks'

    def initialize(self):
        return 0

    def update(self, state, value, event_time_ms):
        return state + (value == 'click')

    def merge(self, a, b):
        return a + b
'''
CUSTOM_B = CUSTOM_A.replace('"click"', '"view"')


def load_custom(tmp_path: Path, name: str, body: str) -> type[agg.Aggregation]:
    (tmp_path / f"{name}.py").write_text(
        "from workbench.features.aggregations import Aggregation\n" + textwrap.dedent(body)
    )
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name).Clicks  # type: ignore[no-any-return]
    finally:
        sys.path.remove(str(tmp_path))


def test_custom_aggregation_hash_ignores_formatting_not_logic(tmp_path: Path) -> None:
    a = load_custom(tmp_path, "custom_a", CUSTOM_A)
    a2 = load_custom(tmp_path, "custom_a2", CUSTOM_A_REFORMATTED)
    b = load_custom(tmp_path, "custom_b", CUSTOM_B)

    def feat(cls: type[agg.Aggregation]) -> Feature:
        return Feature("clicks", USER, win.Session(gap_ms=1000), cls("event_type"))

    assert feat(a).hash == feat(a2).hash
    assert feat(a).hash != feat(b).hash


def test_registry_rebuilds_from_the_hash_alone(tmp_path: Path) -> None:
    features = [views(), Feature("sq", USER, win.Sliding(size_ms=1000), SumOfSquares("quantity"))]
    hashes = save(features, tmp_path)
    assert hashes == [f.hash for f in features]
    for f in features:
        rebuilt = load(f.hash, tmp_path)
        assert rebuilt.hash == f.hash
        assert rebuilt.spec() == f.spec()
    stored = (tmp_path / f"{features[1].hash}.json").read_text()
    assert "class SumOfSquares" in stored  # the source is kept next to the spec


def test_rebuilt_feature_computes_the_same_values(tmp_path: Path) -> None:
    from workbench.features.backfill import backfill

    f = views()
    save(f, tmp_path)
    frame = pd.DataFrame(
        {
            "event_type": ["view", "click", "view"],
            "event_time_ms": [1, 2, 3],
            "user_id": ["u", "u", "u"],
            "partition": [0, 0, 0],
            "offset": [0, 1, 2],
        }
    )
    assert backfill(load(f.hash, tmp_path), frame).equals(backfill(f, frame))


def test_feature_set_rules() -> None:
    fs = FeatureSet("shop", [views()])
    assert fs.topic == "features.shop"
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSet("shop", [views(), views()])
    with pytest.raises(TypeError, match="truth value"):
        bool(col("a") == 1)


def test_class_without_source_is_fingerprinted_by_bytecode() -> None:
    """A class typed into a REPL has no source; formatting still must not matter, logic must."""
    from workbench.features.fingerprint import class_fingerprint

    def define(body: str) -> type:
        namespace: dict[str, object] = {"Aggregation": agg.Aggregation}
        exec(body, namespace)  # no file behind it, like a REPL
        return namespace["A"]  # type: ignore[return-value]

    a = define(
        "class A(Aggregation):\n  kind='a'\n  def update(self, s, v, t):\n    '''doc'''\n    return s + v\n"
    )
    b = define(
        "class A(Aggregation):\n    kind = 'a'\n    def update(self, s, v, t):  # note\n        return s + v\n"
    )
    c = define(
        "class A(Aggregation):\n    kind = 'a'\n    def update(self, s, v, t):\n        return s - v\n"
    )
    assert class_fingerprint(a).startswith("bytecode:")
    assert class_fingerprint(a) == class_fingerprint(b)
    assert class_fingerprint(a) != class_fingerprint(c)
