"""The stream path: a feature (or feature set) compiled to a quixstreams pipeline.

The pipeline of one feature has two halves:

* **before the window** (:func:`prepare`): the filter, then a projection of
  each event to ``{"k": key, "i": [event_time_ms, partition, offset, value]}``
  taken from the *source* record (so ties and provenance survive a
  repartition), then ``group_by`` when the entity is not the record key;
* **the window** (:func:`window`): one update per window the record touched.
  Session windows are quixstreams' ``session_window(...).current()`` with the
  feature's aggregation as a quixstreams aggregator; sliding, tumbling and
  hopping windows are keyed stateful steps (:mod:`workbench.features.sliding`
  says why: correctness for sliding, one state read and write per record for
  the fixed ones). State is RocksDB with changelog either way.

Event time comes from the payload through the topic's timestamp extractor
(``event_time_ms``). Window semantics are documented, with worked examples,
in :mod:`workbench.features.windows`; they are what quixstreams 3.28 does.

:func:`run_stream_on_frame` runs the window half for real on quixstreams
through ``StreamingDataFrame.test()`` without a broker; the conformance tests
compare it to :func:`workbench.features.backfill.backfill` record by record.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Aggregation
from workbench.features.definition import Entity, Feature
from workbench.features.sliding import fixed_step, sliding_step, transaction_of
from workbench.features.windows import Hopping, Session, Sliding, Tumbling

if TYPE_CHECKING:
    import pandas as pd
    from quixstreams import Application
    from quixstreams.dataframe import StreamingDataFrame
    from quixstreams.dataframe.windows.aggregations import BaseAggregator
    from quixstreams.state.rocksdb import RocksDBOptions

# One output row per window a record updated (the backfill returns the same columns).
OUTPUT_COLUMNS = [
    "partition",
    "offset",
    "key",
    "event_time_ms",
    "window_start_ms",
    "window_end_ms",
    "value",
    "late",
]
_names = itertools.count()


def rocksdb_options() -> RocksDBOptions:
    """Small RocksDB settings for a 2-core laptop: a few MiB of memtable, a small cache."""
    from quixstreams.state.rocksdb import RocksDBOptions

    return RocksDBOptions(
        write_buffer_size=8 * 1024 * 1024,
        max_write_buffer_number=2,
        target_file_size_base=16 * 1024 * 1024,
        block_cache_size=32 * 1024 * 1024,
        max_total_wal_size=32 * 1024 * 1024,
    )


def event_time(value: Any, headers: Any, timestamp: float, timestamp_type: int) -> int:
    """quixstreams timestamp extractor: event time from the payload, never the send time.

    A malformed record has no event time; it keeps its send time until the
    intake step dead-letters it (it never reaches a window).
    """
    if not isinstance(value, dict):
        return int(timestamp)
    return int(value["event_time_ms"])


def aggregator(agg: Aggregation, suffix: str) -> BaseAggregator[Any]:
    """Wrap a Workbench aggregation as a quixstreams aggregator (state stays JSON)."""
    from quixstreams.dataframe.windows.aggregations import BaseAggregator

    class _Adapter(BaseAggregator[Any]):
        @property
        def state_suffix(self) -> str:
            return suffix

        def initialize(self) -> Any:
            return agg.initialize()

        def agg(self, old: Any, new: Any, timestamp: int) -> Any:
            return agg._update_item(old, new["i"])

        def result(self, value: Any) -> Any:
            return agg.result(value)

        def merge(self, a: Any, b: Any) -> Any:
            return agg.merge(a, b)

    return _Adapter()


def projector(feature: Feature) -> Callable[[dict[str, Any], int, int], dict[str, Any] | None]:
    """event, partition, offset -> the compact value the window sees; None when filtered out."""
    where = feature.where
    aggregation = feature.aggregation
    entity = feature.entity
    key_of, extract = entity.key_of, aggregation.extract
    # Plain columns (the usual key and field) are read directly: the same values
    # Expr.evaluate and Entity.key_of give, without their calls per record.
    plain_key = type(entity).key_of is Entity.key_of and entity.key_expr.op == "col"
    key_column = entity.key_expr.args[0] if plain_key else None
    plain_extract = type(aggregation).extract is Aggregation.extract
    field = aggregation.field if plain_extract else None
    no_field = plain_extract and field is None
    field_column = field.args[0] if plain_extract and field is not None and field.op == "col" else None

    def project(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any] | None:
        if where is not None and not bool(where.evaluate(event)):
            return None
        if no_field:
            value = None
        elif field_column is not None:
            value = event.get(field_column)
        else:
            value = extract(event)
        if key_column is not None:
            key = event.get(key_column)
            if key is not None:
                key = str(key)
        else:
            key = key_of(event)
        return {"k": key, "i": [int(event["event_time_ms"]), partition, offset, value]}

    return project


def prepare(
    sdf: StreamingDataFrame, feature: Feature, accept: Callable[[Any], bool] | None = None
) -> StreamingDataFrame:
    """Filter, project and (for entities other than the record key) regroup by entity key.

    ``accept`` (the job's intake check, when this feature is the only branch)
    runs in the same step: every step is a call per record in quixstreams.
    """
    from quixstreams import message_context

    project = projector(feature)
    regroup = not feature.entity.is_message_key
    none: list[dict[str, Any]] = []

    def to_items(event: Any) -> list[dict[str, Any]]:
        if accept is not None and not accept(event):
            return none
        ctx = message_context()
        item = project(event, ctx.partition, ctx.offset)
        if item is None or (regroup and item["k"] is None):
            return none  # filtered out, or no entity key to regroup by
        return [item]

    # an expanding apply both maps and drops: one step instead of an apply and a filter
    sdf = sdf.apply(to_items, expand=True)
    if regroup:
        sdf = sdf.group_by(_entity_key, name=f"{feature.entity.name}-{feature.hash}")
    return sdf


def _entity_key(value: dict[str, Any]) -> Any:
    return value["k"]


def window(
    sdf: StreamingDataFrame,
    feature: Feature,
    on_late: Callable[..., bool] | None = None,
    name: str | None = None,
) -> StreamingDataFrame:
    """The windowed aggregation with ``.current()``; returns feature-update dicts."""
    name = name or f"{feature.name}-{feature.hash}"
    late = on_late or _quiet_late

    # The window output carries only start/end/value. quixstreams runs one record
    # through the whole chain synchronously, so the record that caused an update
    # is remembered just before the window and read just after it.
    current: dict[str, Any] = {}

    def remember(value: dict[str, Any]) -> dict[str, Any]:
        current["i"] = value["i"]
        return value

    def to_update(result: dict[str, Any], key: Any, *_: Any) -> dict[str, Any]:
        t, p, o, _v = current["i"]
        return {
            "feature": feature.name,
            "hash": feature.hash,
            "key": key.decode() if isinstance(key, bytes) else key,
            "event_time_ms": t,
            "source_partition": p,
            "source_offset": o,
            "window_start_ms": result["start"],
            "window_end_ms": result["end"],
            "value": result["value"],
        }

    if isinstance(feature.window, (Sliding, Tumbling, Hopping)):
        # a keyed stateful step that knows its record and key, so it emits finished updates
        # itself (no remember / to_update steps: each step is a per-record call in quixstreams)
        # An apply keeps the record's timestamp, which is already its event time (the
        # topic's timestamp extractor, kept through group_by): the update's Kafka timestamp.
        # The store is registered as ``apply(stateful=True)`` does, but the step is a plain
        # apply: it opens a key's state only when it has to read it (see sliding._Copies).
        make = sliding_step if isinstance(feature.window, Sliding) else fixed_step
        sdf.register_store()
        return sdf.apply(make(feature, late, transaction_of(sdf)), expand=True, metadata=True)
    wdef = _window_definition(sdf.apply(remember), feature, name, late)
    out: StreamingDataFrame = wdef.agg(value=aggregator(feature.aggregation, feature.hash)).current()
    out = out.apply(to_update, metadata=True)
    # the update's Kafka timestamp is the event time of the record that caused it
    # (quixstreams stamps window outputs with the window start)
    return out.set_timestamp(_update_time)


def _update_time(update: dict[str, Any], *_: Any) -> int:
    return int(update["event_time_ms"])


def _window_definition(sdf: StreamingDataFrame, feature: Feature, name: str, late: Any) -> Any:
    w = feature.window
    if isinstance(w, Session):
        return sdf.session_window(inactivity_gap_ms=w.gap_ms, grace_ms=w.grace_ms, name=name, on_late=late)
    raise TypeError(f"unknown window {w!r}")


def _quiet_late(*_: Any) -> bool:
    return False  # lateness is reported by the caller (DLQ / late rows), not logged per window


# -- running the real window code without a broker ----------------------------------


class _Harness:
    """One broker-less Application with the window half of one feature compiled once.

    Every run starts a fresh checkpoint and never commits it, so state starts
    empty each time while RocksDB stores are opened only once.
    """

    def __init__(self, feature: Feature, state_dir: Path) -> None:
        from quixstreams import Application
        from quixstreams.models.topics import Topic, TopicConfig

        self.app: Application = Application(
            broker_address="127.0.0.1:1",  # never contacted
            use_changelog_topics=False,
            state_dir=state_dir,
            auto_create_topics=False,
            rocksdb_options=rocksdb_options(),
            loglevel=None,  # leave the process's logging alone
        )

        def fetch(topic: Topic) -> Topic:
            # What the broker would answer for a plain 64-partition topic.
            fetched = Topic(name=topic.name)
            fetched.broker_config = TopicConfig(
                num_partitions=64,
                replication_factor=1,
                extra_config={"retention.ms": "-1", "retention.bytes": "-1"},
            )
            return fetched

        self.app._topic_manager._fetch_topic = fetch  # type: ignore[method-assign]
        self.topic = self.app.topic(f"harness-{next(_names)}", value_deserializer="json")
        self.sdf = window(self.app.dataframe(self.topic), feature)
        self.assigned: set[int] = set()

    def run(self, items: list[tuple[int, Any, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        """(state partition, key, projected value) per record -> the updates each one emitted."""
        from quixstreams.models import MessageContext

        ctx = self.app._processing_context
        for partition in sorted({p for p, _, _ in items} - self.assigned):
            self.app._state_manager.on_partition_assign(
                stream_id=self.sdf.stream_id, partition=partition, committed_offsets={}
            )
            self.assigned.add(partition)
        ctx.init_checkpoint()  # fresh, never committed: the state of this run only
        out = []
        for n, (partition, key, value) in enumerate(items):
            mc = MessageContext(topic=self.topic.name, partition=partition, offset=n, size=0)
            got = self.sdf.test(value, key=key, timestamp=value["i"][0], ctx=mc)
            out.append([v for v, *_ in got])
        return out


_harnesses: dict[str, _Harness] = {}  # by window + aggregation: all the window half depends on
_harness_root: Path | None = None


def _harness(feature: Feature) -> _Harness:
    global _harness_root
    if _harness_root is None:
        _harness_root = Path(tempfile.mkdtemp(prefix="workbench-harness-"))
        atexit.register(shutil.rmtree, _harness_root, ignore_errors=True)
    from workbench.features.definition import spec_hash

    key = spec_hash({"window": feature.window.spec(), "aggregation": feature.aggregation.spec()})
    h = _harnesses.get(key)
    if h is None:
        h = _harnesses[key] = _Harness(feature, _harness_root / key)
    return h


def run_stream_on_frame(feature: Feature, events: pd.DataFrame) -> pd.DataFrame:
    """Run the real quixstreams window of ``feature`` over an events frame, broker-less.

    Rows are processed in frame order (give it partition/offset order). The
    filter and projection are the same functions the live pipeline runs; a
    regrouped entity's records share one state partition, as after
    ``group_by``. Output: :data:`OUTPUT_COLUMNS`, one row per window update,
    and one ``late=True`` row for a record that updated no window.

    >>> import pandas as pd
    >>> from workbench.features import aggregations as agg, windows as win
    >>> from workbench.features.definition import SESSION
    >>> f = Feature("n", SESSION, win.Tumbling(size_ms=10), agg.Count())
    >>> ev = pd.DataFrame({"session_id": ["s"] * 3, "event_time_ms": [1001, 1005, 1012],
    ...                    "partition": 0, "offset": [0, 1, 2]})
    >>> run_stream_on_frame(f, ev)[["offset", "window_start_ms", "value"]].values.tolist()
    [[0, 1000, 1], [1, 1000, 2], [2, 1010, 1]]
    """
    import pandas as pd

    project = projector(feature)
    regroup = not feature.entity.is_message_key
    records = events.to_dict("records")
    kept: list[tuple[dict[str, Any], tuple[int, Any, dict[str, Any]]]] = []
    for event in records:
        event = {k: (None if _is_na(v) else v) for k, v in event.items()}
        value = project(event, int(event["partition"]), int(event["offset"]))
        if value is None or value["k"] is None:
            continue  # filtered out, or no key: quixstreams windows skip None keys
        state_partition = 0 if regroup else int(event["partition"])
        kept.append((event, (state_partition, value["k"].encode(), value)))
    emitted = _harness(feature).run([item for _, item in kept])
    rows = []
    for (_event, (_, key, value)), updates in zip(kept, emitted, strict=True):
        t, p, o, _v = value["i"]
        if not updates:
            rows.append([p, o, key.decode(), t, None, None, None, True])
        for u in updates:
            rows.append([p, o, key.decode(), t, u["window_start_ms"], u["window_end_ms"], u["value"], False])
    frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    # values stay python objects: None is not NaN, a list is not a column
    values = pd.Series([None] * len(rows), dtype=object)
    for i, row in enumerate(rows):
        values.iat[i] = row[6]
    frame["value"] = values
    frame[["window_start_ms", "window_end_ms"]] = frame[["window_start_ms", "window_end_ms"]].astype("Int64")
    return frame


def _is_na(v: Any) -> bool:
    try:
        return bool(v != v) or v is None  # NaN / pd.NA / None
    except TypeError:  # pd.NA raises on bool()
        return True
