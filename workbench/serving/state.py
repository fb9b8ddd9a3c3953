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
        if self._reader is not None:
            self._reader.close()


class OnlineItemFeatures:
    """The item feature matrix (``ITEM_COLUMNS`` order) from the online store, rows reused for ``ttl_s`` seconds.

    Rows live in one numpy matrix, so a request of 200 candidates is a
    gather plus one pipelined read of the rows that are missing or too old.
    """

    def __init__(self, reader: LazyReader, ttl_s: float, capacity: int = 1 << 16) -> None:
        import numpy as np

        self.reader, self.ttl_s, self.capacity = reader, ttl_s, capacity
        self._pos: dict[str, int] = {}
        self._matrix = np.full((1024, len(ITEM_COLUMNS)), np.nan)
        self._fetched = np.full(1024, -np.inf)
        self._lock = threading.Lock()

    def lookup(self, items: Sequence[str], now_ms: int) -> np.ndarray:
        import numpy as np

        now = time.monotonic()
        with self._lock:
            pos = np.fromiter((self._slot(i) for i in items), dtype="int64", count=len(items))
            stale = np.flatnonzero(now - self._fetched[pos] >= self.ttl_s)
        if len(stale):
            rows = self.reader.get_many([{"item_id": items[int(j)]} for j in stale])
            values = np.array([[math.nan if r.get(c) is None else float(r[c]) for c in ITEM_COLUMNS] for r in rows],
                              dtype="float64").reshape(len(stale), len(ITEM_COLUMNS))  # fmt: skip
            with self._lock:
                self._matrix[pos[stale]] = values
                self._fetched[pos[stale]] = now
        return np.asarray(self._matrix[pos])

    def _slot(self, item: str) -> int:
        import numpy as np

        slot = self._pos.get(item)
        if slot is None:
            if len(self._pos) >= self.capacity:  # a catalog far larger than the cache: start over
                self._pos.clear()
                self._fetched[:] = -np.inf
            slot = self._pos[item] = len(self._pos)
            if slot >= len(self._fetched):
                grow = len(self._fetched)
                self._matrix = np.vstack([self._matrix, np.full((grow, len(ITEM_COLUMNS)), np.nan)])
                self._fetched = np.concatenate([self._fetched, np.full(grow, -np.inf)])
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
        self.rec = recommender
        self.sessions = LazyReader(config.session_set, config.env, config.retry_s)
        self.item_reader = LazyReader(config.item_set, config.env, config.retry_s)
        self.rec.item_source = OnlineItemFeatures(self.item_reader, config.item_cache_ttl_s)
        self.trending = Trending(self.rec.popular)
        self.metrics = Metrics()
        self.recent_sessions = Bounded(10_000)  # fallback only, see the module docstring
        self.impressions = Bounded(50_000)  # request id -> (shown items, their feature rows), to learn from feedback
        self.labelled: set[str] = set()
        self._stop = threading.Event()
        self.consumer_ready = threading.Event()
        self._consumer_thread: threading.Thread | None = None
        from workbench.streams.kafka import producer

        self.producer = producer(s, **{"linger.ms": 20, "queue.buffering.max.messages": 200_000})
        self.kafka_ok = True

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

    def stop(self) -> None:
        self._stop.set()
        if self._consumer_thread is not None:
            self._consumer_thread.join(timeout=10)
        self.producer.flush(5)
        self.sessions.close()
        self.item_reader.close()

    # -- requests -------------------------------------------------------------------------------
    def produce(self, topic: str, key: str, value: dict[str, Any]) -> None:
        import orjson

        try:
            payload = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
            self.producer.produce(topic, key=key.encode(), value=payload)
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
            out = self.rec.rank(session, k)
        except errors:
            return self._fallback(k, "feature_store_unreachable", True, session_id, items), {}
        if out.reason:  # no session item is in the embedding: trending instead of the model's old list
            return self._fallback(k, out.reason, False, session_id, items), {}
        if row is None:
            out.reason = "session_from_process_cache"
        return out, {"session_row": row, "now_ms": now_ms}

    def _fallback(self, k: int, reason: str, degraded: bool, session_id: str,
                  exclude: Sequence[str] = ()) -> Recommendations:  # fmt: skip
        self.metrics.fallback.labels(reason=reason).inc()
        return self.rec.fallback(k, reason=reason, exclude=exclude, degraded=degraded,
                                 popular=self.trending.top(k + len(exclude), exclude))  # fmt: skip

    def log_impression(self, request_id: str, session_id: str, out: Recommendations, ctx: dict[str, Any]) -> None:
        served = served_values(self.config.session_set, self.sessions.version, session_id, ctx.get("session_row"),
                               self.config.item_set, self.item_reader.version, out.items, out.item_values)  # fmt: skip
        record = impression_record(request_id, session_id, ctx.get("now_ms") or int(time.time() * 1000), out, served)
        self.produce(self.config.feedback_topic, session_id, record)
        self.metrics.impressions.inc()

    def remember_event(self, session_id: str, item_id: str, event_time_ms: int) -> None:
        items, _ = self.recent_sessions.get(session_id, ([], None))
        items = [i for i in items if i != item_id] + [item_id]
        self.recent_sessions.put(session_id, (items[-10:], event_time_ms))

    # -- learning from feedback ------------------------------------------------------------------
    def on_impression(self, record: dict[str, Any]) -> None:
        if record.get("features"):
            self.impressions.put(record["request_id"], (record["items"], record["features"]))

    def on_feedback(self, request_id: str, item_id: str) -> bool:
        """Learn from a click on a shown item: it is a positive, the other shown items negatives (once per list)."""
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
        self.rec.learn(rows, labels)
        self.metrics.learned.inc(len(rows))
        return True
