"""One worker's loaded ranking versions, hot-swapped to the routing table's generation.

:meth:`ModelPool.sync` reads the table (:mod:`workbench.serving.routing`),
loads any version it does not hold yet *before* switching, then replaces one
reference -- ``(table, models)`` -- so a request in flight keeps the snapshot
it started with and no request ever sees a half-loaded version.

:meth:`ModelPool.rank` serves one request from a snapshot: the canary for its
share of traffic, otherwise the arm Thompson sampling picks among the arms
(the champion when it is alone); it scores the same candidates with every
shadow version, and fills the table's exploration slots with the contextual
bandit (:mod:`workbench.learning.exploration`), logging each shown item's
propensity.

Rewards are attributed by the worker that served the request: a click on a
shown item within ``attribution_s`` is a success of the served arm (and of
an explored slot); when the window closes without one, a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.recommender.ranking import FEATURES
from workbench.recommender.recommender import exploration_context
from workbench.serving.routing import RoutingStore, RoutingTable

if TYPE_CHECKING:
    from workbench.learning.bandits import ThompsonRouter
    from workbench.learning.exploration import LinearThompson
    from workbench.recommender.ranking import Session
    from workbench.recommender.recommender import Recommendations, Recommender

log = logging.getLogger(__name__)
EXPLORE_DIM = len(FEATURES) + 1  # the standardized ranking features and a bias


@dataclass
class _Served:
    ref: str
    role: str
    items: list[str]
    explored_x: dict[str, Any]  # explored item -> its exploration context row
    at: float
    clicked: set[str] = field(default_factory=set)


@dataclass
class Routed:
    """What the impression log records about routing for one request."""

    role: str
    generation: int
    shadow: dict[str, dict[str, Any]]
    shuffled: bool = False

    def record(self, out: Recommendations) -> dict[str, Any]:
        return {"role": self.role, "routing_generation": self.generation, "explored": out.explored,
                "shadow": self.shadow, "shuffled": self.shuffled}  # fmt: skip


class ModelPool:
    """See the module docstring. ``load`` maps a version ref to a Recommender (the model store by default)."""

    def __init__(self, service: str, initial: Recommender, *, store: RoutingStore | None = None,
                 router: ThompsonRouter | None = None, attribution_s: float = 30.0, load: Any = None,
                 attach: Any = None, seed: int | None = None) -> None:  # fmt: skip
        import numpy as np

        from workbench.learning.bandits import ThompsonRouter
        from workbench.learning.exploration import LinearThompson

        self.service, self.attribution_s = service, attribution_s
        self.store = store or RoutingStore()
        self.router = router or ThompsonRouter(f"serve:{service}", seed=seed)
        self.explorer: LinearThompson = LinearThompson(EXPLORE_DIM, seed=seed)
        self._load = load or _load_version
        self._attach = attach  # gives a loaded version its data sources (extra feature sets' online values)
        self._rng = np.random.default_rng(seed)
        self._sync_lock = threading.Lock()
        self._served: OrderedDict[str, _Served] = OrderedDict()
        self._served_lock = threading.Lock()
        table = self.store.read(service)
        if table.champion is None:  # a new service: the model it was started with is the champion
            table = self.store.change(service, initial.version, "champion", reason="service started with it")
        self.current: tuple[RoutingTable, dict[str, Recommender]] = (RoutingTable(), {initial.version: initial})
        self._apply(table)

    # -- routing generations -------------------------------------------------------------------------
    @property
    def champion(self) -> Recommender:
        table, models = self.current
        return models[table.champion or next(iter(models))]

    def sync(self) -> bool:
        """Pick up a newer routing generation; True when the worker switched."""
        if self.store.generation(self.service) == self.current[0].generation:
            return False
        return self._apply(self.store.read(self.service))

    def _apply(self, table: RoutingTable) -> bool:
        with self._sync_lock:
            old_table, old_models = self.current
            if table.generation <= old_table.generation and old_table.champion is not None:
                return False
            champion = old_models.get(old_table.champion or "") or next(iter(old_models.values()))
            models: dict[str, Recommender] = {}
            for ref in table.refs:  # load first: serving goes on from the old snapshot meanwhile
                rec = old_models.get(ref)
                if rec is None:
                    rec = self._load(ref)
                    rec.item_source = champion.item_source  # item features are the store's, shared
                    if self._attach is not None:
                        self._attach(rec)
                models[ref] = rec
            for arm in table.arms:
                self.router.add(arm)
            for arm in self.router.arms:
                if arm not in table.arms:
                    self.router.remove(arm)
            try:
                self.router.flush()  # read the stored posteriors back: a reset by another worker lands here
            except Exception as exc:  # the records database is away: this worker's posteriors catch up later
                log.warning("bandit posteriors not read back: %s", exc)
            self.current = (table, models)
        log.info("routing generation %d: champion %s, arms %s, canary %s, shadows %s", table.generation,
                 table.champion, table.arms, table.canary, table.shadows)  # fmt: skip
        return True

    # -- requests -------------------------------------------------------------------------------------
    def choose(self, table: RoutingTable) -> tuple[str, str]:
        """(version, role) for one request."""
        if table.canary is not None and self._rng.random() < table.canary_share:
            return table.canary, "canary"
        if len(table.arms) > 1:
            ref = self.router.choose()
            if ref in table.arms:
                return ref, "champion" if ref == table.champion else "arm"
        assert table.champion is not None
        return table.champion, "champion"

    def rank(self, session: Session, k: int, request_id: str) -> tuple[Recommendations, Routed]:
        import numpy as np

        table, models = self.current
        ref, role = self.choose(table)
        rec = models[ref]
        cands = rec.candidates(session)
        if cands is None:
            return rec.fallback(k, reason="unknown_session", exclude=session.items), Routed(role, table.generation, {})
        slots = min(table.explore_slots, max(k - 1, 0))
        out = rec.rank_candidates(cands, k, explorer=self.explorer if slots else None, n_explore=slots)
        shuffled = bool(table.shuffle_share) and self._rng.random() < table.shuffle_share
        if shuffled:
            _shuffle(out, self._rng.permutation(len(out.items)))
        shadow: dict[str, dict[str, Any]] = {}
        ids = rec.embeddings.ids
        for s_ref in table.shadows:
            other = models.get(s_ref)
            if other is None or other.embedding_version != rec.embedding_version:
                continue  # other candidates: a shadow scores only what it would rank from the same retrieval
            X = cands.X
            if other.ranker.features != rec.ranker.features:  # it reads other columns of the same candidates
                mine = other.candidates(session)
                if mine is None or len(mine.rows) != len(cands.rows):
                    continue
                X = mine.X
            scores = other.ranker.score(X)
            top = np.argsort(-scores, kind="stable")[:k]
            shadow[s_ref] = {"items": [str(i) for i in ids[cands.rows[top]]],
                             "scores": [float(x) for x in scores[out.shown]]}  # fmt: skip
        explored = {}
        if slots:
            context = exploration_context(rec.ranker, cands.X[out.shown])
            explored = {item: context[j] for j, item in enumerate(out.items) if out.explored[j]}
        self._remember(request_id, _Served(ref, role, list(out.items), explored, time.monotonic()))
        return out, Routed(role, table.generation, shadow, shuffled)

    # -- rewards --------------------------------------------------------------------------------------
    def _remember(self, request_id: str, served: _Served) -> None:
        with self._served_lock:
            self._served[request_id] = served

    def on_click(self, request_id: str, item_id: str) -> bool:
        """A click from the feedback stream; True when this worker served the request."""
        with self._served_lock:
            served = self._served.get(request_id)
            if served is None or item_id not in served.items:
                return False
            served.clicked.add(item_id)
        return True

    def settle(self, now: float | None = None) -> int:
        """Close the attribution window of requests served long enough ago; returns how many."""
        import numpy as np

        now = time.monotonic() if now is None else now
        due: list[_Served] = []
        with self._served_lock:
            while self._served:
                rid, served = next(iter(self._served.items()))
                if now - served.at < self.attribution_s:
                    break
                del self._served[rid]
                due.append(served)
        if not due:
            return 0
        arms = set(self.current[0].arms)
        for served in due:
            if served.ref in arms:
                self.router.update(served.ref, 1.0 if served.clicked else 0.0)
        rows = [(x, 1.0 if item in s.clicked else 0.0) for s in due for item, x in s.explored_x.items()]
        if rows:
            self.explorer.update_many(np.vstack([x for x, _ in rows]), [r for _, r in rows])
        return len(due)

    def close(self) -> None:
        self.settle(now=float("inf"))
        self.router.close()


def _shuffle(out: Recommendations, order: Any) -> None:
    """Show the same items in ``order``: positions no longer follow the serving version's scores."""
    for name in ("items", "scores", "propensities", "explored"):
        values = getattr(out, name)
        setattr(out, name, [values[j] for j in order])
    for name in ("features", "item_values", "shown"):
        values = getattr(out, name)
        if values is not None:
            setattr(out, name, values[order])


def _load_version(ref: str) -> Recommender:
    from workbench.models import parse_ref
    from workbench.recommender.artifacts import load

    name, version = parse_ref(ref)
    return load(version, ranking_name=name)
