"""Thompson sampling over live model versions, with posteriors that survive a restart.

Each arm (a model version, e.g. ``"ranking@3"``) has a Beta posterior on its
click rate. :meth:`ThompsonRouter.choose` draws one rate per live arm and
routes the request to the highest draw, so an arm gets traffic in proportion
to the probability that it is the best. :meth:`ThompsonRouter.update` adds a
click (1) or no click (0) to the arm that served the request.

>>> router = ThompsonRouter("ranking", ["v1", "v2"], store=None, seed=0)
>>> for _ in range(400):
...     router.update("v1", 0.0)
...     router.update("v2", 1.0)
>>> router.choose()
'v2'
>>> round(router.probability_best()["v2"], 3)
1.0

Posteriors persist in the records database (``workbench.db``: SQLite under
``WORKBENCH_HOME`` or any SQLAlchemy URL). Updates are buffered and written as
*increments* (``alpha = alpha + d``), at most every ``flush_every_s`` and on
:meth:`ThompsonRouter.flush` / :meth:`ThompsonRouter.close`; each write reads
the totals back, so several service workers sharing one database converge on
the same posteriors instead of overwriting each other's counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy import Table

_GRID = 65  # Simpson points per arm for the P(best) integral; odd
_SPAN_SD = 8.0  # the integral covers the arm's posterior mean +- this many sd


class UnknownArmError(WorkbenchError):
    """An update or removal names an arm the router has never had."""


def probability_best(alpha: Any, beta: Any, *, draws: int | None = None, seed: int | None = None) -> np.ndarray:
    """P(arm k has the highest rate) for independent Beta(alpha, beta) posteriors, along the last axis.

    With ``draws=None`` the value is the integral ``int f_k(x) prod_{j != k} F_j(x) dx``
    (Simpson's rule, see :func:`probability_arm_best`), accurate to about
    1e-4; with ``draws`` it is a Monte Carlo estimate. Leading axes
    broadcast, so many bandits (e.g. simulation seeds) are done at once.

    >>> p = probability_best([[1, 1], [60, 40]], [[1, 1], [940, 960]])
    >>> p.round(3).tolist()
    [[0.5, 0.5], [0.981, 0.019]]
    >>> probability_best([60, 40], [940, 960], draws=200_000, seed=1).round(2).tolist()
    [0.98, 0.02]
    """
    import numpy as np

    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    if a.ndim == 0 or (a <= 0).any() or (b <= 0).any():
        raise WorkbenchError("probability_best needs arrays of positive alpha and beta, one per arm")
    if draws is not None:
        rng = np.random.default_rng(seed)
        x = rng.beta(a, b, size=(draws, *a.shape))
        winners = x.argmax(axis=-1)
        k = a.shape[-1]
        return np.stack([(winners == j).mean(axis=0) for j in range(k)], axis=-1)
    return np.stack([probability_arm_best(a, b, np.full(a.shape[:-1], j)) for j in range(a.shape[-1])], axis=-1)


def probability_arm_best(alpha: Any, beta: Any, arm: Any) -> np.ndarray:
    """P(``arm`` is the best) for one arm per leading row, by the integral of :func:`probability_best`.

    ``arm`` holds an index into the last axis for every leading position; the
    cost is one grid per row rather than one per arm, which is what a stopping
    rule on the leader needs. The grid spans where the integrand lives (the
    arm's mass, above every other arm's lower tail) with a step of at most half
    the narrowest posterior sd there, so a sharp CDF of a well-known arm is
    resolved too.
    """
    import numpy as np
    from scipy import special

    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    idx = np.asarray(arm, dtype=np.int64)[..., None]
    mean_all = a / (a + b)
    sd_all = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    k = a.shape[-1]
    rest = np.arange(k - 1) + (np.arange(k - 1) >= idx)  # the other arms' indices, per row
    ak, bk = np.take_along_axis(a, idx, -1)[..., 0], np.take_along_axis(b, idx, -1)[..., 0]
    mk, sk = np.take_along_axis(mean_all, idx, -1)[..., 0], np.take_along_axis(sd_all, idx, -1)[..., 0]
    ao, bo = np.take_along_axis(a, rest, -1), np.take_along_axis(b, rest, -1)
    mo, so = np.take_along_axis(mean_all, rest, -1), np.take_along_axis(sd_all, rest, -1)
    lo_o = (mo - _SPAN_SD * so).max(axis=-1, initial=0.0)  # below it some other arm is surely higher
    lo = np.clip(np.maximum(mk - _SPAN_SD * sk, lo_o), 0.0, 1.0)
    hi = np.clip(mk + _SPAN_SD * sk, 0.0, 1.0)
    hi = np.maximum(hi, lo)
    overlap = (mo + _SPAN_SD * so > lo[..., None]) & (mo - _SPAN_SD * so < hi[..., None])
    sd_min = np.minimum(sk, np.where(overlap, so, np.inf).min(axis=-1, initial=np.inf))
    steps = np.ceil((hi - lo) / np.maximum(sd_min / 2, 1e-12))
    n = int(min(max(float(steps.max(initial=0.0)), _GRID - 1), 4096))
    n += n % 2  # Simpson needs an even number of intervals
    u = np.linspace(0.0, 1.0, n + 1)
    x = np.clip(lo[..., None] + (hi - lo)[..., None] * u, 1e-300, 1.0 - 1e-16)  # (..., G)
    log_pdf = ((ak - 1)[..., None] * np.log(x) + (bk - 1)[..., None] * np.log1p(-x)
               - special.betaln(ak, bk)[..., None])
    others = special.betainc(ao[..., :, None], bo[..., :, None], x[..., None, :]).prod(axis=-2)
    f = np.exp(log_pdf) * others
    w = np.ones(n + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    h = (hi - lo) / n
    return np.asarray(np.clip((f * w).sum(axis=-1) * h / 3.0, 0.0, 1.0))


@dataclass
class _Arm:
    alpha: float  # as last read from the store (or the prior)
    beta: float
    pending_alpha: float = 0.0  # updates not yet written
    pending_beta: float = 0.0
    inflight_alpha: float = 0.0  # updates being written right now
    inflight_beta: float = 0.0
    active: bool = True

    def posterior(self) -> tuple[float, float]:
        return (self.alpha + self.pending_alpha + self.inflight_alpha,
                self.beta + self.pending_beta + self.inflight_beta)


class ThompsonRouter:
    """Beta-Bernoulli Thompson sampling among named arms; thread-safe; optionally persisted.

    ``store="default"`` persists to the records database of the current
    settings, a :class:`PosteriorStore` to that store, ``None`` keeps the
    posteriors in memory only. A router reopened with the same ``name`` finds
    its arms, their posteriors and which of them are live.
    """

    def __init__(self, name: str, arms: Iterable[str] = (), *, prior: tuple[float, float] = (1.0, 1.0),
                 store: PosteriorStore | str | None = "default", flush_every_s: float = 1.0,
                 seed: int | None = None) -> None:
        import numpy as np

        if min(prior) <= 0:
            raise WorkbenchError(f"a Beta prior needs positive parameters, not {prior}")
        self.name, self.prior, self.flush_every_s = name, (float(prior[0]), float(prior[1])), flush_every_s
        if isinstance(store, str) and store != "default":
            raise WorkbenchError(f"store must be 'default', a PosteriorStore or None, not {store!r}")
        self.store: PosteriorStore | None = PosteriorStore() if isinstance(store, str) else store
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._arms: dict[str, _Arm] = {}
        self._last_flush = time.monotonic()
        if self.store is not None:
            for arm, (a, b, active) in self.store.load(name).items():
                self._arms[arm] = _Arm(a, b, active=active)
        for arm in arms:
            self.add(arm)

    # -- arms ---------------------------------------------------------------
    @property
    def arms(self) -> list[str]:
        """The live arms, in the order they were added."""
        with self._lock:
            return [k for k, v in self._arms.items() if v.active]

    def add(self, arm: str, prior: tuple[float, float] | None = None) -> None:
        """Make ``arm`` live. A known arm keeps its posterior; a new one starts at ``prior``."""
        a, b = prior or self.prior
        if min(a, b) <= 0:
            raise WorkbenchError(f"a Beta prior needs positive parameters, not {(a, b)}")
        with self._lock:
            known = self._arms.get(arm)
            if known is not None:
                known.active = True
            else:
                self._arms[arm] = _Arm(float(a), float(b))
        if self.store is not None:
            self.store.upsert_arm(self.name, arm, float(a), float(b), active=True)

    def remove(self, arm: str) -> None:
        """Stop routing to ``arm``; its posterior is kept (late feedback still counts)."""
        with self._lock:
            if arm not in self._arms:
                raise UnknownArmError(f"router {self.name!r} has no arm {arm!r}")
            self._arms[arm].active = False
        if self.store is not None:
            self.store.set_active(self.name, arm, False)

    def posterior(self, arm: str) -> tuple[float, float]:
        """(alpha, beta) of ``arm``, including updates not yet written."""
        with self._lock:
            if arm not in self._arms:
                raise UnknownArmError(f"router {self.name!r} has no arm {arm!r}")
            return self._arms[arm].posterior()

    def posteriors(self) -> dict[str, tuple[float, float]]:
        """(alpha, beta) of every live arm."""
        with self._lock:
            return {k: v.posterior() for k, v in self._arms.items() if v.active}

    # -- routing ------------------------------------------------------------
    def choose(self) -> str:
        """The arm for one request: the highest of one posterior draw per live arm."""
        with self._lock:
            live = [(k, v.posterior()) for k, v in self._arms.items() if v.active]
            if not live:
                raise WorkbenchError(f"router {self.name!r} has no live arms; add a model version first")
            draws = self._rng.beta([p[0] for _, p in live], [p[1] for _, p in live])
        return live[int(draws.argmax())][0]

    def update(self, arm: str, reward: float) -> None:
        """Add one observed reward in [0, 1] (a click is 1) to ``arm``'s posterior."""
        self.update_many(arm, reward, 1)

    def update_many(self, arm: str, successes: float, trials: float) -> None:
        """Add ``successes`` out of ``trials`` (e.g. clicks out of impressions) to ``arm``."""
        if not 0 <= successes <= trials:
            raise WorkbenchError(f"need 0 <= successes <= trials, got {successes} of {trials}")
        with self._lock:
            state = self._arms.get(arm)
            if state is None:
                raise UnknownArmError(f"router {self.name!r} has no arm {arm!r}")
            state.pending_alpha += successes
            state.pending_beta += trials - successes
        if self.store is not None and time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush(wait=False)

    def reset(self, arms: Iterable[str] | None = None) -> None:
        """Start ``arms`` (default: every live arm) again from the prior, here and in the store.

        For a fair race when a new arm joins: an incumbent's long posterior says how it did
        before, and a lucky start of the newcomer would otherwise crown it within seconds.
        """
        with self._lock:
            chosen = [k for k, v in self._arms.items() if v.active] if arms is None else list(arms)
            for arm in chosen:
                state = self._arms.get(arm)
                if state is None:
                    raise UnknownArmError(f"router {self.name!r} has no arm {arm!r}")
                state.alpha, state.beta = self.prior
                state.pending_alpha = state.pending_beta = 0.0
        if self.store is not None:
            for arm in chosen:
                self.store.set_posterior(self.name, arm, *self.prior)

    def probability_best(self, draws: int = 20_000) -> dict[str, float]:
        """P(each live arm is the best), by Monte Carlo over ``draws`` posterior samples."""
        import numpy as np

        with self._lock:
            live = [(k, v.posterior()) for k, v in self._arms.items() if v.active]
            if not live:
                return {}
            x = self._rng.beta([p[0] for _, p in live], [p[1] for _, p in live], size=(draws, len(live)))
        share = np.bincount(x.argmax(axis=1), minlength=len(live)) / draws
        return {k: float(s) for (k, _), s in zip(live, share, strict=True)}

    # -- persistence --------------------------------------------------------
    def flush(self, wait: bool = True) -> None:
        """Write buffered updates as increments and read the totals back (other workers' too)."""
        if self.store is None:
            return
        if not self._flush_lock.acquire(blocking=wait):
            return  # another thread is writing; it will be picked up next time
        try:
            with self._lock:
                deltas = {}
                for k, v in self._arms.items():
                    v.inflight_alpha, v.inflight_beta = v.pending_alpha, v.pending_beta
                    v.pending_alpha = v.pending_beta = 0.0
                    if v.inflight_alpha or v.inflight_beta:
                        deltas[k] = (v.inflight_alpha, v.inflight_beta)
                self._last_flush = time.monotonic()
            try:
                totals = self.store.add(self.name, deltas, prior=self.prior)
            except Exception:
                with self._lock:  # keep the updates for the next attempt
                    for v in self._arms.values():
                        v.pending_alpha += v.inflight_alpha
                        v.pending_beta += v.inflight_beta
                        v.inflight_alpha = v.inflight_beta = 0.0
                raise
            with self._lock:
                for k, (a, b, active) in totals.items():
                    state = self._arms.setdefault(k, _Arm(a, b, active=active))
                    state.alpha, state.beta, state.active = a, b, active
                    state.inflight_alpha = state.inflight_beta = 0.0
        finally:
            self._flush_lock.release()

    def close(self) -> None:
        """Write what is buffered (call on service shutdown)."""
        self.flush()

    def __enter__(self) -> ThompsonRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        arms = ", ".join(f"{k}: Beta({a:g}, {b:g})" for k, (a, b) in self.posteriors().items())
        return f"ThompsonRouter({self.name!r}, {{{arms}}})"


@lru_cache(maxsize=1)
def _table() -> Table:
    from sqlalchemy import Boolean, Column, Float, MetaData, String, Table

    return Table(
        "bandit_posteriors", MetaData(),
        Column("router", String(200), primary_key=True),
        Column("arm", String(200), primary_key=True),
        Column("alpha", Float, nullable=False),
        Column("beta", Float, nullable=False),
        Column("active", Boolean, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
    )  # fmt: skip


class PosteriorStore:
    """Bandit posteriors in the records database (table ``bandit_posteriors``), one row per arm.

    >>> import tempfile, pathlib
    >>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'b.db'}"
    >>> with ThompsonRouter("demo", ["a"], store=PosteriorStore(url)) as r:
    ...     r.update_many("a", 3, 10)
    >>> ThompsonRouter("demo", store=PosteriorStore(url)).posterior("a")
    (4.0, 8.0)
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def _engine(self) -> Any:
        from workbench.db import ready

        return ready(_table().metadata, self.url)

    def load(self, router: str) -> dict[str, tuple[float, float, bool]]:
        t = _table()
        with self._engine().connect() as conn:
            rows = conn.execute(t.select().where(t.c.router == router).order_by(t.c.created_at))
            return {r.arm: (float(r.alpha), float(r.beta), bool(r.active)) for r in rows}

    def upsert_arm(self, router: str, arm: str, alpha: float, beta: float, *, active: bool) -> None:
        """Create the arm at its prior if it is new; otherwise only set it live or not."""
        t = _table()
        with self._engine().begin() as conn:
            where = (t.c.router == router) & (t.c.arm == arm)
            if conn.execute(t.update().where(where).values(active=active)).rowcount == 0:
                now = time.time()
                conn.execute(t.insert().values(router=router, arm=arm, alpha=alpha, beta=beta, active=active,
                                               created_at=now, updated_at=now))

    def set_posterior(self, router: str, arm: str, alpha: float, beta: float) -> None:
        t = _table()
        with self._engine().begin() as conn:
            conn.execute(t.update().where((t.c.router == router) & (t.c.arm == arm))
                         .values(alpha=alpha, beta=beta, updated_at=time.time()))  # fmt: skip

    def set_active(self, router: str, arm: str, active: bool) -> None:
        t = _table()
        with self._engine().begin() as conn:
            conn.execute(t.update().where((t.c.router == router) & (t.c.arm == arm)).values(active=active))

    def add(self, router: str, deltas: dict[str, tuple[float, float]],
            prior: tuple[float, float] = (1.0, 1.0)) -> dict[str, tuple[float, float, bool]]:
        """Add increments in one transaction and return every arm's totals after it."""
        t = _table()
        now = time.time()
        with self._engine().begin() as conn:
            for arm, (da, db_) in deltas.items():
                where = (t.c.router == router) & (t.c.arm == arm)
                done = conn.execute(t.update().where(where).values(
                    alpha=t.c.alpha + da, beta=t.c.beta + db_, updated_at=now)).rowcount
                if done == 0:  # written by a router whose arm row was never created
                    conn.execute(t.insert().values(router=router, arm=arm, alpha=prior[0] + da,
                                                   beta=prior[1] + db_, active=True, created_at=now,
                                                   updated_at=now))
            rows = conn.execute(t.select().where(t.c.router == router).order_by(t.c.created_at))
            return {r.arm: (float(r.alpha), float(r.beta), bool(r.active)) for r in rows}

    def delete(self, router: str) -> None:
        """Forget a router's arms and posteriors."""
        t = _table()
        with self._engine().begin() as conn:
            conn.execute(t.delete().where(t.c.router == router))
