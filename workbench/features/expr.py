"""Small declarative expressions over event fields: filters, derived keys, fields.

A feature never holds a lambda. It holds an :class:`Expr`, a tiny tree that
has a canonical JSON spec (so it hashes the same however it was typed) and
two evaluators that agree: one on a single event dict (the stream path) and
one on a whole DataFrame (the vectorized backfill).

A missing field or a ``None`` is null. A comparison with null is False, and
arithmetic with null is null, on both paths.

>>> is_view = col("event_type") == "view"
>>> is_view.spec()
['==', ['col', 'event_type'], ['lit', 'view']]
>>> is_view.evaluate({"event_type": "view"}), is_view.evaluate({"event_type": "click"})
(True, False)
>>> expensive_view = is_view & (col("price") >= 100)
>>> expensive_view.evaluate({"event_type": "view", "price": 120.0})
True
>>> (col("user_id") + ":" + col("category")).evaluate({"user_id": "u1", "category": "books"})
'u1:books'
>>> Expr.from_spec(expensive_view.spec()).spec() == expensive_view.spec()
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# op -> python function on non-null scalars (null handling is done around it)
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})
_LOGICAL = frozenset({"and", "or"})


class Expr:
    """A node of an expression tree; build them with :func:`col` and :func:`lit`."""

    __slots__ = ("op", "args")

    def __init__(self, op: str, *args: Any) -> None:
        self.op = op
        self.args = args

    # -- building -------------------------------------------------------
    def _bin(self, op: str, other: Any, swap: bool = False) -> Expr:
        other_expr = other if isinstance(other, Expr) else lit(other)
        return Expr(op, other_expr, self) if swap else Expr(op, self, other_expr)

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._bin("==", other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._bin("!=", other)

    def __lt__(self, other: Any) -> Expr:
        return self._bin("<", other)

    def __le__(self, other: Any) -> Expr:
        return self._bin("<=", other)

    def __gt__(self, other: Any) -> Expr:
        return self._bin(">", other)

    def __ge__(self, other: Any) -> Expr:
        return self._bin(">=", other)

    def __add__(self, other: Any) -> Expr:
        return self._bin("+", other)

    def __radd__(self, other: Any) -> Expr:
        return self._bin("+", other, swap=True)

    def __sub__(self, other: Any) -> Expr:
        return self._bin("-", other)

    def __mul__(self, other: Any) -> Expr:
        return self._bin("*", other)

    def __truediv__(self, other: Any) -> Expr:
        return self._bin("/", other)

    def __and__(self, other: Any) -> Expr:
        return self._bin("and", other)

    def __or__(self, other: Any) -> Expr:
        return self._bin("or", other)

    def __invert__(self) -> Expr:
        return Expr("not", self)

    def isin(self, values: list[Any] | tuple[Any, ...]) -> Expr:
        """True when the value is one of ``values`` (kept in the given order for the hash)."""
        return Expr("in", self, Expr("lit", list(values)))

    # Expr overloads == for building, so it cannot be a dict key by value.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        # `if col("a") == 1:` is always a bug: the comparison builds an Expr.
        raise TypeError("an Expr has no truth value; combine expressions with &, |, ~")

    def __repr__(self) -> str:
        return f"Expr({self.spec()!r})"

    # -- canonical form ----------------------------------------------------
    def spec(self) -> list[Any]:
        """The canonical JSON-able form that feature hashes are computed from."""
        if self.op in ("col", "lit"):
            return [self.op, self.args[0]]
        return [self.op, *(a.spec() for a in self.args)]

    @classmethod
    def from_spec(cls, spec: list[Any]) -> Expr:
        op, *rest = spec
        if op in ("col", "lit"):
            return cls(op, rest[0])
        return cls(op, *(cls.from_spec(r) for r in rest))

    def columns(self) -> set[str]:
        """The event fields this expression reads."""
        if self.op == "col":
            return {self.args[0]}
        if self.op == "lit":
            return set()
        return set().union(*(a.columns() for a in self.args))

    # -- one event (stream path) -------------------------------------------
    def evaluate(self, event: dict[str, Any]) -> Any:
        op = self.op
        if op == "col":
            return event.get(self.args[0])
        if op == "lit":
            return self.args[0]
        if op == "not":
            return not bool(self.args[0].evaluate(event))
        if op in _LOGICAL:
            a = bool(self.args[0].evaluate(event))
            b = bool(self.args[1].evaluate(event))
            return (a and b) if op == "and" else (a or b)
        a = self.args[0].evaluate(event)
        b = self.args[1].evaluate(event)
        if op == "in":
            return a is not None and a in b
        if a is None or b is None:
            return False if op in _COMPARE else None
        if op == "/" and b == 0:
            return None  # the same null the frame evaluator produces
        return _BINARY[op](a, b)

    # -- a whole frame (backfill path) -------------------------------------
    def evaluate_frame(self, frame: pd.DataFrame) -> pd.Series:
        """Evaluate over every row; the result agrees with :meth:`evaluate` row by row."""
        import pandas as pd

        op = self.op
        if op == "col":
            name = self.args[0]
            if name in frame.columns:
                return frame[name].astype(object).where(frame[name].notna(), None)
            return pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if op == "lit":
            return pd.Series([self.args[0]] * len(frame), index=frame.index, dtype=object)
        if op == "not":
            return ~_truthy(self.args[0].evaluate_frame(frame))
        if op in _LOGICAL:
            a = _truthy(self.args[0].evaluate_frame(frame))
            b = _truthy(self.args[1].evaluate_frame(frame))
            return (a & b) if op == "and" else (a | b)
        if op == "in":
            a = self.args[0].evaluate_frame(frame)
            return a.isin(list(self.args[1].args[0])) & a.notna()
        # Row-wise on object columns: exact python semantics (int stays int,
        # str + str concatenates), so both paths produce identical values.
        a = self.args[0].evaluate_frame(frame)
        b = self.args[1].evaluate_frame(frame)
        fn = _BINARY[op]
        compare = op in _COMPARE
        out = []
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            if x is None or y is None:
                out.append(False if compare else None)
            elif op == "/" and y == 0:
                out.append(None)
            else:
                out.append(fn(x, y))
        return pd.Series(out, index=frame.index, dtype=bool if compare else object)


def _truthy(series: pd.Series) -> pd.Series:
    return series.map(lambda v: bool(v) if v is not None else False).astype(bool)


def col(name: str) -> Expr:
    """An event field, e.g. ``col("event_type") == "view"``."""
    return Expr("col", name)


def lit(value: Any) -> Expr:
    """A constant (str, int, float, bool or None)."""
    return Expr("lit", value)


def as_expr(value: str | Expr) -> Expr:
    """A field name or an expression, as an expression."""
    return value if isinstance(value, Expr) else col(value)
