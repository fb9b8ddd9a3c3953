"""The stream path of the live phase: the feature set's compiled quixstreams pipeline, on the calling thread.

:class:`LiveStream` compiles the features with the feature job's own
:func:`~workbench.features.job.compile_feature_set` and runs the Application
with ``app.run`` on the calling thread (quixstreams installs signal handlers,
so never on a background thread). It reads the source topic from a fresh
consumer group whose offsets it commits first, one window plus grace (in
event time, through ``offsets_for_times``) before the seam; records before the
seam only warm up the window state, so every window still open at the seam
is complete (``evaluate(..., live_warmup_ms=...)`` may cap the warm-up; then a
key silent for longer keeps an older, partial value, as on a freshly started job). The
group, its repartition topics, the set's output topic and the state directory
are removed afterwards.

Every feature update reaches :class:`UpdateHistory` through a sink, with the
source partition and offset of the record that caused it. A live record
(at or after the seam) is released to the evaluation once the stream has
emitted every update of the records before it: a regrouped feature's updates
take a round trip through a repartition topic, so a *barrier* (flush, then the
repartition topics' end offsets) must be consumed first. The value a live
prediction sees is, per feature and key, the last update whose record was
processed before the prediction's record and whose key had seen no event at
or after the prediction time (the history phase's "available strictly
before", see :mod:`workbench.features.training`). Unlike the history phase,
which joins over the whole frame, a record processed after the prediction's
own never counts, even an older one: the value is what an online store fed
by this stream would have served.

>>> h = UpdateHistory()
>>> for p, o, t, v in [(0, 1, 100, 1), (1, 7, 90, 2), (0, 2, 200, 3)]:
...     h.add({"feature": "n", "key": "u", "source_partition": p, "source_offset": o, "event_time_ms": t,
...            "value": v})
>>> h.before("n", "u", 150, {0: 3, 1: 8})  # the record at 200 is newer than the prediction
(1, 7, 100, 2)
>>> h.before("n", "u", 150, {0: 2, 1: 7})  # only the first record was processed before it
(0, 1, 100, 1)
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from quixstreams import Application

    from workbench.features.definition import Feature

# Wall-clock bounds: warming up (a whole window of the topic, unless capped), and draining
# the last repartition round trip at the end.
WARMUP_BUDGET_S = 600.0
DRAIN_S = 10.0
# Per-key updates older than this (event time, behind the newest) are pruned but the last.
_KEEP_MS = 10 * 60_000


Entry = tuple[int, int, int, Any]  # source partition, source offset, available_ms, value


class UpdateHistory:
    """Per feature and key, the stream's updates in processing order, with ``available_ms``.

    ``available_ms`` is the key's running max event time (as
    :func:`~workbench.features.training.available_updates`): an update is
    available to a prediction at ``t`` only when ``available_ms < t``.
    """

    def __init__(self) -> None:
        self.by: dict[str, dict[str, list[Entry]]] = {}
        self.n = 0

    def add(self, update: dict[str, Any]) -> None:
        hist = self.by.setdefault(update["feature"], {}).setdefault(str(update["key"]), [])
        t = int(update["event_time_ms"])
        available = max(hist[-1][2], t) if hist else t
        hist.append((int(update["source_partition"]), int(update["source_offset"]), available, update["value"]))
        self.n += 1

    def before(self, feature: str, key: str, t_ms: int, processed: dict[int, int]) -> Entry | None:
        """The last update of ``key`` from a record before ``processed`` (partition -> next offset),
        available strictly before ``t_ms``."""
        hist = self.by.get(feature, {}).get(key)
        if not hist:
            return None
        i = len(hist) - 1
        # a key's updates come in processing order, so the ones after the prediction are a suffix
        while i >= 0 and hist[i][1] >= processed.get(hist[i][0], -1):
            i -= 1
        while i >= 0 and hist[i][2] >= t_ms:
            i -= 1
        return hist[i] if i >= 0 else None

    def prune(self, cutoff_ms: int) -> None:
        """Drop updates no later prediction can use: all but the last one available before ``cutoff_ms``."""
        n = 0
        for keys in self.by.values():
            for hist in keys.values():
                if len(hist) > 1 and hist[1][2] < cutoff_ms:
                    j = max(i for i, e in enumerate(hist) if e[2] < cutoff_ms)
                    del hist[:j]
                n += len(hist)
        self.n = n


@dataclass
class LiveEvent:
    """A live record, with what the stream had processed before it (partition -> next offset)."""

    key: str
    event: dict[str, Any]
    partition: int
    offset: int
    processed: dict[int, int]


@dataclass
class _Barrier:
    upto: int  # queue entries it covers
    ends: dict[tuple[str, int], int]  # repartition topic partition -> end offset at the barrier


class LiveStream:
    """Run ``features`` on ``topic`` from ``start`` offsets; release live records (offset >= ``seam``).

    ``on_release(events, updates)`` gets records in processing order once
    every update before each of them is in ``updates``; ``on_tick()`` runs
    between records (charts). The live tail lasts ``live_s`` seconds after
    the warm-up reached the seam on every partition.
    """

    def __init__(
        self,
        topic: str,
        features: Sequence[Feature],
        seam: dict[int, int],
        start: dict[int, int],
        name: str,
        on_release: Callable[[list[LiveEvent], UpdateHistory], None],
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        self.topic = topic
        # the stream reads the evaluated topic, whatever source the definitions name
        self.features = [f if f.source == topic else dataclasses.replace(f, source=topic) for f in features]
        self.seam = dict(seam)
        self.start = {p: min(start.get(p, o), o) for p, o in seam.items()}
        self.name = name
        self.on_release = on_release
        self.on_tick = on_tick
        self.updates = UpdateHistory()
        self.queue: list[LiveEvent] = []
        self.next_offset = dict(self.start)
        self.warmup_events = 0
        self.released = 0
        self.warm_s: float | None = None
        self._barrier: _Barrier | None = None
        self._repartition: list[tuple[str, int]] | None = None
        self._closing_at: float | None = None
        self._pruned_at = 0.0
        self._newest_ms = -(2**62)

    # -- running -------------------------------------------------------------------------
    def run(self, live_s: float) -> None:
        """Warm up, then evaluate the tail for ``live_s`` seconds; cleans up whatever happens."""
        from workbench.streams import kafka

        if threading.current_thread() is not threading.main_thread():
            raise WorkbenchError("the live phase runs quixstreams on the calling thread, which must be the "
                                 "main thread (quixstreams installs signal handlers)")
        group = f"workbench-eval-{self.name}"
        state_dir = Path(tempfile.mkdtemp(prefix="workbench-eval-"))
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        out_topic = None
        self._ends_consumer = kafka.consumer()  # asks the repartition topics' end offsets
        try:
            self._commit_start(group)
            self.app, out_topic = self._compile(group, state_dir)
            # a periodic task runs between records, even while the topic is idle
            self.app._dataframe_registry.register_periodic_task(self._tick)
            self._t0 = time.monotonic()
            self._live_s = live_s
            # the idle timeout is only a safety net: _tick stops the app; collect nothing
            self.app.run(timeout=max(live_s, 1.0) + WARMUP_BUDGET_S + DRAIN_S, collect=False)
        finally:
            for s, h in handlers.items():  # give the kernel its Ctrl-C back
                signal.signal(s, h)
            self._ends_consumer.close()
            try:
                kafka.delete_consumer_group_and_topics(group)
                if out_topic is not None:
                    kafka.delete_topics([out_topic])
            finally:
                shutil.rmtree(state_dir, ignore_errors=True)

    def _commit_start(self, group: str) -> None:
        from confluent_kafka import TopicPartition

        from workbench.streams import kafka

        c = kafka.consumer(None, **{"group.id": group})
        try:
            c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in self.start.items()], asynchronous=False)
        finally:
            c.close()

    def _compile(self, group: str, state_dir: Path) -> tuple[Application, str | None]:
        from quixstreams.sinks.base import BaseSink

        from workbench.config import settings
        from workbench.features.definition import FeatureSet
        from workbench.features.intake import Intake, deserializer
        from workbench.features.job import application, compile_feature_set
        from workbench.features.stream import event_time

        updates = self.updates

        class _Updates(BaseSink):
            def add(self, value: Any, *_: Any, **__: Any) -> None:
                updates.add(value)

            def flush(self) -> None:
                pass

        fs = FeatureSet(f"eval_{self.name}", self.features)
        # throwaway state: no changelog topics; a short poll so the periodic task runs often
        app = application(fs, consumer_group=group, state_dir=state_dir, use_changelog_topics=False,
                          consumer_poll_timeout=0.2)
        if self.features:
            sdf = compile_feature_set(app, fs, sink=_Updates())
            out_topic: str | None = fs.topic
        else:
            topic = app.topic(self.topic, value_deserializer=deserializer(settings().max_event_bytes),
                              timestamp_extractor=event_time)
            sdf = app.dataframe(topic).filter(Intake(None).accept)
            out_topic = None
        sdf.update(self._on_record)
        return app, out_topic

    # -- on the calling thread, inside app.run ---------------------------------------------
    def _on_record(self, event: dict[str, Any]) -> None:
        from quixstreams import message_context

        ctx = message_context()
        p, o = ctx.partition, ctx.offset
        if o < self.seam[p]:
            self.warmup_events += 1  # state warm-up only
        elif self._closing_at is not None:
            return  # after the end of the evaluation
        else:
            # warm-up records all count as processed before any live one
            processed = {q: max(n, self.seam[q]) for q, n in self.next_offset.items()}
            key = str(event.get("event_id") or f"{p}:{o}")
            self.queue.append(LiveEvent(key, dict(event), p, o, processed))
        self.next_offset[p] = o + 1

    def _tick(self) -> None:
        now = time.monotonic()
        if self.warm_s is None:
            if self._reached_seam():
                self.warm_s = now - self._t0
                self._live_until = now + self._live_s
            elif now - self._t0 > WARMUP_BUDGET_S:
                self.app.stop()  # the warm-up did not reach the seam in time; nothing is evaluated
                return
            else:
                return
        if self._barrier is not None and self._barrier_passed():
            self._release(self._barrier.upto)
            self._barrier = None
        if self._closing_at is None and now >= self._live_until:
            self._closing_at = now
        if self._barrier is None and self.queue:
            self._barrier = self._new_barrier()
            if not self._barrier.ends:  # no regrouped feature: nothing is in flight
                self._release(self._barrier.upto)
                self._barrier = None
        if self._closing_at is not None and (not self.queue or now - self._closing_at > DRAIN_S):
            self.app.stop()
        self.on_tick()

    def _reached_seam(self) -> bool:
        from confluent_kafka import TopicPartition

        if all(self.next_offset[p] >= o for p, o in self.seam.items()):
            return True
        # a record the intake dropped (malformed) never reaches _on_record; the position moved past it
        positions = self.app._consumer.position([TopicPartition(self.topic, p) for p in self.seam])
        return all(tp.offset >= self.seam[tp.partition] for tp in positions)

    def _release(self, upto: int) -> None:
        batch, self.queue = self.queue[:upto], self.queue[upto:]
        self.released += len(batch)
        for ev in batch:
            self._newest_ms = max(self._newest_ms, int(ev.event["event_time_ms"]))
        self.on_release(batch, self.updates)
        if time.monotonic() - self._pruned_at > 5.0:
            self.updates.prune(self._newest_ms - _KEEP_MS)
            self._pruned_at = time.monotonic()

    def _new_barrier(self) -> _Barrier:
        from workbench.streams import kafka

        c = self._ends_consumer
        if self._repartition is None:
            names = sorted(self.app._topic_manager.repartition_topics)
            self._repartition = [(t, p) for t in names for p in kafka.partitions(c, t)]
        if not self._repartition:
            return _Barrier(len(self.queue), {})
        # everything produced so far must be on the broker before its end offsets mean anything
        self.app._producer.flush(30)
        ends = {tp: kafka.watermarks(c, *tp)[1] for tp in self._repartition}
        return _Barrier(len(self.queue), {tp: e for tp, e in ends.items() if e > 0})

    def _barrier_passed(self) -> bool:
        from confluent_kafka import TopicPartition

        assert self._barrier is not None
        if not self._barrier.ends:
            return True
        tps = [TopicPartition(t, p) for t, p in self._barrier.ends]
        # between records, the consumer's position is the next record to process
        positions = self.app._consumer.position(tps)
        return all(tp.offset >= self._barrier.ends[(tp.topic, tp.partition)] for tp in positions)
