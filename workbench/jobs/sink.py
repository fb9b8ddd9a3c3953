"""The online sink: a feature job's updates, written to the Feast online store at each checkpoint.

Between two checkpoints the sink keeps, per (FeatureView, entity key), each
feature's latest value; at the checkpoint it writes one row per key through
Feast's own provider write path (``online_write_batch``), so the stored format
is Feast's and any plain ``FeatureStore(...).get_online_features`` reads it.
A row holds only the features that changed: Redis ``HSET``\\ s just those
fields and SQLite upserts per feature, so the others keep their values.

Three rules make the stores agree and make a restart harmless:

* **The seam.** An update caused by a record before ``spec.seam`` (per source
  partition) is already in the store (the backfill materialized it); the job
  computes it only to build window state and never writes it.
* **Strictly increasing timestamps per key.** Redis skips a row whose
  timestamp is not newer than the stored one, SQLite overwrites. Every row is
  written with ``max(event time, stored + 1 µs)``, so both stores take every
  write and end identical. On a plain Redis a server-side script picks that
  timestamp and writes Feast's row format directly
  (:mod:`workbench.jobs.redis_rows`, one call per view and flush); elsewhere
  each flush reads the stored timestamps once and uses Feast's write path.
* **No crash on a bad value.** A value that cannot be converted to the view's
  type is dead-lettered (source topic's DLQ, reason ``unwritable:<feature>``)
  and the rest of the row is written.

>>> next_timestamp(1_700_000_000_000, None).isoformat()
'2023-11-14T22:13:20+00:00'
>>> stored = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
>>> next_timestamp(1_700_000_000_000, stored).isoformat()  # not newer: one microsecond later
'2023-11-14T22:13:20.000001+00:00'
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

# the sink is a quixstreams class; only the worker (already running quixstreams) imports this module
from quixstreams.sinks import BaseSink  # noqa: TID253

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from workbench.features.definition import Feature, FeatureSet
    from workbench.jobs.spec import JobSpec
    from workbench.streams.validation import DeadLetters

log = logging.getLogger(__name__)

ONE_US = timedelta(microseconds=1)


def next_timestamp(event_time_ms: int, stored: datetime | None) -> datetime:
    """The timestamp to write: the event time, or just after the stored one when that is not older."""
    ts = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
    if stored is not None and stored.tzinfo is None:
        stored = stored.replace(tzinfo=UTC)
    return ts if stored is None or ts > stored else stored + ONE_US


@dataclass
class _Pending:
    """One entity key's changes since the last flush: feature -> its latest update."""

    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_time_ms: int = 0


