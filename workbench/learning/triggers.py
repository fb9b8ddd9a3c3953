"""Retraining triggers, configured per model: time, performance and drift.

Every trigger is fed one observation at a time with :meth:`update` and returns
True when it fires. The same object runs offline with :meth:`scan` over any
iterable -- losses, metric values, feature values, records, a DataFrame's rows
-- and returns where it fired, so a trigger can be tried on recorded data
before it runs live.

>>> drift = DriftTrigger()
>>> values = [0.2] * 2000 + [0.8] * 2000
>>> [f.position for f in drift.scan(values)]
[2015]
>>> TimeTrigger(every_minutes=60).scan([0, 1_800_000, 3_600_000, 5_000_000, 7_300_000], time=lambda t: t)
[Firing(position=2, t_ms=3600000, reason='60 min since 0'), Firing(position=4, t_ms=7300000, reason='61 min since 3600000')]
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workbench.errors import WorkbenchError

Getter = str | Callable[[Any], Any] | None


@dataclass(frozen=True)
class Firing:
    """Where a trigger fired: the item's position in the scan, its time if known, and why."""

    position: int
    t_ms: int | None
    reason: str


def _get(item: Any, getter: Getter) -> Any:
    if getter is None:
        return item
    if callable(getter):
        return getter(item)
    if isinstance(item, Mapping):
        return item[getter]
    return getattr(item, getter)


class Trigger:
    """Shared offline driver; subclasses implement ``update``."""

    reason: str = ""

    def update(self, value: Any = None, *, t_ms: int | None = None) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def scan(self, items: Iterable[Any], *, value: Getter = None, time: Getter = None) -> list[Firing]:
        """Feed every item (``value`` picks the observation, ``time`` its event time in ms) and list firings.

        ``value``/``time`` are a key (dict or pandas row), an attribute name or a
        callable; with neither, the item itself is the observation. A pandas
        DataFrame is scanned row by row (its columns by name).
        """
        import sys

        if "pandas" in sys.modules:
            import pandas as pd

            if isinstance(items, pd.DataFrame):
                cols = [c for c in (value, time) if isinstance(c, str)]
                items = items[cols].to_dict("records") if cols else items.itertuples(index=False)
        out = []
        for i, item in enumerate(items):
            t = _get(item, time) if time is not None else None
            t_ms = None if t is None else int(t)
            v = _get(item, value) if (value is not None or time is None) else None
            if self.update(v, t_ms=t_ms):
                out.append(Firing(i, t_ms, self.reason))
        return out


class TimeTrigger(Trigger):
    """Fires every ``every_minutes`` of (event or wall-clock) time; the first observation starts the clock."""

    def __init__(self, every_minutes: float) -> None:
        if every_minutes <= 0:
            raise WorkbenchError("every_minutes must be > 0")
        self.every_ms = int(every_minutes * 60_000)
        self.last_ms: int | None = None

    def update(self, value: Any = None, *, t_ms: int | None = None) -> bool:
        now = int(time.time() * 1000) if t_ms is None else t_ms
        if self.last_ms is None:
            self.last_ms = now
            return False
        if now - self.last_ms >= self.every_ms:
            self.reason = f"{(now - self.last_ms) // 60_000} min since {self.last_ms}"
            self.last_ms = now
            return True
        return False

    def due(self) -> bool:
        """Live use: has the interval passed on the wall clock? (Fires and restarts the clock if so.)"""
        return self.update()

    def reset(self) -> None:
        self.last_ms = None


class PerformanceTrigger(Trigger):
    """Fires when a metric's recent mean is worse than its reference mean, beyond noise.

    The reference is the mean of the first ``reference_size`` observations
    after a start or a firing (the model as it was just trained), unless a
    fixed ``reference`` is given. Observations are per-example losses (or any
    metric, with ``higher_is_better=True`` for e.g. clicks). The trigger fires
    when the mean of the last ``window_size`` is worse by at least
    ``min_drop`` (relative) *and* by ``z`` standard errors, then collects a new
    reference.

    >>> t = PerformanceTrigger(reference_size=500, window_size=500, min_drop=0.1)
    >>> [f.position for f in t.scan([0.3, 0.4] * 1000 + [0.6, 0.7] * 1000)]
    [2058]
    """

    def __init__(self, *, window_size: int = 1000, reference_size: int = 1000, min_drop: float = 0.1,
                 z: float = 3.0, higher_is_better: bool = False, reference: float | None = None) -> None:
        if window_size < 2 or reference_size < 2:
            raise WorkbenchError("window_size and reference_size must be >= 2")
        self.window_size, self.reference_size = window_size, reference_size
        self.min_drop, self.z, self.higher_is_better = min_drop, z, higher_is_better
        self.fixed_reference = reference
        self.reset()

    def reset(self) -> None:
        self._ref_n, self._ref_sum, self._ref_sq = 0, 0.0, 0.0
        self._window: deque[float] = deque(maxlen=self.window_size)
        self._sum = self._sq = 0.0

    @property
    def reference(self) -> float | None:
        if self.fixed_reference is not None:
            return self.fixed_reference
        return self._ref_sum / self._ref_n if self._ref_n >= self.reference_size else None

    def update(self, value: Any = None, *, t_ms: int | None = None) -> bool:
        if value is None:
            return False
        v = float(value)
        if self.fixed_reference is None and self._ref_n < self.reference_size:
            self._ref_n += 1
            self._ref_sum += v
            self._ref_sq += v * v
            return False
        if len(self._window) == self.window_size:
            old = self._window[0]
            self._sum -= old
            self._sq -= old * old
        self._window.append(v)
        self._sum += v
        self._sq += v * v
        if len(self._window) < self.window_size:
            return False
        ref = self.reference
        assert ref is not None
        n = self.window_size
        cur = self._sum / n
        worse = ref - cur if self.higher_is_better else cur - ref
        var = max(self._sq / n - cur * cur, 0.0) / n
        if self.fixed_reference is None:
            rm = ref
            var += max(self._ref_sq / self._ref_n - rm * rm, 0.0) / self._ref_n
        if worse >= self.min_drop * abs(ref) and worse >= self.z * math.sqrt(var):
            self.reason = f"mean {cur:.4g} vs reference {ref:.4g} ({worse / abs(ref) if ref else math.inf:+.1%} worse)"
            self.reset()
            return True
        return False


