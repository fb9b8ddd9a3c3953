"""What one service worker holds: the model, the online-store readers, Kafka clients, trending items.

Nothing about a session lives here: a session's items are read from the
streaming session feature in the online store at every request. The one
exception is a small fallback: events posted to *this* process are
remembered briefly, and used only while the store has no row yet for that
session (the feature job has not caught up).

Feedback is learned from the Kafka topic ``feedback`` (and clicks on the
events topic that carry a ``request_id``): every worker consumes it, so
every worker applies the same updates in the same order.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.recommender.ranking import FEATURES, ITEM_COLUMNS, Session

if TYPE_CHECKING:
    import numpy as np

    from workbench.recommender.recommender import Recommendations, Recommender

log = logging.getLogger(__name__)
CONFIG_ENV = "WBSERVE_CONFIG"  # not WORKBENCH_*: the settings object refuses unknown names there


@dataclass
class ServiceConfig:
    model: str = "latest"  # ranking version: a number, "latest" or an alias
    model_uri: str | None = None  # the model store (default: the settings' one)
    session_set: str = "rec_session"
    item_set: str = "items"
    env: str | None = None  # feature store profile: local (SQLite) or production (Redis)
    events_topic: str | None = None
    feedback_topic: str = "feedback"
    consume: bool = True
    item_cache_ttl_s: float = 1.0
    max_body_bytes: int = 64 * 1024
    max_k: int = 100
    retry_s: float = 1.0  # how often an unreachable store is tried again
    refresh_s: float = 5.0  # how often the readers re-check the registry (promotion, rollback)
    service: str = "recommender"  # the routing table's and the bandit's name (shared by the workers)
    attribution_s: float = 30.0  # a click this long after the list still counts for its model and slots
    routing_poll_s: float = 0.5  # how often a worker checks for a new routing generation
    learn_online: bool = True  # every loaded version learns from feedback (off: versions change only by the loop)
    token_file: str | None = None  # the admin token (default: <home>/serve.token, created on first use)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_env() -> ServiceConfig:
        raw = os.environ.get(CONFIG_ENV)
        return ServiceConfig(**json.loads(raw)) if raw else ServiceConfig()


def store_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable or unprepared online store raises on a read."""
    from workbench.errors import WorkbenchError

    errors: list[type[BaseException]] = [WorkbenchError, OSError, ConnectionError, TimeoutError, LookupError]
    try:
        import redis

        errors.append(redis.RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency of the production profile
        pass
    return tuple(errors)


class LazyReader:
    """An OnlineReader opened on first use and re-opened after a failure, at most every ``retry_s``."""

    def __init__(self, service: str, env: str | None, retry_s: float) -> None:
        self.service, self.env, self.retry_s = service, env, retry_s
        self._reader: Any = None
        self._next_try = 0.0
        self._lock = threading.Lock()
        self.error: str | None = None
        self.closed = False

    def _open(self) -> Any:
        reader = self._reader
        if reader is not None:
            return reader
        with self._lock:
            if self._reader is None:
                if time.monotonic() < self._next_try:
                    raise ConnectionError(f"online store unavailable: {self.error}")
                from workbench.promote.reader import OnlineReader

                try:
                    # no registry checks on the request path: ServiceState refreshes readers in the background
                    self._reader = OnlineReader(self.service, env=self.env, refresh_s=None)
                    self.error = None
                except Exception as exc:
                    self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    self._next_try = time.monotonic() + self.retry_s
                    raise
            return self._reader

    def get(self, entity: dict[str, Any]) -> dict[str, Any]:
        return self._guard(lambda r: r.get(entity))  # type: ignore[no-any-return]

    def get_many(self, entities: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._guard(lambda r: r.get_many(entities))  # type: ignore[no-any-return]

    def get_many_values(self, entities: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
        return self._guard(lambda r: r.get_many_values(entities))  # type: ignore[no-any-return]

    def _guard(self, call: Any) -> Any:
        reader = self._open()
        try:
            return call(reader)
        except store_errors() as exc:
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise

    @property
    def version(self) -> str | None:
        return None if self._reader is None else self._reader.version

    def refresh(self) -> None:
        """Pick up a promotion or rollback of the set (a re-pointed FeatureService)."""
        if self._reader is not None:
            self._reader.refresh()

    def close(self) -> None:
        self.closed = True
        if self._reader is not None:
            self._reader.close()


_MIN_REFRESH_TTL_S = 0.2  # below this, requests read their rows themselves (no background loop)


class OnlineItemFeatures:
    """The item feature matrix (``ITEM_COLUMNS`` order) from the online store, no row older than ``ttl_s`` seconds.

    Rows live in one numpy matrix, so a request of 200 candidates is a
    gather. Rows that requests keep using are re-read in the background
    every ``0.75 * ttl_s`` (one pipelined read of them all), so a request reads
    the store itself only for rows it has not used lately (one pipelined
    read of those); ``ttl_s=0`` reads every row at every request. The
    refresh loop ends when the reader is closed.
    """

    def __init__(self, reader: LazyReader, ttl_s: float, capacity: int = 1 << 16,
                 columns: Sequence[str] = ITEM_COLUMNS) -> None:  # fmt: skip
        import numpy as np

        self.reader, self.ttl_s, self.capacity = reader, ttl_s, capacity
        self.columns = tuple(columns)  # ITEM_COLUMNS; an extra ranking set's features otherwise
        self.idle_s = max(10.0 * ttl_s, 5.0)  # rows unused this long are no longer refreshed in the background
        self._pos: dict[str, int] = {}
        self._items: list[str] = []
        self._matrix = np.full((1024, len(self.columns)), np.nan)
        self._fetched = np.full(1024, -np.inf)
        self._used = np.full(1024, -np.inf)
        self._generation = 0  # bumped when slots are reassigned: a read begun before then is dropped
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def lookup(self, items: Sequence[str], now_ms: int) -> np.ndarray:
        import numpy as np

        now = time.monotonic()
        with self._lock:
            get = self._pos.get
            slots = [get(i) for i in items]
            if None in slots:
                slots = [self._slot(i) if s is None else s for i, s in zip(items, slots, strict=True)]
            pos = np.array(slots, dtype="int64")
            self._used[pos] = now
            stale = np.unique(pos[now - self._fetched[pos] >= self.ttl_s])
            stale_items = [self._items[s] for s in stale.tolist()]
            generation = self._generation
        if len(stale):
            self._read(stale, stale_items, now, generation)
        if self._refresher is None and self.ttl_s >= _MIN_REFRESH_TTL_S:
            self._start_refresher()
        return np.asarray(self._matrix[pos])

    def _read(self, slots: Any, items: Sequence[str], now: float, generation: int) -> None:
        import numpy as np

        names, rows = self.reader.get_many_values([{"item_id": i} for i in items])
        # the set's features in column order, a column the set lacks as None (NaN below)
        at = {n: j for j, n in enumerate(names)}
        cols = [at.get(c, len(names)) for c in self.columns]
        pick = operator.itemgetter(*cols)
        values = np.array([pick([*row, None]) for row in rows], dtype="float64").reshape(len(items), len(self.columns))
        with self._lock:
            if generation == self._generation:
                self._matrix[slots] = values
                self._fetched[slots] = now

    def _start_refresher(self) -> None:
        with self._lock:
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_loop, daemon=True, name="wb-item-rows")
                self._refresher.start()

    def _refresh_loop(self) -> None:
        import numpy as np

        # each pass reads every row at least `period` old (so every row in use, as passes are `period` apart):
        # rows stay younger than ttl_s unless a pass lags by a quarter of it, and then a request reads them itself
        period = 0.75 * self.ttl_s
        while not self.reader.closed:
            started = time.monotonic()
            with self._lock:
                n = len(self._items)
                due = np.flatnonzero((started - self._used[:n] < self.idle_s)
                                     & (started - self._fetched[:n] >= period))  # fmt: skip
                items = [self._items[int(s)] for s in due]
                generation = self._generation
            if len(due):
                try:
                    self._read(due, items, started, generation)
                except Exception as exc:  # the store is away: rows age out and requests read (and fail) themselves
                    log.debug("item rows not refreshed: %s", exc)
            time.sleep(max(period - (time.monotonic() - started), 0.01))

    def _slot(self, item: str) -> int:
        import numpy as np

        slot = self._pos.get(item)
        if slot is None:
            if len(self._pos) >= self.capacity:  # a catalog far larger than the cache: start over
                self._pos.clear()
                self._items.clear()
                self._fetched[:] = -np.inf
                self._used[:] = -np.inf
                self._generation += 1
            slot = self._pos[item] = len(self._pos)
            self._items.append(item)
            if slot >= len(self._fetched):
                grow = len(self._fetched)
                self._matrix = np.vstack([self._matrix, np.full((grow, len(self.columns)), np.nan)])
                self._fetched = np.concatenate([self._fetched, np.full(grow, -np.inf)])
                self._used = np.concatenate([self._used, np.full(grow, -np.inf)])
        return slot


class Trending:
    """Exponentially decayed view counts from the consumed events topic; the model's popular list until then."""

    def __init__(self, initial: Sequence[str], half_life_s: float = 3600.0) -> None:
        self.half_life_s = half_life_s
        self.scores: dict[str, float] = {item: 1e-6 * (len(initial) - j) for j, item in enumerate(initial)}
        self._t0 = time.time()
        self._top: list[str] = list(initial)
        self._top_at = 0.0
        self._lock = threading.Lock()

    def see(self, item: str, t_s: float | None = None) -> None:
        # scores grow as 2 ** (t / half-life) instead of decaying every entry
        w = math.pow(2.0, ((t_s or time.time()) - self._t0) / self.half_life_s)
        with self._lock:
            self.scores[item] = self.scores.get(item, 0.0) + w

    def top(self, k: int, exclude: Sequence[str] = ()) -> list[str]:
        now = time.monotonic()
        if now - self._top_at > 1.0:
            with self._lock:
                ranked = sorted(self.scores, key=self.scores.__getitem__, reverse=True)[:500]
            self._top, self._top_at = ranked, now
        seen = set(exclude)
        return [i for i in self._top if i not in seen][:k]


class Bounded(OrderedDict[str, Any]):
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


def parse_items(raw: Any) -> list[str]:
    """``session_items`` as the store holds it (JSON text of a list) -> a list of item ids.

    >>> parse_items('["i1","i2"]'), parse_items(None), parse_items(["a"])
    (['i1', 'i2'], [], ['a'])
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = json.loads(raw)
    return [str(x) for x in raw]


def impression_record(request_id: str, session_id: str, served_at_ms: int, out: Recommendations,
                      served: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """What the ``feedback`` topic gets for each list shown: enough to train on it later.

    Arrays stay numpy (float32 for the feature rows) and are encoded by orjson directly.
    """
    import numpy as np

    feats = out.features
    return {
        "type": "impression", "request_id": request_id, "session_id": session_id, "served_at_ms": served_at_ms,
        "model_version": out.model_version, "degraded": out.degraded, "reason": out.reason,
        "items": out.items, "scores": out.scores, "positions": list(range(1, len(out.items) + 1)),
        "propensities": out.propensities, "candidates": out.candidates, "feature_names": FEATURES,
        "features": [] if feats is None else np.ascontiguousarray(feats, dtype="float32"),
        "served": served,
    }  # fmt: skip


def served_values(session_set: str, session_version: str | None, session_id: str, session_row: dict[str, Any] | None,
                  item_set: str, item_version: str | None, items: list[str],
                  item_values: Any) -> list[dict[str, Any]]:  # fmt: skip
    """The raw online values a request read, as one table per feature set: what the skew check compares.

    Each table is ``{"set", "version", "entity", "columns", "keys", "rows"}``; NaN in a row is a missing value.
    """
    served: list[dict[str, Any]] = []
    if session_row is not None:
        columns = [k for k in session_row if k != "session_id"]
        served.append({"set": session_set, "version": session_version, "entity": "session_id", "columns": columns,
                       "keys": [session_id], "rows": [[session_row[c] for c in columns]]})  # fmt: skip
    if item_values is not None and len(items):
        served.append({"set": item_set, "version": item_version, "entity": "item_id", "columns": ITEM_COLUMNS,
                       "keys": items, "rows": item_values})  # fmt: skip
    return served


class ServiceState:
    """One worker's model, readers and Kafka clients; see the module docstring."""

    def __init__(self, config: ServiceConfig, recommender: Recommender | None = None) -> None:
        from workbench.config import settings
        from workbench.serving.metrics import Metrics

        self.config = config
        s = settings()
        self.events_topic = config.events_topic or s.events_topic
        if recommender is None:
            from workbench.recommender.artifacts import load

            recommender = load(config.model, uri=config.model_uri)
        self.sessions = LazyReader(config.session_set, config.env, config.retry_s)
        self.item_reader = LazyReader(config.item_set, config.env, config.retry_s)
        recommender.item_source = OnlineItemFeatures(self.item_reader, config.item_cache_ttl_s)
        from workbench.serving.pool import ModelPool

        self._extra: dict[str, OnlineItemFeatures] = {}
        self._attach(recommender)
        self.pool = ModelPool(config.service, recommender, attribution_s=config.attribution_s, attach=self._attach)
        self.trending = Trending(self.rec.popular)
        self.metrics = Metrics()
        self.recent_sessions = Bounded(10_000)  # fallback only, see the module docstring
        # request id -> (shown items, their feature rows), to learn from feedback: ~8 KB each, kept for
        # clicks within about a minute at 300 rps; nothing is kept when the versions do not learn online
        self.impressions = Bounded(20_000)
        self.labelled: set[str] = set()
        self._stop = threading.Event()
        self.consumer_ready = threading.Event()
        self._consumer_thread: threading.Thread | None = None
        from workbench.streams.kafka import producer

        self.producer = producer(s, **{"linger.ms": 20, "queue.buffering.max.messages": 200_000})
        self.kafka_ok = True

    def _attach(self, rec: Recommender) -> None:
        """Online values of the extra feature sets a version ranks on (``promote --to-model``), one reader per set."""
        for name, columns in rec.extra_sets.items():
            source = self._extra.get(name)
            if source is None or source.columns != tuple(columns):
                reader = LazyReader(name, self.config.env, self.config.retry_s)
                source = self._extra[name] = OnlineItemFeatures(reader, self.config.item_cache_ttl_s, columns=columns)
            rec.extra_sources[name] = source

    @property
    def rec(self) -> Recommender:
        """The champion version (what fallbacks and /health name)."""
        return self.pool.champion

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        from workbench.streams.kafka import ensure_topic

        for reader in (self.sessions, self.item_reader):  # open Feast's registry now, not on a first request
            try:
                reader._open()
            except Exception as exc:  # unreachable now: requests are degraded until a retry succeeds
                log.warning("online store not ready at start: %s", exc)
        try:
            ensure_topic(self.config.feedback_topic)
        except Exception as exc:  # Kafka down at start: serving goes on, logging resumes when it is back
            self.kafka_ok = False
            log.warning("feedback topic not ensured: %s", exc)
        threading.Thread(target=self._refresh_loop, daemon=True, name="wb-serve-refresh").start()
        threading.Thread(target=self._routing_loop, daemon=True, name="wb-serve-routing").start()
        if self.config.consume:
            from workbench.serving.consume import consume_loop

            self._consumer_thread = threading.Thread(target=consume_loop, args=(self, self._stop), daemon=True,
                                                     name="wb-serve-consumer")  # fmt: skip
            self._consumer_thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.config.refresh_s):
            for reader in (self.sessions, self.item_reader):
                try:
                    reader.refresh()
                except Exception as exc:  # the registry is away for a moment: keep the current plan
                    log.debug("reader refresh failed: %s", exc)

    def _routing_loop(self) -> None:
        while not self._stop.wait(self.config.routing_poll_s):
            try:
                self.pool.sync()
            except Exception as exc:  # the records database or a version is away: keep serving this generation
                log.warning("routing sync failed: %s", exc)
            try:
                self.pool.settle()
            except Exception as exc:
                log.warning("reward attribution failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._consumer_thread is not None:
            self._consumer_thread.join(timeout=10)
        self.producer.flush(5)
        try:
            self.pool.close()
        except Exception as exc:  # posteriors are flushed as increments; what is lost here is a few rewards
            log.warning("bandit posteriors not flushed: %s", exc)
        self.sessions.close()
        self.item_reader.close()
        for source in self._extra.values():
            source.reader.close()

    # -- requests -------------------------------------------------------------------------------
    def produce(self, topic: str, key: str, value: dict[str, Any],
                headers: list[tuple[str, bytes]] | None = None) -> None:  # fmt: skip
        import orjson

        try:
            payload = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
            self.producer.produce(topic, key=key.encode(), value=payload, headers=headers)
            self.producer.poll(0)
        except BufferError:
            self.metrics.dropped.inc()  # the local queue is full: Kafka is away for a while
            self.producer.poll(0)

    def recommend(self, session_id: str, k: int, request_id: str) -> tuple[Recommendations, dict[str, Any]]:
        """The ranked list for a session; trending (degraded when the store is unreachable) otherwise."""
        now_ms = int(time.time() * 1000)
        errors = store_errors()
        try:
            row: dict[str, Any] | None = self.sessions.get({"session_id": session_id})
        except errors:
            return self._fallback(k, "feature_store_unreachable", True, session_id), {}
        assert row is not None
        items = parse_items(row.get("session_items"))
        last = row.get("session_last_event_ms")
        if not items:
            row = None
            cached = self.recent_sessions.get(session_id)
            if cached is None:
                return self._fallback(k, "unknown_session", False, session_id), {}
            items, last = cached[0][-10:], cached[1]
        session = Session(items, None if last is None else int(last), now_ms)
        try:
            out, routed = self.pool.rank(session, k, request_id)
        except errors:
            return self._fallback(k, "feature_store_unreachable", True, session_id, items), {}
        if out.reason:  # no session item is in the embedding: trending instead of the model's old list
            return self._fallback(k, out.reason, False, session_id, items), {}
        if row is None:
            out.reason = "session_from_process_cache"
        self.metrics.routed.labels(role=routed.role).inc()
        return out, {"session_row": row, "now_ms": now_ms, "routing": routed.record(out)}

    def _fallback(self, k: int, reason: str, degraded: bool, session_id: str,
                  exclude: Sequence[str] = ()) -> Recommendations:  # fmt: skip
        self.metrics.fallback.labels(reason=reason).inc()
        return self.rec.fallback(k, reason=reason, exclude=exclude, degraded=degraded,
                                 popular=self.trending.top(k + len(exclude), exclude))  # fmt: skip

    def log_impression(self, request_id: str, session_id: str, out: Recommendations, ctx: dict[str, Any]) -> None:
        served = served_values(self.config.session_set, self.sessions.version, session_id, ctx.get("session_row"),
                               self.config.item_set, self.item_reader.version, out.items, out.item_values)  # fmt: skip
        record = impression_record(request_id, session_id, ctx.get("now_ms") or int(time.time() * 1000), out, served)
        record.update(ctx.get("routing") or {})
        from workbench.serving.consume import impression_headers

        learnable = out.features is not None and len(out.features) > 0
        self.produce(self.config.feedback_topic, session_id, record, impression_headers(request_id, learnable))
        self.metrics.impressions.inc()

    def remember_event(self, session_id: str, item_id: str, event_time_ms: int) -> None:
        items, _ = self.recent_sessions.get(session_id, ([], None))
        items = [i for i in items if i != item_id] + [item_id]
        self.recent_sessions.put(session_id, (items[-10:], event_time_ms))

    # -- learning from feedback ------------------------------------------------------------------
    def on_impression(self, request_id: str, raw: bytes) -> None:
        """Keep a learnable impression's encoded record until feedback for it comes (or it is forgotten).

        Kept encoded: most impressions never get a click, and tens of thousands of parsed
        records would be millions of objects for every full garbage collection to walk.
        """
        from workbench.serving.consume import KeptImpression

        if self.config.learn_online:
            self.impressions.put(request_id, KeptImpression(raw))

    def on_feedback(self, request_id: str, item_id: str) -> bool:
        """Learn from a click on a shown item: it is a positive, the other shown items negatives (once per list)."""
        self.pool.on_click(request_id, item_id)
        shown = self.impressions.get(request_id)
        if shown is None:
            return False
        items, feats = shown
        if item_id not in items:
            return False
        if request_id in self.labelled:
            rows, labels = [feats[items.index(item_id)]], [True]
        else:
            self.labelled.add(request_id)
            if len(self.labelled) > 100_000:
                self.labelled.clear()
            rows, labels = feats, [i == item_id for i in items]
        if self.config.learn_online:
            for rec in self.pool.current[1].values():
                rec.learn(rows, labels)
            self.metrics.learned.inc(len(rows))
        return True