class OnlineSink(BaseSink):
    """quixstreams sink for every feature branch of one job; flushes at each checkpoint.

    ``store`` defaults to ``FeatureStore(repo_path=spec.repo_path)``, opened in
    :meth:`setup` (when the application starts) or earlier on a thread
    (:meth:`open_in_background`).
    """

    def __init__(self, spec: JobSpec, feature_set: FeatureSet, dead_letters: DeadLetters | None = None,
                 store: FeatureStore | None = None) -> None:
        super().__init__(on_client_connect_success=lambda: None)
        self.spec = spec
        self.features: dict[str, Feature] = {f.name: f for f in feature_set.features}
        self.dead_letters = dead_letters
        self.store = store
        self._seam = {int(p): int(o) for p, o in spec.seam.items()}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._views: dict[str, FeatureView] = {}
        self._types: dict[str, dict[str, Any]] = {}
        self._redis: Any = None  # a RedisRows writer when the online store is a plain Redis
        # what happened so far, for logs and tests
        self.rows_written = 0
        self.before_seam = 0
        self.unwritable: Counter[str] = Counter()
        self._opening: threading.Thread | None = None
        self._open_error: BaseException | None = None

    # -- opening the store -----------------------------------------------------
    def open_in_background(self) -> None:
        """Open the store on a thread: importing Feast takes seconds, the consumer can join its group meanwhile.

        The first flush with something to write waits for it (and raises its error).
        """
        self._opening = threading.Thread(target=self._open_recording, name="feast-open", daemon=True)
        self._opening.start()

    def _open_recording(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # re-raised by _ready() on the processing thread
            self._open_error = exc

    def _open(self) -> None:
        from feast import FeatureStore

        if self.store is None:
            self.store = FeatureStore(repo_path=self.spec.repo_path)
        for view in sorted(set(self.spec.views.values())):
            fv = self.store.get_feature_view(view)
            self._views[view] = fv
            self._types[view] = {f.name: f.dtype.to_value_type() for f in fv.features}
        self._redis = redis_rows(self.store, self.spec)

    def _ready(self) -> None:
        if self._opening is not None:
            self._opening.join()
            self._opening = None
            if self._open_error is not None:
                raise self._open_error
        elif not self._views:
            self._open()

    # -- quixstreams ----------------------------------------------------------
    def setup(self) -> None:
        if self._opening is None:
            self._ready()

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int,
            offset: int) -> None:
        p, o = int(value["source_partition"]), int(value["source_offset"])
        if o < self._seam.get(p, 0):
            self.before_seam += 1  # materialized by the backfill already
            return
        entity = value["key"]
        view = self.spec.views[value["feature"]]
        if entity is None:
            self._dead_letter(value, "unwritable:no_key")
            return
        row = self._pending.setdefault((view, str(entity)), _Pending())
        row.updates[value["feature"]] = value
        row.event_time_ms = max(row.event_time_ms, int(value["event_time_ms"]))

    def flush(self) -> None:
        if not self._pending:
            return
        self._ready()
        pending, self._pending = self._pending, {}
        by_view: dict[str, list[tuple[str, _Pending]]] = {}
        for (view, entity), row in pending.items():
            by_view.setdefault(view, []).append((entity, row))
        for view, rows in by_view.items():
            self._write(view, rows)
        if self.dead_letters is not None:
            self.dead_letters.flush()  # durable before the checkpoint commits past them

    def on_paused(self) -> None:
        self._pending.clear()

    # -- writing --------------------------------------------------------------
    def _write(self, view: str, rows: list[tuple[str, _Pending]]) -> None:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
        from feast.protos.feast.types.Value_pb2 import Value as ValueProto

        assert self.store is not None, "setup() opens the store"
        if self._redis is not None:
            direct = [(entity, row.event_time_ms, values) for entity, row in rows
                      if (values := self._online_values(row))]
            self.rows_written += self._redis.write(view, direct)
            return
        fv = self._views[view]
        join_key = self.spec.join_keys[view]
        keyed = []
        for entity, row in rows:
            values = self._convert(view, row)
            if values:
                ek = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=entity)])
                keyed.append((ek, values, row.event_time_ms))
        if not keyed:
            return
        stored = stored_times(self.store, fv, [ek for ek, _, _ in keyed])
        data: list[tuple[Any, dict[str, Any], datetime, datetime | None]] = [
            (ek, values, next_timestamp(t, s), None) for (ek, values, t), s in zip(keyed, stored, strict=True)
        ]
        self.store._get_provider().online_write_batch(self.store.config, fv, data, None)
        self.rows_written += len(data)

    def _convert(self, view: str, row: _Pending) -> dict[str, Any]:
        from feast.type_map import python_values_to_proto_values

        from workbench.promote.naming import online_value

        out = {}
        for name, update in row.updates.items():
            try:
                raw = online_value(self.features[name], update["value"])
                out[name] = python_values_to_proto_values([raw], self._types[view][name])[0]
            except Exception as exc:  # any unconvertible value: dead-letter it, never crash the job
                log.warning("feature %s key %s: value %r not writable (%s)", name, update["key"],
                            update["value"], exc)
                self._dead_letter(update, f"unwritable:{name}")
        return out

    def _online_values(self, row: _Pending) -> dict[str, bytes]:
        """Feature -> its encoded Feast value; a value that cannot be encoded is dead-lettered here."""
        from workbench.jobs.redis_rows import encode_value
        from workbench.promote.naming import online_value

        out = {}
        for name, update in row.updates.items():
            try:
                out[name] = encode_value(online_value(self.features[name], update["value"]))
            except Exception as exc:  # any unconvertible value: dead-letter it, never crash the job
                log.warning("feature %s key %s: value %r not writable (%s)", name, update["key"],
                            update["value"], exc)
                self._dead_letter(update, f"unwritable:{name}")
        return out

    def _dead_letter(self, update: dict[str, Any], reason: str) -> None:
        self.unwritable[reason] += 1
        if self.dead_letters is not None:
            body = json.dumps(update, default=str).encode()
            self.dead_letters.send(body, reason, partition=int(update["source_partition"]),
                                   offset=int(update["source_offset"]),
                                   timestamp_ms=int(update["event_time_ms"]))


