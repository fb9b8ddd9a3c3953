"""Request-time features: computed when a prediction is requested, from the request and stored values.

A :class:`RequestFeature` is an :class:`~workbench.features.expr.Expr` over
the request's fields and the stored values of some streaming features (its
``inputs``). In the expression, ``col(name)`` is the stored value when
``name`` is an input's name and the request field otherwise; an input
shadows a request field of the same name, on both paths.

It is evaluated two ways that agree:

* **online** - :meth:`RequestFeature.evaluate` on a request dict and the
  stored values an online store serves (the latest update per feature, for
  the keys :meth:`RequestFeature.keys` computes from the request);
* **offline** - :func:`request_frame` over a frame of requests, each joined
  as of its request time to the stored values that existed then
  (:func:`~workbench.features.training.training_frame`: the last update
  available strictly before the request), then the same expression frame-wise.

A stored value that does not exist yet is None, and the expression's null
rules apply (arithmetic with null is null, a comparison with null is False).
The hash is structural: the expression tree plus the hash of every input
definition, so a changed window upstream is a new request feature too.

>>> import pandas as pd
>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import SESSION, USER, Feature
>>> last_ms = Feature("last_ms", SESSION, win.Session(gap_ms=1_000), agg.Max("event_time_ms"))
>>> avg_price = Feature("avg_price", USER, win.Tumbling(size_ms=86_400_000), agg.Mean("price"))
>>> idle_ms = RequestFeature("idle_ms", col("request_time_ms") - col("last_ms"), inputs=[last_ms])
>>> pricier = RequestFeature("pricier", col("price") > col("avg_price"), inputs=[avg_price])
>>> request = {"session_id": "s1", "user_id": "u1", "price": 30.0, "request_time_ms": 5_000}
>>> idle_ms.keys(request)
{'last_ms': 's1'}
>>> idle_ms.evaluate(request, {"last_ms": 4_200}), pricier.evaluate(request, {"avg_price": 20.0})
(800, True)
>>> idle_ms.evaluate(request, {})   # no event in the session yet
>>> events = pd.DataFrame({"session_id": "s1", "user_id": "u1", "event_time_ms": [4_000, 4_200],
...                        "price": [10.0, 30.0], "partition": 0, "offset": [0, 1]})
>>> requests = pd.DataFrame([request, {**request, "request_time_ms": 4_100, "price": 5.0}])
>>> request_frame(requests, [idle_ms, pricier], events)[["idle_ms", "pricier"]].values.tolist()
[[800, True], [100, False]]
>>> idle_ms.hash == RequestFeature("idle_ms", col("request_time_ms") - col("last_ms"), [last_ms]).hash
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from workbench.features.definition import SPEC_VERSION, Feature, spec_hash
from workbench.features.expr import Expr, col

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TIME = "request_time_ms"


@dataclass(frozen=True, eq=False)
class RequestFeature:
    """An expression over request fields and the stored values of ``inputs``."""

    name: str
    expr: Expr
    inputs: Sequence[Feature] = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"request feature name {self.name!r}: use letters, digits and _")
        if not isinstance(self.expr, Expr):
            raise TypeError("RequestFeature.expr must be an Expr (build it with col() and operators)")
        names = [f.name for f in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"request feature {self.name!r} has two inputs named alike")
        object.__setattr__(self, "inputs", tuple(self.inputs))  # a list would make the object mutable

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.inputs]

    @property
    def request_fields(self) -> set[str]:
        """Fields the expression reads from the request (every column that is not an input)."""
        return self.expr.columns() - set(self.input_names)

    def spec(self) -> dict[str, Any]:
        """Canonical JSON form: the expression tree and each input by its definition hash."""
        return {
            "version": SPEC_VERSION,
            "kind": "request",
            "name": self.name,
            "expr": self.expr.spec(),
            "inputs": {f.name: f.hash for f in self.inputs},
        }

    @cached_property
    def hash(self) -> str:
        """Stable content hash of :meth:`spec` (sha256, hex, first 16 chars)."""
        return spec_hash(self.spec())

    def keys(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Input name -> the entity key to read from the online store for this request."""
        return {f.name: f.entity.key_of(dict(request)) for f in self.inputs}

    def evaluate(self, request: Mapping[str, Any], stored: Mapping[str, Any]) -> Any:
        """The online value: ``stored`` maps input names to their current values (missing: None)."""
        env = {**request, **{name: stored.get(name) for name in self.input_names}}
        return _plain(self.expr.evaluate(env))

    def evaluate_frame(self, frame: pd.DataFrame) -> list[Any]:
        """The offline value per row of a frame holding request fields and one column per input."""
        return [_plain(v) for v in self.expr.evaluate_frame(frame).tolist()]

    def __repr__(self) -> str:
        return f"RequestFeature({self.name!r}, hash={self.hash})"


def request_frame(
    requests: pd.DataFrame,
    features: Iterable[RequestFeature],
    events: pd.DataFrame,
    time: str = DEFAULT_TIME,
    inclusive: bool = False,
    keep_inputs: bool = False,
) -> pd.DataFrame:
    """``requests`` with one column per request feature, as the online path would have served it.

    Each stored input is joined as of the request's ``time`` (epoch ms) with
    :func:`~workbench.features.training.training_frame` over ``events`` (the
    backfill), then every expression is evaluated frame-wise.
    ``keep_inputs=True`` also returns the stored input columns (named
    ``<input>`` when no request column has that name).
    """
    import pandas as pd

    from workbench.features.training import training_frame

    features = list(features)
    inputs: dict[str, Feature] = {}
    for rf in features:
        for f in rf.inputs:
            known = inputs.setdefault(f.name, f)
            if known.hash != f.hash:
                raise ValueError(f"two different definitions are both named {f.name!r}")
    base = requests.reset_index(drop=True)
    # the join overwrites a request column named like an input: the online path's shadowing
    joined = training_frame(base, list(inputs.values()), events, label_time=time, inclusive=inclusive)
    out = base.copy()
    for rf in features:
        values = pd.Series([None] * len(out), dtype=object)
        for i, v in enumerate(rf.evaluate_frame(joined)):
            values.iat[i] = v
        out[rf.name] = values
    if keep_inputs:
        for name in inputs:
            if name not in out.columns:
                out[name] = joined[name].to_numpy()
    return out


def _plain(v: Any) -> Any:
    """numpy scalars -> python values, so both paths return the same types."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, list | tuple | str):
        return v.item()
    return v


__all__ = ["DEFAULT_TIME", "RequestFeature", "col", "request_frame"]
