"""Labelled impressions from the service's feedback log: each list shown, joined with its clicks.

The service logs every list it shows to the ``feedback`` topic (items,
feature rows, scores, the serving version and its role, shadow versions'
scores on the same items, propensities); clicks arrive later, on the same
topic or as events carrying the ``request_id``. :class:`FeedbackJoin` keeps
each impression until its attribution window has passed, then emits it as a
:class:`Labelled` example: exactly the feature vectors that were served, so
training and evaluation never recompute a feature.

>>> import numpy as np
>>> join = FeedbackJoin(attribution_ms=1_000)
>>> join.add({"type": "impression", "request_id": "r1", "served_at_ms": 0, "model_version": "m/1",
...           "role": "champion", "items": ["a", "b"], "scores": [0.9, 0.2], "features": [[1.0], [0.0]],
...           "shadow": {"m/2": {"scores": [0.3, 0.8]}}}, partition=0, offset=7)
>>> join.add({"type": "click", "request_id": "r1", "item_id": "b"})
>>> join.due(500), len(join)
([], 1)
>>> (ex,) = join.due(1_000)
>>> ex.clicked.tolist(), ex.ref, round(ex.loss(), 3), round(ex.loss(ex.shadow["m/2"]), 3)
([False, True], 'm/1', 1.956, 0.29)
>>> ex.rank_loss(), ex.rank_loss(ex.shadow["m/2"])   # the click was 2nd by m/1's scores, 1st by m/2's
(0.5, 0.0)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_EPS = 1e-6


@dataclass
class Labelled:
    """One shown list and what was clicked in it."""

    request_id: str
    t_ms: int
    ref: str  # the version that served it
    role: str  # champion, arm or canary
    items: list[str]
    X: np.ndarray  # the shown items' logged feature rows
    clicked: np.ndarray  # bool per shown item
    scores: np.ndarray  # the serving version's scores of the shown items
    shadow: dict[str, np.ndarray] = field(default_factory=dict)  # shadow version -> its scores of the same items
    explored: list[bool] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)
    shuffled: bool = False  # shown in random order: positions say nothing about the serving version's scores
    partition: int = -1
    offset: int = -1

    @property
    def any_click(self) -> bool:
        return bool(self.clicked.any())

    def loss(self, scores: np.ndarray | None = None, *, exploited_only: bool = False) -> float:
        """Mean log loss of ``scores`` (default: the served ones) on the shown items' clicks.

        ``exploited_only``: only the positions the ranking filled (not the exploration slots).
        """
        import numpy as np

        p = np.clip(self.scores if scores is None else scores, _EPS, 1 - _EPS)
        y = self.clicked
        terms = np.where(y, np.log(p), np.log1p(-p))
        if exploited_only and any(self.explored):
            terms = terms[~np.asarray(self.explored, dtype=bool)]
        return float(-np.mean(terms)) if len(terms) else math.nan

    def rank_loss(self, scores: np.ndarray | None = None) -> float:
        """``1 - reciprocal rank`` of the clicked items among the shown ones, by ``scores``; NaN without a click.

        What a ranking version is judged on in shadow: scale-free, so a version whose scores are
        calibrated click rates and one whose scores are next-item odds compare on ordering alone.
        """
        import numpy as np

        s = self.scores if scores is None else scores
        if not self.clicked.any():
            return math.nan
        order = np.argsort(-np.asarray(s), kind="stable")
        ranks = np.empty(len(order), dtype=np.int64)
        ranks[order] = np.arange(1, len(order) + 1)
        return float(1.0 - np.mean(1.0 / ranks[self.clicked]))


class FeedbackJoin:
    """Impressions waiting for clicks; see the module docstring. Bounded: the oldest are emitted first."""

    def __init__(self, attribution_ms: int = 30_000, max_pending: int = 200_000) -> None:
        self.attribution_ms, self.max_pending = attribution_ms, max_pending
        self._pending: OrderedDict[str, tuple[dict[str, Any], int, int]] = OrderedDict()
        self._clicks: dict[str, set[str]] = {}
        self.orphan_clicks = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, record: dict[str, Any], partition: int = -1, offset: int = -1) -> None:
        """One record of the feedback topic (or a click event); anything else is ignored."""
        kind = record.get("type") or record.get("event_type")
        rid = record.get("request_id")
        if not isinstance(rid, str):
            return
        if kind == "impression":
            if record.get("degraded") or not record.get("features"):
                return  # a trending list: nothing a ranking version decided
            self._pending[rid] = (record, partition, offset)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
        elif kind in ("click", "purchase") and record.get("item_id") is not None:
            if rid in self._pending:
                self._clicks.setdefault(rid, set()).add(str(record["item_id"]))
            else:
                self.orphan_clicks += 1

    def due(self, now_ms: int) -> list[Labelled]:
        """The impressions whose attribution window closed by ``now_ms``, oldest first."""
        out = []
        while self._pending:
            rid, (record, partition, offset) = next(iter(self._pending.items()))
            served = int(record.get("served_at_ms") or 0)
            if now_ms - served < self.attribution_ms:
                break
            del self._pending[rid]
            out.append(_labelled(record, self._clicks.pop(rid, set()), partition, offset))
        return out


def _labelled(record: dict[str, Any], clicks: set[str], partition: int, offset: int) -> Labelled:
    import numpy as np

    items = [str(i) for i in record["items"]]
    shadow = {ref: np.asarray(s["scores"], dtype="float64") for ref, s in (record.get("shadow") or {}).items()
              if len(s.get("scores", ())) == len(items)}  # fmt: skip
    return Labelled(
        request_id=str(record["request_id"]), t_ms=int(record.get("served_at_ms") or 0),
        ref=str(record.get("model_version")), role=str(record.get("role") or "champion"), items=items,
        X=np.asarray(record["features"], dtype="float64"), clicked=np.array([i in clicks for i in items]),
        scores=np.asarray(record.get("scores") or [math.nan] * len(items), dtype="float64"), shadow=shadow,
        explored=list(record.get("explored") or [False] * len(items)),
        propensities=[float(p) for p in record.get("propensities") or [1.0] * len(items)],
        shuffled=bool(record.get("shuffled")),
        partition=partition, offset=offset,
    )  # fmt: skip
