"""The stream sampler behind the sidebar: watermarks, rates, consumer lag, DLQ counts.

It only reads broker metadata (topic list, watermark offsets, committed group
offsets) through the admin client. It never joins a consumer group and never
commits, so watching a topic cannot disturb the jobs that consume it.

The sampler thread starts on the first request and stops after
``idle_stop_s`` without one: a closed sidebar costs the broker nothing.

>>> rate_per_s(prev=(10.0, 100), now=(12.0, 160))
30.0
>>> rate_per_s(prev=None, now=(12.0, 160)) is None
True
>>> lag_of({("t", 0): 7, ("t", 1): 5}, {("t", 0): 10, ("t", 1): 5})
{'t': 3}
>>> is_internal("changelog__features--events--default"), is_internal("events")
(True, False)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.config import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

DLQ_SUFFIX = ".dlq"
# quixstreams' state changelogs and repartition topics: the sidebar hides them until searched for.
INTERNAL_PREFIXES = ("changelog__", "repartition__")
# Groups librdkafka needs for assign()-only readers (taps); they never commit.
_IGNORED_GROUPS = frozenset({"workbench-unused"})
_MAX_GROUPS = 200  # one request per group; bounded so a busy cluster stays cheap

Partition = tuple[str, int]


def rate_per_s(prev: tuple[float, int] | None, now: tuple[float, int]) -> float | None:
    """Messages per second between two ``(monotonic time, summed high watermark)`` samples."""
    if prev is None or now[0] <= prev[0]:
        return None
    # A recreated topic restarts at 0; a negative rate would only confuse.
    return max(0.0, (now[1] - prev[1]) / (now[0] - prev[0]))


def lag_of(committed: dict[Partition, int], highs: dict[Partition, int]) -> dict[str, int]:
    """Summed lag per topic of one group: high watermark minus committed offset."""
    out: dict[str, int] = {}
    for tp, offset in committed.items():
        high = highs.get(tp)
        if high is None or offset < 0:
            continue  # a partition the group never committed, or a topic that is gone
        out[tp[0]] = out.get(tp[0], 0) + max(0, high - offset)
    return out


def is_internal(topic: str) -> bool:
    """True for topics a stream framework keeps for itself (state changelogs, repartitions)."""
    return topic.startswith(INTERNAL_PREFIXES)


@dataclass
class _TopicHistory:
    last: tuple[float, int] | None = None
    rates: deque[float] = field(default_factory=deque)


class StreamSampler:
    """Samples every topic's watermarks each ``interval_s`` seconds on a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        interval_s: float = 3.0,
        history_len: int = 40,
        idle_stop_s: float = 120.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.history_len = history_len
        self.idle_stop_s = idle_stop_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_request = 0.0
        self._history: dict[str, _TopicHistory] = {}
        self._topics: list[dict[str, Any]] = []
        self._error: str | None = None
        self._sampled_at: float | None = None
        self._admin: AdminClient | None = None

    # -- public -----------------------------------------------------------------
    def snapshot(self, start: bool = True) -> dict[str, Any]:
        """The latest sample as JSON-ready data; (re)starts the thread if it sleeps and ``start``."""
        with self._lock:
            self._last_request = time.monotonic()
            if start and self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="workbench-sampler", daemon=True)
                self._thread.start()
            return {
                "broker": self.settings.bootstrap,
                "ok": self._error is None,
                "error": self._error,
                "interval_s": self.interval_s,
                "sampled_at": self._sampled_at,
                "topics": list(self._topics),
            }

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread for good (server shutdown)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def sample(self) -> None:
        """Take one sample now (the thread calls this; tests call it directly)."""
        try:
            topics = self._collect()
        except Exception as exc:  # the sidebar shows it; the next tick retries
            with self._lock:
                self._error = " ".join(str(exc).split()) or type(exc).__name__
            return
        with self._lock:
            self._topics = topics
            self._error = None
            self._sampled_at = time.time()

    # -- internals --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            if self._stop.wait(self.interval_s):
                break
            with self._lock:
                if time.monotonic() - self._last_request > self.idle_stop_s:
                    self._thread = None  # the next request starts a fresh thread
                    return
        with self._lock:
            self._thread = None

    def _client(self) -> AdminClient:
        if self._admin is None:
            from workbench.streams.kafka import admin

            self._admin = admin(self.settings, log_level=0)
        return self._admin

    def _collect(self) -> list[dict[str, Any]]:
        from confluent_kafka import KafkaException

        client = self._client()
        try:
            md = client.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise RuntimeError(f"no answer from {self.settings.bootstrap}: {exc}") from exc
        partitions = {
            name: sorted(t.partitions)
            for name, t in md.topics.items()
            if not name.startswith("__") and t.error is None
        }
        lows, highs = self._watermarks(client, partitions)
        lag = self._group_lag(client, highs)
        now = time.monotonic()
        names = set(partitions)
        out = []
        for name in sorted(names):
            if name.endswith(DLQ_SUFFIX) and name[: -len(DLQ_SUFFIX)] in names:
                continue  # shown as its parent's DLQ count
            tps = [(name, p) for p in partitions[name]]
            if any(tp not in highs for tp in tps):
                continue  # deleted or still being created between the two requests
            high = sum(highs[tp] for tp in tps)
            hist = self._history.setdefault(name, _TopicHistory())
            rate = rate_per_s(hist.last, (now, high))
            hist.last = (now, high)
            if rate is not None:
                hist.rates.append(round(rate, 2))
                while len(hist.rates) > self.history_len:
                    hist.rates.popleft()
            dlq_name = name + DLQ_SUFFIX
            dlq = None
            if dlq_name in names:
                dtps = [(dlq_name, p) for p in partitions[dlq_name]]
                dlq = {"topic": dlq_name, "messages": sum(highs.get(tp, 0) - lows.get(tp, 0) for tp in dtps)}
            groups = {g: per_topic[name] for g, per_topic in lag.items() if name in per_topic}
            out.append({
                "name": name,
                "internal": is_internal(name),
                "partitions": len(tps),
                "messages": high - sum(lows.get(tp, 0) for tp in tps),
                "rate_per_s": None if rate is None else round(rate, 2),
                "history": list(hist.rates),
                "lag": dict(sorted(groups.items())),
                "lag_total": sum(groups.values()),
                "dlq": dlq,
            })  # fmt: skip
        for gone in set(self._history) - names:
            del self._history[gone]
        return out

    def _watermarks(
        self, client: AdminClient, partitions: dict[str, list[int]]
    ) -> tuple[dict[Partition, int], dict[Partition, int]]:
        """Low and high watermarks of every partition, in two batched ListOffsets requests."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        tps = [TopicPartition(name, p) for name, ps in partitions.items() for p in ps]
        if not tps:
            return {}, {}
        result: list[dict[Partition, int]] = []
        for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
            futures = client.list_offsets({tp: spec for tp in tps}, request_timeout=self.timeout_s)
            marks: dict[Partition, int] = {}
            for tp, fut in futures.items():
                try:
                    marks[(tp.topic, tp.partition)] = fut.result().offset
                except Exception:
                    continue  # the topic went away mid-sample; it is dropped this tick
            result.append(marks)
        return result[0], result[1]

    def _group_lag(self, client: AdminClient, highs: dict[Partition, int]) -> dict[str, dict[str, int]]:
        """group -> topic -> summed lag, from committed offsets (read only, no join)."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        listed = client.list_consumer_groups(request_timeout=self.timeout_s).result()
        group_ids = sorted(g.group_id for g in listed.valid if g.group_id not in _IGNORED_GROUPS)[
            :_MAX_GROUPS
        ]
        # One request per group: librdkafka accepts a single group per ListConsumerGroupOffsets.
        futures = {
            gid: client.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(gid)], request_timeout=self.timeout_s
            )[gid]
            for gid in group_ids
        }
        out: dict[str, dict[str, int]] = {}
        for gid, fut in futures.items():
            try:
                committed = {(tp.topic, tp.partition): tp.offset for tp in fut.result().topic_partitions}
            except Exception:
                continue  # a group deleted mid-sample
            per_topic = lag_of(committed, highs)
            if per_topic:
                out[gid] = per_topic
        return out
