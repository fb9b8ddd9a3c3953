"""The live feature job: a feature set as one quixstreams Application on the real broker.

Each feature of the set is a branch of one StreamingDataFrame over the source
topic (event time from the payload via :func:`~workbench.features.stream.event_time`).
Every branch writes its updates, keyed by entity key, to ``features.<set>``::

    {"feature": "views_5m", "hash": "5041c39a47740c22", "key": "u1",
     "event_time_ms": ..., "source_partition": 0, "source_offset": 17,
     "window_start_ms": ..., "window_end_ms": ..., "value": 3}

A record that updates no window of a feature (late, see
:mod:`workbench.features.windows`) goes to ``<source>.dlq`` once, with reason
``late``; the DLQ key is its source position, so the original record can be
fetched from there. State is RocksDB (small options for a 2-core machine)
with changelog topics; ``exactly_once=True`` switches quixstreams to
``processing_guarantee="exactly-once"``.

Runs are bounded in notebooks: :func:`run` takes ``count`` and ``timeout``
like ``Application.run``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.features.definition import Feature, FeatureSet
from workbench.features.intake import Intake, deserializer
from workbench.features.stream import event_time, prepare, rocksdb_options, window
from workbench.features.windows import Hopping
from workbench.features.writer import UpdateWriter

if TYPE_CHECKING:
    from quixstreams import Application
    from quixstreams.dataframe import StreamingDataFrame
    from quixstreams.sinks import BaseSink

    from workbench.streams.validation import DeadLetters


def application(
    feature_set: FeatureSet,
    exactly_once: bool = False,
    *,
    consumer_group: str | None = None,
    state_dir: Path | None = None,
    commit_interval: float | None = None,
    **extra: Any,
) -> Application:
    """A quixstreams Application for one feature set, configured from the settings.

    A supervised job (:mod:`workbench.jobs.worker`) passes its own consumer
    group, state dir and commit interval; by default they derive from the set.
    """
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig

    from workbench.config import settings

    s = settings()
    if commit_interval is not None:
        extra["commit_interval"] = commit_interval
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(s.kafka_config()),
        # the hash is in the group: a changed definition recomputes from the start
        consumer_group=consumer_group or f"workbench-features-{feature_set.name}-{feature_set.hash}",
        auto_offset_reset="earliest",
        state_dir=state_dir or s.home / "state" / f"{feature_set.name}-{feature_set.hash}",
        rocksdb_options=rocksdb_options(),
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        loglevel="WARNING",
        **extra,
    )


class LateRecords:
    """Counts late records per feature and dead-letters each record once.

    Counts are of distinct source positions, so a record processed again
    (a transaction aborted, a rebalance) is not counted twice.
    """

    def __init__(self, dead_letters: DeadLetters | None = None) -> None:
        self.dead_letters = dead_letters
        self._seen: dict[str, set[tuple[int, int]]] = {}

    @property
    def counts(self) -> Counter[str]:
        return Counter({name: len(positions) for name, positions in self._seen.items()})

    def callback(self, feature: Feature) -> Any:
        w = feature.window

        def on_late(value: Any, key: Any, timestamp_ms: int, late_by_ms: int, start: int, *_: Any) -> bool:
            t, p, o, _v = value["i"]
            if isinstance(w, Hopping) and start != t - t % w.step_ms:
                return False  # an earlier window of the record closed; its newest one may be open
            seen = self._seen.setdefault(feature.name, set())
            if (p, o) in seen:
                return False
            seen.add((p, o))
            if self.dead_letters is not None:
                body = {"feature": feature.name, "hash": feature.hash, "key": value["k"], "event_time_ms": t}
                self.dead_letters.send(
                    json.dumps(body).encode(), "late", partition=p, offset=o, timestamp_ms=t
                )
                # durable before quixstreams can commit past this record (late records are rare)
                self.dead_letters.flush()
            return False  # counted and dead-lettered; no per-record log line

        return on_late


def compile_feature_set(
    app: Application,
    feature_set: FeatureSet,
    late: LateRecords | None = None,
    intake: Intake | None = None,
    sink: BaseSink | None = None,
    feature_topic: bool = True,
) -> StreamingDataFrame:
    """Every feature of the set as a branch that writes updates to ``features.<set>``.

    Records first pass the shared validation (:mod:`workbench.features.intake`):
    a malformed one goes to the DLQ and never reaches a window. A ``sink``
    (the online store of a supervised job) also receives every update; with
    ``feature_topic=False`` (a sink is then required) it is their only
    destination.
    """
    from workbench.config import settings

    if not feature_set.features:
        raise ValueError(f"feature set {feature_set.name!r} has no features")
    if not feature_topic and sink is None:
        raise ValueError("feature_topic=False needs a sink: the updates would go nowhere")
    source = feature_set.features[0].source
    topic = app.topic(source, value_deserializer=deserializer(settings().max_event_bytes),
                      timestamp_extractor=event_time)
    out = app.topic(feature_set.topic, value_serializer="json", key_serializer="str",
                    config=_feature_topic_config(app, feature_set)) if feature_topic else None
    late = late or LateRecords()
    intake = intake or Intake(late.dead_letters)
    sdf = app.dataframe(topic)
    # one branch checks the intake in its first step; several share a filter before they fork
    shared = len(feature_set.features) > 1
    root = sdf.filter(intake.accept) if shared else sdf
    for feature in feature_set:
        first = prepare(root, feature, accept=None if shared else intake.accept)
        branch = window(first, feature, on_late=late.callback(feature))
        if out is not None:
            branch = branch.update(UpdateWriter(sdf._producer, out.name), metadata=True)
        if sink is not None:
            branch.sink(sink)
    return sdf


def _feature_topic_config(app: Application, feature_set: FeatureSet) -> Any:
    """quixstreams' defaults for a new ``features.<set>``, with the retention of event-time history."""
    from workbench.streams.kafka import history_retention

    return app._topic_manager.topic_config(extra_config=history_retention(feature_set.topic))


def pipeline(
    features: Feature | FeatureSet,
    exactly_once: bool = False,
    late: LateRecords | None = None,
    intake: Intake | None = None,
) -> tuple[Application, StreamingDataFrame]:
    """Compile a feature (as a one-feature set of the same name) or a feature set to an Application.

    Nothing runs and nothing connects until ``app.run(...)``.
    """
    feature_set = features if isinstance(features, FeatureSet) else FeatureSet(features.name, [features])
    app = application(feature_set, exactly_once=exactly_once)
    return app, compile_feature_set(app, feature_set, late, intake)


def run(
    feature_set: FeatureSet,
    *,
    count: int = 0,
    timeout: float = 0.0,
    exactly_once: bool = False,
    dead_letter: bool = True,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Run the job until ``count`` updates or ``timeout`` idle seconds; returns (updates, late counts).

    Pass at least one of ``count`` and ``timeout`` in a notebook: without
    both it runs until stopped, like a production job.
    """
    from workbench.features.definition import save
    from workbench.streams.validation import DeadLetters

    save(feature_set.features)  # every hash in the output can be rebuilt from the registry
    source = feature_set.features[0].source
    dead_letters = DeadLetters(source) if dead_letter else None
    if dead_letters is not None:
        dead_letters.prime()  # a restarted job must not dead-letter a record a second time
    late = LateRecords(dead_letters)
    intake = Intake(dead_letters)
    app, _ = pipeline(feature_set, exactly_once=exactly_once, late=late, intake=intake)
    try:
        updates = app.run(count=count, timeout=timeout)
    finally:
        if late.dead_letters is not None:
            late.dead_letters.flush()
    return updates, late.counts
