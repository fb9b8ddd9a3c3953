"""Simulated shoppers against a running recommendation service, clicking by the simulator's ground truth.

Each visit is one session of the :class:`~workbench.streams.simulator.ShopSimulator`'s
world at wall-clock time: a user (by activity) views a few items of the
category they intend (by their taste at that time) through ``POST /events``,
asks ``GET /recommendations``, and clicks each shown item with the
simulator's TRUE click probability at its position; a click goes to
``POST /feedback``. A simulator with ``shift_at_ms`` changes tastes and
click propensities at that time, so a loop can be watched reacting to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from workbench.streams.simulator import ShopSimulator


@dataclass(frozen=True)
class Visit:
    request_id: str
    version: str
    items: list[str]
    clicked: str | None
    failed: bool = False


class Shoppers:
    """See the module docstring. ``visit()`` runs one session; ``run(n)`` runs ``n`` and counts them."""

    def __init__(self, sim: ShopSimulator, client: httpx.Client, *, k: int = 8, views: int = 2,
                 seed: int = 0) -> None:  # fmt: skip
        import numpy as np

        self.sim, self.client, self.k, self.views = sim, client, k, views
        self._rng = np.random.default_rng(seed)

    def _items(self, user: int, t_ms: int) -> list[str]:
        import numpy as np

        sim = self.sim
        taste = np.asarray(list(sim.taste(sim.user_ids[user], t_ms).values()))
        cat = int(self._rng.choice(len(taste), p=taste / taste.sum()))
        lo, hi = int(sim._cat_lo[cat]), int(sim._cat_hi[cat])
        idx = np.arange(lo, hi)
        w = np.exp(sim.log_popularity(t_ms, idx))
        pick = self._rng.choice(idx, size=min(self.views, len(idx)), replace=False, p=w / w.sum())
        return [sim.item_ids[int(i)] for i in pick]

    def visit(self, t_ms: int | None = None) -> Visit:
        import time

        import numpy as np

        t_ms = int(time.time() * 1000) if t_ms is None else t_ms
        sim = self.sim
        user = min(int(np.searchsorted(sim._activity_cdf, self._rng.random())), sim.n_users - 1)
        session = f"shopper-{uuid.uuid4().hex[:12]}"
        for item in self._items(user, t_ms):
            r = self.client.post("/events", json={"session_id": session, "item_id": item, "event_type": "view",
                                                  "user_id": sim.user_ids[user], "event_time_ms": t_ms})  # fmt: skip
            if r.status_code != 202:
                return Visit("", "", [], None, failed=True)
        r = self.client.get("/recommendations", params={"session_id": session, "k": self.k})
        if r.status_code != 200:
            return Visit("", "", [], None, failed=True)
        body = r.json()
        items = [i for i in body["items"] if i in sim._item_index]
        clicked = None
        if items and not body.get("degraded"):
            p = sim.click_probabilities([sim.user_ids[user]] * len(items), items, t_ms, np.arange(1, len(items) + 1))
            hits = np.flatnonzero(self._rng.random(len(items)) < p)
            if len(hits):
                clicked = items[int(hits[0])]
                self.client.post("/feedback", json={"request_id": body["request_id"], "item_id": clicked,
                                                    "session_id": session}).raise_for_status()  # fmt: skip
        return Visit(body["request_id"], body["model_version"], body["items"], clicked)

    def run(self, n: int) -> dict[str, Any]:
        """``n`` visits; lists, clicks and failures per served version."""
        out: dict[str, Any] = {"visits": 0, "failed": 0, "by_version": {}}
        for _ in range(n):
            v = self.visit()
            out["visits"] += 1
            if v.failed:
                out["failed"] += 1
                continue
            row = out["by_version"].setdefault(v.version, {"lists": 0, "clicks": 0})
            row["lists"] += 1
            row["clicks"] += v.clicked is not None
        return out
