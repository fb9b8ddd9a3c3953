"""Skew check: compare two per-record feature outputs (stream vs backfill) value by value.

Integers and strings must match exactly, floats to a relative 1e-9 (summation
order differs between a running state and a matrix product), lists and
nested lists element by element.

>>> same_value(3, 3), same_value(0.1 + 0.2, 0.3), same_value([["a", 2]], [["a", 2]])
(True, True, True)
>>> same_value(1, 2), same_value(None, 0)
(False, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from workbench.features.definition import Feature

REL_TOL = 1e-9
_KEY_COLUMNS = ["partition", "offset", "key", "event_time_ms", "window_start_ms", "window_end_ms", "late"]


def same_value(a: Any, b: Any, rel_tol: float = REL_TOL) -> bool:
    """True when two feature values are equal under the conformance rules."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        if not (isinstance(a, list | tuple) and isinstance(b, list | tuple)) or len(a) != len(b):
            return False
        return all(same_value(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int) and isinstance(b, int):
        return bool(a == b)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(a == b)  # strings and other exact values


def mismatches(stream: pd.DataFrame, backfill: pd.DataFrame, limit: int = 20) -> list[str]:
    """Human-readable differences between two outputs; empty when they agree row by row."""
    problems: list[str] = []
    if len(stream) != len(backfill):
        problems.append(f"row counts differ: stream {len(stream)}, backfill {len(backfill)}")
    a_rows = stream.to_dict("records")
    b_rows = backfill.to_dict("records")
    for i, (a, b) in enumerate(zip(a_rows, b_rows, strict=False)):
        ka = [_plain(a[c]) for c in _KEY_COLUMNS]
        kb = [_plain(b[c]) for c in _KEY_COLUMNS]
        if ka != kb or not same_value(_plain(a["value"]), _plain(b["value"])):
            problems.append(f"row {i}: stream {ka + [a['value']]} != backfill {kb + [b['value']]}")
        if len(problems) >= limit:
            break
    return problems


def _plain(v: Any) -> Any:
    """numpy/pandas scalars and NA -> python values."""
    if v is None:
        return None
    try:
        if v != v:  # NaN, pd.NA raises below
            return None
    except (TypeError, ValueError):
        return None if str(v) == "<NA>" else v
    if hasattr(v, "item") and not isinstance(v, list | tuple | str):
        return v.item()
    return v


def skew_check(features: Iterable[Feature], events: pd.DataFrame) -> dict[str, list[str]]:
    """Run each feature on both paths over ``events``; feature name -> mismatches (empty: no skew).

    >>> import pandas as pd
    >>> from workbench.features import aggregations as agg, windows as win
    >>> from workbench.features.definition import SESSION, Feature
    >>> f = Feature("n", SESSION, win.Hopping(size_ms=10, step_ms=5), agg.Count())
    >>> ev = pd.DataFrame({"session_id": ["s"] * 3, "event_time_ms": [1001, 1012, 1009],
    ...                    "partition": 0, "offset": [0, 1, 2]})
    >>> skew_check([f], ev)
    {'n': []}
    """
    from workbench.features.backfill import backfill
    from workbench.features.stream import run_stream_on_frame

    return {f.name: mismatches(run_stream_on_frame(f, events), backfill(f, events)) for f in features}
