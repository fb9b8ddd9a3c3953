"""A seeded shop simulator whose ground truth can be read back.

The generative model
--------------------
*Catalog.* ``n_items`` items in ``n_categories`` categories. Each category has a
centroid in a ``dim``-dimensional embedding space and a log-normal price level;
an item's vector is its centroid plus noise (unit norm) and its price is drawn
around the category level.

*Users.* Each user has a taste, a Dirichlet distribution over categories, and a
latent vector: the taste-weighted mix of centroids plus noise. The affinity of
a user and an item is ``2 * <user vector, item vector>`` (roughly in [-2, 2]).
Users differ in activity (log-normal, mean 1).

*Popularity.* Item log-popularity follows a seeded sinusoidal trend,
``base + amp * sin(2 pi t / period + phase)`` with periods of 3 to 30 days, on
absolute event time, so ``popularity(t)`` is defined at every instant.

*Sessions.* Sessions of all users arrive as a Poisson process (optionally with
a daily cycle); the user is drawn by activity. A session has an intent, a
category drawn from the user's taste. It holds a geometric number of views
(mean 6, at most 30), 30 s apart (log-normal). A view stays in the intent
category with probability 0.85 and otherwise drifts to a category drawn from
the taste. Within the category three candidates are drawn by popularity and
the one with the best ``affinity + Gumbel noise`` is viewed (a session samples
popularity as of the middle of the hour it starts in). A view is followed
by ``add_to_cart`` with probability ``sigmoid(-2.8 + 1.5 aff - 0.5 log(price/median))``
and a cart by ``purchase`` with ``sigmoid(-0.8 + aff - 0.4 log(price/median))``.

*Recommendations.* With probability ``impression_prob`` a session opens with a
list of ``impression_size`` items of the intent category, ranked by popularity
plus noise (``request_id``, ``position`` from 1, ``model_version="sim"``). Each
shown item is clicked with the true probability
``position ** -0.8 * sigmoid(-2.0 + 1.2 aff + 0.5 logpop [+ 1.0 if hot])``;
:meth:`ShopSimulator.click_probability` returns exactly this number.

*Shift.* When ``shift_at_ms`` is set, from that instant on: user vectors rotate
by 60 degrees toward a fixed random orthogonal map, tastes move 30% of their
mass to one "hot" category, the hot category's log-popularity gains +1.0 and
its click logit +1.0. :attr:`ShopSimulator.shift` describes it. Nothing before
``shift_at_ms`` changes: the event stream before it is identical to a run
without the shift.

*Clock.* Time is cut into fixed chunks aligned to the epoch; each chunk is
generated from its own seeded generator, so the simulated world is one
function of (seed, rate) and any span is a window on it. Ids are unique per
seed: ``s<seed>-<chunk>-<k>`` for sessions, ``<session>-<n>`` for events.

>>> sim = ShopSimulator(seed=1, n_users=200, n_items=300, n_categories=5)
>>> df = sim.frame(start_ms=1_700_000_000_000, duration_s=6 * 3600)
>>> len(df) > 100, bool(df["event_time_ms"].is_monotonic_increasing)
(True, True)
>>> first = next(sim.events(start_ms=1_700_000_000_000, duration_s=6 * 3600))
>>> first["event_id"] == df["event_id"].iloc[0]
True
>>> 0 < sim.click_probability("u3", "i7", 1_700_000_000_000, position=1) < 1
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# This module is only imported lazily (workbench.__getattr__, CLI command bodies).
import numpy as np  # noqa: TID253

if TYPE_CHECKING:
    import pandas as pd

Event = dict[str, Any]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_TYPES = ("view", "add_to_cart", "purchase", "impression", "click")
_VIEW, _CART, _BUY, _IMP, _CLICK = range(5)
_NAMES = ("books", "electronics", "toys", "garden", "kitchen", "sports", "beauty", "music", "games",
          "clothing", "shoes", "jewelry", "grocery", "pets", "baby", "tools", "auto", "office",
          "health", "movies")
# big enough that sessions spilling into later chunks stay a minority, small enough for a quick first event
_SESSIONS_PER_CHUNK = 20_000
_MEAN_VIEWS, _MAX_VIEWS, _DRIFT = 6.0, 30, 0.15
_POS_EXP, _CLICK_BIAS, _CLICK_AFF, _CLICK_POP, _HOT_CLICK, _HOT_POP = 0.8, -2.0, 1.2, 0.5, 1.0, 1.0
_ROTATION_DEG, _TASTE_TO_HOT = 60.0, 0.3


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Shift:
    """The scheduled distribution shift: what changes, from when."""

    at_ms: int
    hot_category: str
    taste_to_hot: float = _TASTE_TO_HOT
    rotation_deg: float = _ROTATION_DEG
    hot_popularity_boost: float = _HOT_POP
    hot_click_boost: float = _HOT_CLICK

    def describe(self) -> str:
        return (f"from {self.at_ms}: user vectors rotate {self.rotation_deg:.0f} deg, tastes move "
                f"{self.taste_to_hot:.0%} to {self.hot_category!r}, which gains +{self.hot_popularity_boost} "
                f"log-popularity and +{self.hot_click_boost} click logit")


class ShopSimulator:
    """Seeded shop clickstream with readable ground truth (see the module docstring).

    Ground truth, besides the methods: ``categories``, ``item_ids``, ``user_ids``;
    per item (index ``i`` of ``"i<i>"``) ``item_category``, ``price``,
    ``item_vectors``; per user ``tastes_before`` / ``tastes_after`` (rows over
    ``categories``) and ``user_vectors_before`` / ``user_vectors_after``;
    ``shift`` (a :class:`Shift` or None).

    >>> sim = ShopSimulator(seed=2, n_users=50, n_items=100, n_categories=4, shift_at_ms=86_400_000)
    >>> sim.shift.hot_category in sim.categories
    True
    >>> sim.taste("u0", 0) == sim.taste("u0", 86_400_000)
    False
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        n_users: int = 5000,
        n_items: int = 2000,
        n_categories: int = 20,
        dim: int = 8,
        sessions_per_user_per_day: float = 1.0,
        impression_prob: float = 0.3,
        impression_size: int = 8,
        diurnal_amplitude: float = 0.5,
        shift_at_ms: int | None = None,
    ) -> None:
        if min(n_users, n_categories, dim, impression_size) < 1 or n_items < n_categories:
            raise ValueError("need n_users, n_categories, dim, impression_size >= 1 and n_items >= n_categories")
        if not 0 <= diurnal_amplitude <= 1 or not 0 <= impression_prob <= 1:
            raise ValueError("diurnal_amplitude and impression_prob must be in [0, 1]")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if sessions_per_user_per_day <= 0:
            raise ValueError("sessions_per_user_per_day must be > 0")
        self.seed, self.n_users, self.n_items, self.n_categories = seed, n_users, n_items, n_categories
        self.sessions_per_user_per_day = sessions_per_user_per_day
        self.impression_prob, self.impression_size = impression_prob, impression_size
        self.diurnal_amplitude = diurnal_amplitude
        rng = np.random.default_rng([seed, 0])
        c = n_categories
        self.categories = [(_NAMES[k] if k < len(_NAMES) else f"category{k}") for k in range(c)]
        # Items are stored sorted by category so a category is a contiguous index range.
        sizes = 1 + rng.multinomial(n_items - c, rng.dirichlet(np.full(c, 5.0)))
        self._cat_lo = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._cat_hi = np.cumsum(sizes)
        self.item_category = np.repeat(np.arange(c), sizes)
        centroids = rng.normal(size=(c, dim))
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        vec = centroids[self.item_category] + 0.6 * rng.normal(size=(n_items, dim)) / math.sqrt(dim)
        self.item_vectors = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        level = rng.uniform(math.log(5), math.log(200), size=c)
        self.price = np.round(np.exp(level[self.item_category] + 0.4 * rng.normal(size=n_items)), 2) + 0.99
        self._log_rel_price = np.log(self.price / np.median(self.price))
        self._pop_base = 1.2 * rng.normal(size=n_items)
        self._pop_amp = rng.uniform(0.2, 1.0, size=n_items)
        self._pop_period_days = rng.uniform(3, 30, size=n_items)
        self._pop_phase = rng.uniform(0, 2 * math.pi, size=n_items)
        self.tastes_before = rng.dirichlet(np.full(c, 0.3), size=n_users)
        u = self.tastes_before @ centroids + 0.5 * rng.normal(size=(n_users, dim)) / math.sqrt(dim)
        self.user_vectors_before = 2.0 * u / np.linalg.norm(u, axis=1, keepdims=True)
        act = rng.lognormal(0.0, 1.0, size=n_users)
        self._activity_cdf = np.cumsum(act) / act.sum()
        # Shift parameters are always drawn so enabling the shift changes nothing else.
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        hot = int(rng.integers(c))
        self.shift = None if shift_at_ms is None else Shift(int(shift_at_ms), self.categories[hot])
        theta = math.radians(_ROTATION_DEG)
        ua = math.cos(theta) * self.user_vectors_before + math.sin(theta) * (self.user_vectors_before @ q)
        self.user_vectors_after = 2.0 * ua / np.linalg.norm(ua, axis=1, keepdims=True)
        self.tastes_after = (1 - _TASTE_TO_HOT) * self.tastes_before + _TASTE_TO_HOT * np.eye(c)[hot]
        self._hot = hot
        self.user_ids = [f"u{i}" for i in range(n_users)]
        self.item_ids = [f"i{i}" for i in range(n_items)]
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {u: i for i, u in enumerate(self.item_ids)}
        self._item_cat_names = [self.categories[k] for k in self.item_category.tolist()]
        self._prices = self.price.tolist()
        self._per_session: float | None = None

    # ---- ground truth -------------------------------------------------------------------------

    @property
    def catalog(self) -> pd.DataFrame:
        """item_id -> category, price."""
        import pandas as pd

        return pd.DataFrame({"category": self._item_cat_names, "price": self.price},
                            index=pd.Index(self.item_ids, name="item_id"))

    def _after(self, t_ms: Any) -> Any:
        t = np.asarray(t_ms, dtype=np.int64)
        return np.zeros(t.shape, bool) if self.shift is None else t >= self.shift.at_ms

    def log_popularity(self, t_ms: Any, items: Any = None) -> Any:
        """Unnormalised log-popularity at event time(s) ``t_ms``.

        With ``items`` (indices) it broadcasts elementwise; without, it adds a
        trailing catalog axis (all items).
        """
        t = np.asarray(t_ms, dtype=np.int64)
        if items is None:
            idx: Any = np.arange(self.n_items)
            t = t[..., None]
        else:
            idx = np.asarray(items)
        return self._log_popularity(t, idx, self._after(t))

    def _log_popularity(self, t: Any, idx: Any, after: Any) -> Any:
        phase = 2 * math.pi * (t / DAY_MS) / self._pop_period_days[idx] + self._pop_phase[idx]
        lp = self._pop_base[idx] + self._pop_amp[idx] * np.sin(phase)
        return lp + _HOT_POP * ((self.item_category[idx] == self._hot) & after)

    def popularity(self, t_ms: int, item_id: str | None = None) -> Any:
        """Popularity share at ``t_ms``: a float for one item, else a Series over the catalog summing to 1."""
        lp = self.log_popularity(t_ms)
        share = np.exp(lp - lp.max())
        share /= share.sum()
        if item_id is not None:
            return float(share[self._item_index[item_id]])
        import pandas as pd

        return pd.Series(share, index=pd.Index(self.item_ids, name="item_id"), name="popularity")

    def taste(self, user_id: str, t_ms: int | None = None) -> dict[str, float]:
        """The user's category distribution at ``t_ms`` (before any shift when None)."""
        u = self._user_index[user_id]
        after = t_ms is not None and bool(self._after(t_ms))
        row = (self.tastes_after if after else self.tastes_before)[u]
        return dict(zip(self.categories, row.tolist(), strict=True))

    def affinity(self, users: Any, items: Any, t_ms: Any) -> Any:
        """``2 <user vector, item vector>`` for user and item indices at event time(s)."""
        return np.sum(self._user_vectors(users, t_ms) * self.item_vectors[items], axis=-1)

    def _user_vectors(self, users: Any, t_ms: Any) -> Any:
        uv = self.user_vectors_before[users]
        after = np.broadcast_to(self._after(t_ms), np.shape(users))
        if after.any():
            uv = np.where(after[..., None], self.user_vectors_after[users], uv)
        return uv

    def _click_p(self, users: Any, items: Any, t_ms: Any, positions: Any) -> Any:
        logit = (_CLICK_BIAS + _CLICK_AFF * self.affinity(users, items, t_ms)
                 + _CLICK_POP * self.log_popularity(t_ms, items)
                 + _HOT_CLICK * ((self.item_category[items] == self._hot) & self._after(t_ms)))
        return np.asarray(positions, dtype=np.float64) ** -_POS_EXP * _sigmoid(logit)

    def click_probability(self, user_id: str, item_id: str, t_ms: int, position: int = 1) -> float:
        """The TRUE probability that ``user_id`` clicks ``item_id`` shown at ``position`` (from 1) at ``t_ms``."""
        if position < 1:
            raise ValueError("position starts at 1")
        u, i = self._user_index[user_id], self._item_index[item_id]
        return float(self._click_p(np.array(u), np.array(i), np.array(t_ms), np.array(position)))

    def click_probabilities(self, user_ids: Any, item_ids: Any, t_ms: Any, positions: Any = 1) -> Any:
        """Vectorised :meth:`click_probability` over equal-length (or broadcastable) sequences."""
        users = np.array([self._user_index[u] for u in np.atleast_1d(user_ids).tolist()])
        items = np.array([self._item_index[i] for i in np.atleast_1d(item_ids).tolist()])
        pos = np.asarray(positions)
        if (pos < 1).any():
            raise ValueError("position starts at 1")
        return self._click_p(users, items, np.asarray(t_ms, dtype=np.int64), pos)

    # ---- generation ---------------------------------------------------------------------------

    def _sessions_per_ms(self, events_per_s: float | None) -> float:
        if events_per_s is None:
            return self.n_users * self.sessions_per_user_per_day / DAY_MS
        return events_per_s / 1000.0 / self.events_per_session()

    def events_per_session(self) -> float:
        """Mean events per session, measured once on a calibration block (used to hit a target rate)."""
        if self._per_session is None:
            block = self._block(chunk=-1, chunk_ms=HOUR_MS, per_ms=4000 / HOUR_MS, diurnal=0.0)
            self._per_session = len(block["t"]) / max(1, len(np.unique(block["sess"])))
        return self._per_session

    def _block(self, chunk: int, chunk_ms: int, per_ms: float, diurnal: float) -> dict[str, Any]:
        """All events of the sessions that start in one chunk, unsorted, as arrays."""
        rng = np.random.default_rng([self.seed, 1, chunk_ms, chunk + 2**40])
        a = chunk * chunk_ms
        n = int(rng.poisson(per_ms * (1 + diurnal) * chunk_ms))
        t0 = a + np.sort(rng.integers(0, chunk_ms, size=n))
        if diurnal:
            # thinning: busier in the (UTC) evening, quiet at night
            keep = rng.random(n) * (1 + diurnal) < 1 + diurnal * np.sin(2 * math.pi * (t0 / DAY_MS - 0.5))
            t0 = t0[keep]
            n = len(t0)
        users = np.minimum(np.searchsorted(self._activity_cdf, rng.random(n)), self.n_users - 1)
        after = self._after(t0)
        tastes = self.tastes_before[users]
        if after.any():
            tastes = np.where(after[:, None], self.tastes_after[users], tastes)
        tcdf = np.cumsum(tastes, axis=1)
        intent = np.minimum((tcdf < rng.random(n)[:, None]).sum(1), self.n_categories - 1)
        # popularity per (hour, side of the shift): the trend is slow, and no session sees the shift early
        keys, bucket = np.unique((t0 // HOUR_MS) * 2 + after, return_inverse=True)
        mid = (keys // 2 * HOUR_MS + HOUR_MS // 2)[:, None]
        logpop = self._log_popularity(mid, np.arange(self.n_items), (keys % 2 == 1)[:, None])  # (H, items)
        # ---- views: intent walk with drift, best-of-3 candidates by affinity
        n_views = np.minimum(rng.geometric(1 / _MEAN_VIEWS, size=n), _MAX_VIEWS)
        vs = np.repeat(np.arange(n), n_views)
        nv = len(vs)
        cat = intent[vs]
        drift = rng.random(nv) < _DRIFT
        cat[drift] = np.minimum((tcdf[vs[drift]] < rng.random(int(drift.sum()))[:, None]).sum(1),
                                self.n_categories - 1)
        flat = np.cumsum(np.exp(logpop).ravel())
        row = bucket[vs] * self.n_items
        lo, hi = row + self._cat_lo[cat], row + self._cat_hi[cat]
        below = np.where(lo > 0, flat[np.maximum(lo - 1, 0)], 0.0)
        target = below[:, None] + rng.random((nv, 3)) * (flat[hi - 1] - below)[:, None]
        cand = np.clip(np.searchsorted(flat, target, side="right"), lo[:, None], hi[:, None] - 1) - row[:, None]
        uv = self._user_vectors(users, t0)
        aff3 = np.einsum("nd,nkd->nk", uv[vs], self.item_vectors[cand])
        pick = np.argmax(aff3 + rng.gumbel(size=(nv, 3)), axis=1)
        item = cand[np.arange(nv), pick]
        aff = aff3[np.arange(nv), pick]
        lrp = self._log_rel_price[item]
        cart = rng.random(nv) < _sigmoid(-2.8 + 1.5 * aff - 0.5 * lrp)
        buy = cart & (rng.random(nv) < _sigmoid(-0.8 + aff - 0.4 * lrp))
        qty = 1 + rng.poisson(0.3, size=nv)
        cart_delay = rng.integers(3_000, 20_000, size=nv)
        buy_delay = rng.integers(5_000, 40_000, size=nv)
        dwell = rng.lognormal(math.log(30_000), 0.8, size=nv).astype(np.int64)
        # the next view waits for this view's cart and purchase events
        step = np.maximum(dwell, np.where(cart, cart_delay + np.where(buy, buy_delay, 0) + 1_000, 0))
        # ---- impressions and clicks at the start of some sessions
        k = self.impression_size
        imp_s = np.flatnonzero(rng.random(n) < self.impression_prob)
        lead = np.where(np.isin(np.arange(n), imp_s), 2_000 + 500 * k + 15_000, 0)
        csum = np.cumsum(step)
        first = np.concatenate([[0], np.cumsum(n_views)[:-1]])
        view_t = t0[vs] + lead[vs] + (csum - step) - (csum - step)[first][vs]
        seq = np.arange(nv) - first[vs]
        width = int((self._cat_hi - self._cat_lo).max())
        pool = self._cat_lo[intent[imp_s]][:, None] + np.arange(width)[None, :]
        valid = pool < self._cat_hi[intent[imp_s]][:, None]
        pool = np.minimum(pool, self.n_items - 1)
        score = np.where(valid, logpop[bucket[imp_s][:, None], pool] + rng.gumbel(size=pool.shape), -np.inf)
        if width > k:  # only the top k matter; a partition is much cheaper than a full sort
            top = np.argpartition(-score, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, 1), axis=1), 1)
        else:
            order = np.argsort(-score, axis=1)
        shown = np.take_along_axis(pool, order, 1)
        ok = np.take_along_axis(score, order, 1) > -np.inf
        r_s = np.repeat(imp_s, ok.sum(1))
        r_item = shown[ok]
        r_pos = np.nonzero(ok)[1] + 1
        p = self._click_p(users[r_s], r_item, t0[r_s], r_pos)
        clicked = rng.random(len(r_s)) < p
        click_t = t0[r_s] + 1_000 + 500 * r_pos + rng.integers(0, 15_000, size=len(r_s))
        c_s = r_s[clicked]
        # ---- assemble: impressions, clicks, views, carts, purchases
        parts = [
            (_IMP, r_s, r_item, t0[r_s], r_pos - 1, r_pos, 0),
            (_CLICK, c_s, r_item[clicked], click_t[clicked], k + r_pos[clicked] - 1, r_pos[clicked], 0),
            (_VIEW, vs, item, view_t, 2 * k + 3 * seq, 0, 0),
            (_CART, vs[cart], item[cart], (view_t + cart_delay)[cart], 2 * k + 3 * seq[cart] + 1, 0, 0),
            (_BUY, vs[buy], item[buy], (view_t + cart_delay + buy_delay)[buy], 2 * k + 3 * seq[buy] + 2, 0,
             qty[buy]),
        ]
        out: dict[str, Any] = {}
        cols = ("etype", "sess", "item", "t", "seq", "pos", "qty")
        for j, name in enumerate(cols):
            vals = [np.broadcast_to(np.asarray(pt[j]), pt[1].shape) for pt in parts]
            out[name] = np.concatenate(vals).astype(np.int64)
        out["user"] = users[out["sess"]]
        out["start"] = t0[out["sess"]]
        out["chunk"] = np.full(len(out["t"]), chunk, dtype=np.int64)
        return out

    def _blocks(self, start_ms: int | None, duration_s: float, events_per_s: float | None,
                warmup_s: float) -> Iterator[dict[str, Any]]:
        """Event-time-ordered blocks for the span; sessions starting in [start - warmup, end)."""
        if duration_s < 0 or warmup_s < 0:
            raise ValueError("duration_s and warmup_s must be >= 0")
        if events_per_s is not None and events_per_s <= 0:
            raise ValueError("events_per_s must be > 0")
        end = int(time.time() * 1000) if start_ms is None else int(start_ms + duration_s * 1000)
        start = end - int(duration_s * 1000) if start_ms is None else int(start_ms)
        first_session = start - int(warmup_s * 1000)
        per_ms = self._sessions_per_ms(events_per_s)
        diurnal = 0.0 if events_per_s is not None else self.diurnal_amplitude
        chunk_ms = int(2 ** round(math.log2(max(1.0, _SESSIONS_PER_CHUNK / per_ms))))
        chunk_ms = min(max(chunk_ms, 16), 2**26)
        if end <= start:
            return
        pending: dict[str, Any] | None = None
        for c in range(first_session // chunk_ms, (end - 1) // chunk_ms + 1):
            b = self._block(c, chunk_ms, per_ms, diurnal)
            keep = (b["start"] >= first_session) & (b["start"] < end) & (b["t"] >= start) & (b["t"] < end)
            b = {k: v[keep] for k, v in b.items()}
            order = np.lexsort((b["seq"], b["sess"], b["t"]))
            b = {k: v[order] for k, v in b.items()}
            if pending is not None:
                # both runs are sorted and pending's chunks come first: a stable merge on time suffices
                b = {k: np.concatenate([pending[k], v]) for k, v in b.items()}
                order = np.argsort(b["t"], kind="stable")
                b = {k: v[order] for k, v in b.items()}
            # later chunks' sessions start at or after this boundary, so earlier events are final
            cut = int(np.searchsorted(b["t"], (c + 1) * chunk_ms))
            pending = {k: v[cut:] for k, v in b.items()}
            yield {k: v[:cut] for k, v in b.items()}
        if pending is not None:
            yield pending

    def events(self, start_ms: int | None = None, duration_s: float = 86_400.0, *,
               events_per_s: float | None = None, warmup_s: float = 0.0) -> Iterator[Event]:
        """Events with ``start_ms <= event_time_ms < start_ms + duration_s``, in event-time order.

        ``start_ms=None`` makes the span end now. ``events_per_s`` scales session
        arrivals so the expected event rate is that (and turns off the daily
        cycle); ``warmup_s`` also starts sessions before the span, so it opens with
        sessions already in progress instead of an empty shop.
        """
        etypes, uids, iids, cats, prices = _TYPES, self.user_ids, self.item_ids, self._item_cat_names, self._prices
        seed = self.seed
        for b in self._blocks(start_ms, duration_s, events_per_s, warmup_s):
            cols = (b[k].tolist() for k in ("t", "etype", "chunk", "sess", "seq", "user", "item", "pos", "qty"))
            for t, e, c, s, q, u, i, pos, qty in zip(*cols, strict=True):
                sid = f"s{seed}-{c}-{s}"
                ev = {"event_id": f"{sid}-{q}", "event_type": etypes[e], "event_time_ms": t, "user_id": uids[u],
                      "session_id": sid, "item_id": iids[i], "category": cats[i], "price": prices[i]}
                if pos:
                    ev["request_id"] = f"r{seed}-{c}-{s}"
                    ev["position"] = pos
                    ev["model_version"] = "sim"
                if qty:
                    ev["quantity"] = qty
                yield ev

    def frame(self, start_ms: int | None = None, duration_s: float = 86_400.0, *,
              events_per_s: float | None = None, warmup_s: float = 0.0) -> pd.DataFrame:
        """The same events as :meth:`events`, as a DataFrame typed like the schema."""
        import pandas as pd

        from workbench.streams.events import FIELDS

        blocks = list(self._blocks(start_ms, duration_s, events_per_s, warmup_s))
        b = {k: np.concatenate([x[k] for x in blocks]) for k in blocks[0]} if blocks else None
        if b is None or not len(b["t"]):
            return pd.DataFrame({k: pd.Series(dtype=spec[2]) for k, spec in FIELDS.items()})
        # build each session's id once, not once per event
        keys, inverse = np.unique(b["chunk"] * 2**24 + b["sess"], return_inverse=True)
        names = np.array([f"s{self.seed}-{k >> 24}-{k & 0xFFFFFF}" for k in keys.tolist()], dtype=object)
        sid = names[inverse.ravel()]
        shown, item = b["pos"] > 0, b["item"]
        request = np.full(len(sid), None, dtype=object)
        request[shown] = ["r" + x[1:] for x in sid[shown].tolist()]
        model = np.full(len(sid), None, dtype=object)
        model[shown] = "sim"
        df = pd.DataFrame({
            "event_id": [f"{s}-{q}" for s, q in zip(sid.tolist(), b["seq"].tolist(), strict=True)],
            "event_type": pd.Categorical.from_codes(b["etype"], categories=list(_TYPES)),
            "event_time_ms": b["t"].astype(np.int64),
            "user_id": np.asarray(self.user_ids, dtype=object)[b["user"]],
            "session_id": sid,
            "item_id": np.asarray(self.item_ids, dtype=object)[item],
            "category": pd.Categorical.from_codes(self.item_category[item], categories=self.categories),
            "price": self.price[item],
            "request_id": request,
            "position": pd.arrays.IntegerArray(b["pos"], mask=~shown),
            "model_version": model,
            "quantity": pd.arrays.IntegerArray(b["qty"], mask=b["qty"] == 0),
        })
        for name, spec in FIELDS.items():
            if spec[2] == "string":
                df[name] = df[name].astype("string")
        return df