class DriftTrigger(Trigger):
    """ADWIN (River) on a stream of numbers: a loss, or one feature's values.

    ``direction="up"`` fires only when the mean rises (a loss getting worse),
    ``"down"`` only when it falls, ``"any"`` on both. ``min_change`` (relative)
    ignores detected changes smaller than that: on a long noisy stream ADWIN
    also finds real but tiny shifts. For a categorical feature,
    :meth:`on_categories` watches each category's share.
    """

    def __init__(self, *, delta: float = 0.002, direction: Literal["any", "up", "down"] = "any",
                 grace_period: int = 10, min_change: float = 0.0) -> None:
        if direction not in ("any", "up", "down"):
            raise WorkbenchError(f"direction is 'any', 'up' or 'down', not {direction!r}")
        if min_change < 0:
            raise WorkbenchError("min_change is a relative change >= 0")
        self.delta, self.direction, self.grace_period = delta, direction, grace_period
        self.min_change = min_change
        self.reset()

    def reset(self) -> None:
        from river import drift

        self._adwin = drift.ADWIN(delta=self.delta, grace_period=self.grace_period)
        self._reference: float | None = None

    def update(self, value: Any = None, *, t_ms: int | None = None) -> bool:
        if value is None:
            return False
        v = float(value)
        if v != v:  # NaN: no observation
            return False
        before = self._adwin.estimation
        self._adwin.update(v)
        after = self._adwin.estimation
        if not self._adwin.drift_detected:
            # a change ADWIN found earlier but too small then: fire once the level has moved enough
            return self._reference is not None and self._big_enough(after)
        # ADWIN has dropped the old part of its window
        if (self.direction == "up" and after <= before) or (self.direction == "down" and after >= before):
            return False
        if self._reference is None:
            self._reference = before  # the level before the change: what its size is measured against
        return self._big_enough(after)

    def _big_enough(self, level: float) -> bool:
        ref = self._reference
        assert ref is not None
        change = level - ref
        if (self.direction == "up" and change <= 0) or (self.direction == "down" and change >= 0):
            return False
        if abs(change) < self.min_change * abs(ref):
            return False  # a real but small change: ADWIN on a long, noisy stream finds those
        self._reference = None
        self.reason = f"ADWIN: mean {ref:.4g} -> {level:.4g}"
        return True

    @staticmethod
    def on_categories(categories: Iterable[str], *, delta: float = 0.002) -> CategoryDriftTrigger:
        """A drift trigger over a categorical feature: one ADWIN per category on its 0/1 indicator."""
        return CategoryDriftTrigger(categories, delta=delta)


class CategoryDriftTrigger(Trigger):
    """Fires when any category's share drifts (ADWIN on each indicator); values outside are ignored.

    >>> t = DriftTrigger.on_categories(["a", "b", "c"])
    >>> firings = t.scan(["a", "b", "c"] * 1000 + ["a", "a", "b", "c"] * 1000)
    >>> len(firings) >= 1 and firings[0].position > 3000
    True
    """

    def __init__(self, categories: Iterable[str], *, delta: float = 0.002) -> None:
        self.categories = list(categories)
        if not self.categories:
            raise WorkbenchError("on_categories needs the categories to watch")
        self.delta = delta
        self.reset()

    def reset(self) -> None:
        self._triggers = {c: DriftTrigger(delta=self.delta) for c in self.categories}

    def update(self, value: Any = None, *, t_ms: int | None = None) -> bool:
        if value is None:
            return False
        fired = [c for c, t in self._triggers.items() if t.update(float(value == c))]
        if fired:
            self.reason = "; ".join(f"share of {c!r}: {self._triggers[c].reason}" for c in fired)
        return bool(fired)
