"""Derived features: an expression over several aggregations of the same window.

``Filtered`` applies a filter to one aggregation; ``Derived`` combines named
aggregations with an :class:`~workbench.features.expr.Expr` over their
results. Both are aggregations themselves, so a derived feature is an
ordinary :class:`~workbench.features.definition.Feature`: one window, one
state per key, the same conformance checks. Every input is computed over
*the same window and the same records*, so a click-through rate is clicks
over impressions of that very window, never of two windows that happen to
be the latest. Division by zero and null inputs give None on both paths.

>>> from workbench.features.aggregations import Count
>>> from workbench.features.expr import col
>>> ctr = Derived(
...     col("clicks") / col("impressions"),
...     clicks=Filtered(Count(), col("event_type") == "click"),
...     impressions=Filtered(Count(), col("event_type") == "impression"),
... )
>>> state = ctr.initialize()
>>> for kind in ["impression", "impression", "click", "impression", "view"]:
...     state = ctr._update_item(state, [0, 0, 0, ctr.extract({"event_type": kind})])
>>> ctr.result(state)
0.3333333333333333
>>> ctr.spec()["kind"], sorted(ctr.spec()["inputs"])
('derived', ['clicks', 'impressions'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Aggregation, Item, RecordArrays, aggregation_from_spec
from workbench.features.expr import Expr

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _objects(values: list[Any]) -> np.ndarray:
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


class Filtered(Aggregation):
    """``inner`` over only the records where ``where`` holds."""

    kind = "filtered"
    needs_field = False
    builtin = True

    def __init__(self, inner: Aggregation, where: Expr) -> None:
        super().__init__(None)
        self.inner = inner
        self.where = where

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where.spec(), "inner": self.inner.spec()}

    def extract(self, event: dict[str, Any]) -> Any:
        return [bool(self.where.evaluate(event)), self.inner.extract(event)]

    def extract_frame(self, frame: pd.DataFrame) -> list[Any]:
        passes = self.where.evaluate_frame(frame).astype(bool).tolist()
        return [[p, v] for p, v in zip(passes, self.inner.extract_frame(frame), strict=True)]

    def initialize(self) -> Any:
        return self.inner.initialize()

    def _update_item(self, state: Any, item: Item) -> Any:
        passes, value = item[3]
        return self.inner._update_item(state, [*item[:3], value]) if passes else state

    def merge(self, a: Any, b: Any) -> Any:
        return self.inner.merge(a, b)

    def result(self, state: Any) -> Any:
        return self.inner.result(state)

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        import numpy as np

        passes = np.array([bool(x[0]) for x in items.v], dtype=bool)
        inner = RecordArrays(items.t, items.p, items.o, _objects([x[1] for x in items.v]))
        return self.inner._backfill(mask & passes[None, :], inner)


class Derived(Aggregation):
    """An expression (``col(name)`` refers to an input's result) over named aggregations."""

    kind = "derived"
    needs_field = False
    builtin = True

    def __init__(self, expr: Expr, **inputs: Aggregation) -> None:
        super().__init__(None)
        if not inputs:
            raise ValueError("Derived needs at least one input aggregation")
        unknown = expr.columns() - set(inputs)
        if unknown:
            raise ValueError(f"Derived expression refers to unknown inputs: {sorted(unknown)}")
        self.expr = expr
        self.inputs = dict(sorted(inputs.items()))

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expr": self.expr.spec(),
            "inputs": {name: a.spec() for name, a in self.inputs.items()},
        }

    def extract(self, event: dict[str, Any]) -> Any:
        return {name: a.extract(event) for name, a in self.inputs.items()}

    def extract_frame(self, frame: pd.DataFrame) -> list[Any]:
        columns = {name: a.extract_frame(frame) for name, a in self.inputs.items()}
        return [{name: columns[name][i] for name in columns} for i in range(len(frame))]

    def initialize(self) -> dict[str, Any]:
        return {name: a.initialize() for name, a in self.inputs.items()}

    def _update_item(self, state: dict[str, Any], item: Item) -> dict[str, Any]:
        return {
            name: a._update_item(state[name], [*item[:3], item[3][name]]) for name, a in self.inputs.items()
        }

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {name: agg.merge(a[name], b[name]) for name, agg in self.inputs.items()}

    def result(self, state: dict[str, Any]) -> Any:
        return self.expr.evaluate({name: a.result(state[name]) for name, a in self.inputs.items()})

    def _backfill(self, mask: np.ndarray, items: RecordArrays) -> list[Any]:
        results = {}
        for name, a in self.inputs.items():
            sub = RecordArrays(items.t, items.p, items.o, _objects([x[name] for x in items.v]))
            results[name] = a._backfill(mask, sub)
        return [self.expr.evaluate({name: results[name][i] for name in results}) for i in range(len(mask))]


def composite_from_spec(spec: dict[str, Any]) -> Aggregation:
    """Rebuild a Filtered or Derived aggregation from its spec."""
    if spec["kind"] == "filtered":
        return Filtered(aggregation_from_spec(spec["inner"]), Expr.from_spec(spec["where"]))
    inputs = {name: aggregation_from_spec(s) for name, s in spec["inputs"].items()}
    return Derived(Expr.from_spec(spec["expr"]), **inputs)