def redis_rows(store: FeatureStore, spec: JobSpec) -> Any:
    """A direct writer of Feast's Redis rows (:mod:`workbench.jobs.redis_rows`), or None for other stores."""
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

    from workbench.jobs.redis_rows import RedisRows

    online = getattr(store._get_provider(), "online_store", None)
    config = store.config.online_store
    if not isinstance(online, RedisOnlineStore) or config.redis_type != RedisType.redis:
        return None  # cluster and sentinel keep Feast's own write path
    features: dict[str, list[str]] = {}
    for name, view in spec.views.items():
        features.setdefault(view, []).append(name)
    return RedisRows(online._get_client(config), store.config.project, spec.join_keys, features)


def stored_times(store: FeatureStore, fv: FeatureView, entity_keys: list[Any]) -> list[datetime | None]:
    """The newest stored timestamp of each entity key in ``fv`` (None when the key has none).

    One read per call: a SQL ``MAX`` on SQLite (which keeps a timestamp per
    feature and whose ``online_read`` returns just one of them), Feast's
    pipelined ``online_read`` of one field plus ``_ts`` elsewhere (Redis).
    Feast's SQLite store keeps whole epoch seconds (and overwrites whatever
    the timestamp), so there only Redis sees the microsecond steps.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    config = store.config
    provider = store._get_provider()
    online = getattr(provider, "online_store", None)
    if isinstance(online, SqliteOnlineStore):
        conn = online._get_conn(config)
        version = config.entity_key_serialization_version
        blobs = [serialize_entity_key(ek, entity_key_serialization_version=version) for ek in entity_keys]
        table = compute_table_id(config.project, fv, config.registry.enable_online_feature_view_versioning)
        found: dict[bytes, datetime] = {}
        for i in range(0, len(blobs), 500):  # SQLite's bound-parameter limit
            chunk = blobs[i:i + 500]
            cur = conn.execute(
                f'SELECT entity_key, MAX(event_ts) FROM "{table}" '
                f"WHERE entity_key IN ({','.join('?' * len(chunk))}) GROUP BY entity_key", chunk)
            for blob, ts in cur.fetchall():
                found[bytes(blob)] = _sqlite_time(ts)
        return [found.get(b) for b in blobs]
    first = [fv.features[0].name] if fv.features else None
    read = provider.online_read(config, fv, entity_keys, first)
    return [ts if values is not None and ts is not None and ts.timestamp() > 0 else None for ts, values in read]


def _sqlite_time(value: Any) -> datetime:
    """An ``event_ts`` as Feast's SQLite store reads it back: epoch seconds, naive, taken as UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, (int, float)) or str(value).isdigit():
        return datetime.fromtimestamp(int(value)).replace(tzinfo=UTC)  # Feast's own convert_timestamp
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
