"""Labels that come from later events (log and wait).

A label definition names the events to predict on (``on``), the outcome event
that makes the label positive (``outcome``), the fields that must match between
the two (``match``) and how long to wait (``within_ms``). A positive label is
known when the outcome happens; a negative one when the wait runs out. So the
delay is per example.

>>> import pandas as pd
>>> ev = pd.DataFrame({
...     "event_type": ["view", "view", "purchase", "view"],
...     "session_id": ["s1", "s1", "s1", "s2"],
...     "item_id": ["a", "b", "a", "c"],
...     "event_time_ms": [0, 1_000, 60_000, 2_000_000],
... })
>>> purchase_within(minutes=30).compute(ev)[["item_id", "y", "label_time_ms"]].to_dict("records")
[{'item_id': 'a', 'y': True, 'label_time_ms': 60000}, {'item_id': 'b', 'y': False, 'label_time_ms': 1801000}, {'item_id': 'c', 'y': None, 'label_time_ms': 3800000}]

The last view's wait had not run out when the history ends, so its label is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Label:
    """``y`` is True when an ``outcome`` event matching on ``match`` follows within ``within_ms``."""

    name: str
    on: str
    outcome: str
    match: tuple[str, ...]
    within_ms: int

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "on": self.on, "outcome": self.outcome, "match": list(self.match),
                "within_ms": self.within_ms}

    def compute(self, events: pd.DataFrame) -> pd.DataFrame:
        """The prediction rows of ``events`` (in their order) with ``y`` and ``label_time_ms``.

        Only the first matching outcome at or after the prediction counts; if the
        frame ends before the wait runs out and no outcome came, ``y`` is missing (None).
        """
        import numpy as np
        import pandas as pd

        preds = events[events["event_type"] == self.on].copy()
        if preds.empty:
            return preds.assign(label_time_ms=pd.Series(dtype="int64"), y=pd.Series(dtype="object"))
        outs = events.loc[events["event_type"] == self.outcome, [*self.match, "event_time_ms"]]
        outs = outs.rename(columns={"event_time_ms": "_out_ms"}).sort_values("_out_ms", kind="stable")
        preds["_row"] = np.arange(len(preds))
        left = preds[[*self.match, "event_time_ms", "_row"]].sort_values("event_time_ms", kind="stable")
        joined = pd.merge_asof(
            left, outs, left_on="event_time_ms", right_on="_out_ms", by=list(self.match),
            direction="forward", tolerance=self.within_ms, allow_exact_matches=True,
        ).sort_values("_row")  # fmt: skip
        hit = joined["_out_ms"].notna().to_numpy(dtype=bool)
        t = preds["event_time_ms"].to_numpy(dtype="int64")
        deadline = t + self.within_ms
        horizon = int(events["event_time_ms"].max()) if len(events) else 0
        out_ms = joined["_out_ms"].to_numpy()
        preds["label_time_ms"] = np.where(hit, np.nan_to_num(out_ms, nan=0).astype("int64"), deadline)
        y = pd.Series(hit, index=preds.index, dtype="object")
        # a negative is known only once event time has passed the deadline
        y[(~hit) & (deadline >= horizon)] = None
        preds["y"] = y
        return preds.drop(columns="_row")


def purchase_within(minutes: float = 30, on: str = "view", same_item: bool = True) -> Label:
    """Purchase (of the same item, by default) within ``minutes`` of a view in the same session."""
    match = ("session_id", "item_id") if same_item else ("session_id",)
    return Label(f"purchase_within_{minutes:g}m", on, "purchase", match, int(minutes * 60_000))


def click_on_impression(minutes: float = 10) -> Label:
    """A click on the shown item of the same recommendation request."""
    return Label(f"click_within_{minutes:g}m", "impression", "click", ("request_id", "item_id"),
                 int(minutes * 60_000))


class LabelJoiner:
    """The same label, computed incrementally over a live stream in offset order.

    ``feed(event)`` yields ``(prediction_key, y, label_time_ms)`` as labels become
    known: positives when the outcome arrives, negatives once the stream's event
    time passes the deadline plus ``grace_ms``. It agrees with ``Label.compute``
    when outcomes follow their predictions in offset order (as they do within a
    session-keyed partition) and the stream's disorder stays within the grace.
    """

    def __init__(self, label: Label, grace_ms: int = 60_000) -> None:
        import heapq

        self.label = label
        # partitions interleave, so the stream's event time is only roughly ordered;
        # a negative waits this much past its deadline for a late outcome
        self.grace_ms = grace_ms
        self._heap: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self._push = heapq.heappush
        self._pop = heapq.heappop
        self._waiting: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        self._done: set[str] = set()
        self._seq = 0
        self.watermark_ms = -(2**63)

    def feed(self, key: str, event: dict[str, Any]) -> Iterator[tuple[str, bool, int]]:
        t = int(event["event_time_ms"])
        self.watermark_ms = max(self.watermark_ms, t)
        match = tuple(event.get(f) for f in self.label.match)
        if event["event_type"] == self.label.on:
            self._waiting.setdefault(match, []).append((t, key))
            self._seq += 1
            self._push(self._heap, (t + self.label.within_ms, self._seq, key, match))
        elif event["event_type"] == self.label.outcome:
            for t0, k in self._waiting.pop(match, []):
                if k in self._done:
                    continue
                if t0 <= t <= t0 + self.label.within_ms:
                    self._done.add(k)
                    yield k, True, t
        yield from self._expire()

    def _expire(self) -> Iterator[tuple[str, bool, int]]:
        while self._heap and self._heap[0][0] + self.grace_ms < self.watermark_ms:
            deadline, _, k, match = self._pop(self._heap)
            if k in self._done:
                self._done.discard(k)
                continue
            waiting = self._waiting.get(match)
            if waiting:  # drop the expired wait so memory stays bounded by the open windows
                waiting[:] = [w for w in waiting if w[1] != k]
                if not waiting:
                    del self._waiting[match]
            yield k, False, deadline

    def feed_all(self, items: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, bool, int]]:
        for key, event in items:
            yield from self.feed(key, event)
