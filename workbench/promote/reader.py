"""The fast online read path: precomputed reads of Feast's own online rows.

Feast's ``get_online_features`` resolves the registry, builds protobuf entity
keys and response messages on every call. The rows themselves are simple, so
:class:`OnlineReader` resolves a FeatureService (or FeatureViews) once and
then reads the same rows Feast writes, in Feast's storage format, so any
plain Feast reader keeps working:

- **Redis**: one hash per (entity key, project); field ``mmh3("<view>:<feature>")``
  holds a serialized ``ValueProto``. The field names and the serialized
  entity-key prefix are precomputed; one entity is one ``HMGET`` per key bin
  (views of one entity share the bin), pipelined when there are several,
  pre-packed and parsed by :mod:`workbench.promote.resp` (redis-py's Python
  reply parser was about half of a read).
- **SQLite**: table ``<project>_<view>`` with rows ``(entity_key, feature_name,
  value, ...)``; one prepared ``SELECT`` (a ``UNION ALL`` over the views).

Values decode to what ``FeatureStore.get_online_features(...).to_dict()``
gives; scalar kinds and string lists are decoded by hand (a few times faster
than parsing a ``ValueProto`` and converting it), anything else by Feast's
own converter:

>>> decode_value(b"\\x20\\x05"), decode_value(b"\\x29" + struct.pack("<d", 0.5)), decode_value(b"")
(5, 0.5, None)
>>> decode_value(b"\\x12\\x02hi"), decode_value(b"\\x62\\x06\\x0a\\x01a\\x0a\\x01b")
('hi', ['a', 'b'])

A FeatureService that promote or rollback re-points is picked up: the
service's registry entry is re-checked at most every ``refresh_s`` seconds,
and the plan is rebuilt when its ``workbench.version`` tag or its views change.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from feast import FeatureStore

_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")
_STRING = 2  # feast.value_type.ValueType.STRING; the type tag in serialized entity keys
_TOP = 1 << 63
_WRAP = 1 << 64
# how many SQLite parameters one statement takes (SQLite's default limit is 999 on old builds)
_SQLITE_PARAMS = 900

Decoder = Callable[[bytes | None], Any]


class OnlineReadError(WorkbenchError):
    """The fast reader cannot serve this store, service or entity."""


# -- ValueProto decoding ----------------------------------------------------------


def _varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result, i
        shift += 7


def _decode_slow(raw: bytes, value_type: Any = None) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    proto = Value()
    proto.ParseFromString(raw)
    return feast_value_type_to_python_type(proto, value_type)


def decode_value(raw: bytes | None) -> Any:
    """A serialized ``ValueProto`` as the Python value Feast's ``to_dict`` gives."""
    if not raw:
        return None
    n = len(raw)
    tag = raw[0]
    try:
        if tag == 0x20 or tag == 0x18:  # int64_val, int32_val (negatives are 10-byte varints)
            v, i = _varint(raw, 1)
            if i == n:
                return v - _WRAP if v >= _TOP else v
        elif tag == 0x29 and n == 9:  # double_val
            return _F64.unpack_from(raw, 1)[0]
        elif tag == 0x12:  # string_val
            ln, i = _varint(raw, 1)
            if i + ln == n:
                return raw[i:].decode()
        elif tag == 0x62:  # string_list_val: StringList{repeated string val = 1}
            ln, i = _varint(raw, 1)
            if i + ln == n:
                out = []
                while i < n:
                    if raw[i] != 0x0A:
                        break
                    ln, i = _varint(raw, i + 1)
                    out.append(raw[i : i + ln].decode())
                    i += ln
                else:
                    return out
        elif tag == 0x35 and n == 5:  # float_val
            return _F32.unpack_from(raw, 1)[0]
        elif tag == 0x38:  # bool_val
            v, i = _varint(raw, 1)
            if i == n:
                return bool(v)
    except (IndexError, UnicodeDecodeError):
        pass
    return _decode_slow(raw)


def decoder_for(value_type: Any) -> Decoder:
    """The decoder for a feature's value type: Feast's own where the type hint matters (UUIDs)."""
    from feast.value_type import ValueType

    hinted = {ValueType.UUID, ValueType.TIME_UUID, ValueType.UUID_LIST, ValueType.TIME_UUID_LIST,
              ValueType.UUID_SET, ValueType.TIME_UUID_SET}  # fmt: skip
    if value_type in hinted:
        return lambda raw: _decode_slow(raw, value_type) if raw else None
    return decode_value


# -- entity keys --------------------------------------------------------------------


def key_prefix(join_key: str) -> bytes:
    """Feast's v3 serialization of a one-string-join-key entity key, up to the value length."""
    name = join_key.encode()
    return _U32.pack(1) + _U32.pack(_STRING) + _U32.pack(len(name)) + name + _U32.pack(_STRING)


def entity_key_bytes(prefix: bytes, value: str) -> bytes:
    """``serialize_entity_key`` of a one-string-join-key entity, from its precomputed prefix.

    >>> entity_key_bytes(key_prefix("user_id"), "u1")
    b'\\x01\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x07\\x00\\x00\\x00user_id\\x02\\x00\\x00\\x00\\x02\\x00\\x00\\x00u1'
    """
    b = value.encode()
    return prefix + _U32.pack(len(b)) + b


# -- the read plan ------------------------------------------------------------------


@dataclass(frozen=True)
class ViewRead:
    """What is read from one FeatureView: its storage name, join keys and features."""

    name: str  # the name rows are stored under (Feast's versioned name if versioning is on)
    join_keys: tuple[str, ...]
    join_types: tuple[Any, ...]  # feast ValueType per join key
    features: tuple[str, ...]
    decoders: tuple[Decoder, ...]


@dataclass(frozen=True)
class Plan:
    views: tuple[ViewRead, ...]
    join_keys: tuple[str, ...]
    signature: tuple[Any, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f for v in self.views for f in v.features]


def _serialize_key(join_keys: tuple[str, ...], join_types: tuple[Any, ...], entity: dict[str, Any],
                   version: int) -> bytes:  # fmt: skip
    """The general path (several join keys or non-string ones): Feast's own serialization."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    values = [python_values_to_proto_values([entity[k]], t)[0] for k, t in zip(join_keys, join_types, strict=True)]
    return serialize_entity_key(EntityKey(join_keys=list(join_keys), entity_values=values),
                                entity_key_serialization_version=version)


class _KeyMaker:
    """Serialized entity keys of one set of join keys; the one-string-key case is a concatenation."""

    def __init__(self, join_keys: tuple[str, ...], join_types: tuple[Any, ...], version: int) -> None:
        self.join_keys, self.join_types, self.version = join_keys, join_types, version
        fast = len(join_keys) == 1 and int(getattr(join_types[0], "value", join_types[0])) == _STRING
        self.prefix = key_prefix(join_keys[0]) if fast else None

    def __call__(self, entity: dict[str, Any]) -> bytes:
        try:
            if self.prefix is not None:
                value = entity[self.join_keys[0]]
                return entity_key_bytes(self.prefix, value if type(value) is str else str(value))
            return _serialize_key(self.join_keys, self.join_types, entity, self.version)
        except KeyError as exc:
            raise OnlineReadError(f"entity {entity!r} lacks join key {exc.args[0]!r}; "
                                  f"expected {', '.join(self.join_keys)}") from None


class OnlineReader:
    """Read one or many entities' features from the online store, Feast's format, precomputed.

    ``names`` is a FeatureService name (a string) or a list of FeatureView
    names (every feature of each). ``get`` returns the join keys and one
    value per feature, like one row of ``get_online_features(...).to_dict()``.
    """

    def __init__(self, names: str | Sequence[str], env: str | None = None, refresh_s: float | None = 2.0,
                 store: FeatureStore | None = None) -> None:  # fmt: skip
        from workbench.promote.store import open_store

        self.service = names if isinstance(names, str) else None
        self.view_names = None if isinstance(names, str) else list(names)
        self.store = store or open_store(env)
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._next_check = 0.0
        self.backend: _RedisBackend | _SqliteBackend = self._open_backend()
        self.plan = self._resolve()
        self.backend.prepare(self.plan)
        self._next_check = time.monotonic() + (refresh_s or 0.0)

    @classmethod
    def for_service(cls, name: str, env: str | None = None, refresh_s: float | None = 2.0) -> OnlineReader:
        return cls(name, env=env, refresh_s=refresh_s)

    # -- reads ------------------------------------------------------------------------
    def get(self, entity: dict[str, Any]) -> dict[str, Any]:
        """One entity's join keys and feature values (None where nothing is stored)."""
        if self.refresh_s is not None and time.monotonic() >= self._next_check:
            self._check()
        return self.backend.get(entity)

    def get_many(self, entities: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Many entities in one round trip (Redis) or a few statements (SQLite)."""
        if self.refresh_s is not None and time.monotonic() >= self._next_check:
            self._check()
        return self.backend.get_many(entities) if entities else []

    def get_many_values(self, entities: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
        """``get_many`` without a dict per entity: the feature names, and each entity's values in that order."""
        if self.refresh_s is not None and time.monotonic() >= self._next_check:
            self._check()
        return self.backend.get_many_values(entities)

    # -- registry -----------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """The service's ``workbench.version`` tag as last resolved (None for view lists)."""
        return self.plan.signature[0] if self.service else None

    def refresh(self) -> bool:
        """Re-resolve from the registry now; True when the plan changed."""
        with self._lock:
            self._next_check = time.monotonic() + (self.refresh_s or 0.0)
            plan = self._resolve()
            if plan.signature == self.plan.signature:
                return False
            self.backend.prepare(plan)
            self.plan = plan
            return True

    def _check(self) -> None:
        """The periodic cheap check: only the service entry, and a full refresh when it moved."""
        with self._lock:
            if time.monotonic() < self._next_check:
                return  # another thread just checked
            self._next_check = time.monotonic() + (self.refresh_s or 0.0)
            if self.service is None:
                return
            moved = self._service_signature(self._get_service()) != self.plan.signature
        if moved:
            self.refresh()

    def _get_service(self) -> Any:
        from feast.errors import FeatureServiceNotFoundException

        assert self.service is not None
        try:
            return self.store.registry.get_feature_service(self.service, self.store.project, allow_cache=False)
        except FeatureServiceNotFoundException:
            raise OnlineReadError(f"no FeatureService {self.service!r} in Feast project "
                                  f"{self.store.project!r}; promote a feature set first") from None

    @staticmethod
    def _service_signature(service: Any) -> tuple[Any, ...]:
        return (service.tags.get("workbench.version"),
                tuple((p.name, tuple(f.name for f in p.features)) for p in service.feature_view_projections))

    def _resolve(self) -> Plan:
        from feast.infra.online_stores.helpers import compute_versioned_name

        registry, project = self.store.registry, self.store.project
        versioning = bool(getattr(self.store.config.registry, "enable_online_feature_view_versioning", False))
        wanted: list[tuple[str, list[str] | None]]
        if self.service is not None:
            service = self._get_service()
            signature = self._service_signature(service)
            wanted = [(p.name, [f.name for f in p.features]) for p in service.feature_view_projections]
        else:
            assert self.view_names is not None
            signature = (None, tuple(self.view_names))
            wanted = [(name, None) for name in self.view_names]
        views: list[ViewRead] = []
        join_keys: list[str] = []
        for name, features in wanted:
            fv = registry.get_feature_view(name, project, allow_cache=False)
            types = {f.name: f.dtype.to_value_type() for f in fv.features}
            names = features or [f.name for f in fv.features]
            cols = fv.entity_columns
            views.append(ViewRead(
                name=compute_versioned_name(fv, versioning),
                join_keys=tuple(c.name for c in cols),
                join_types=tuple(c.dtype.to_value_type() for c in cols),
                features=tuple(names),
                decoders=tuple(decoder_for(types.get(n)) for n in names),
            ))  # fmt: skip
            join_keys += [c.name for c in cols if c.name not in join_keys]
        return Plan(tuple(views), tuple(join_keys), signature)

    def _open_backend(self) -> _RedisBackend | _SqliteBackend:
        cfg = self.store.config
        kind = type(cfg.online_store).__name__
        if kind == "RedisOnlineStoreConfig":
            return _RedisBackend(self.store)
        if kind == "SqliteOnlineStoreConfig":
            return _SqliteBackend(self.store)
        raise OnlineReadError(f"the fast reader serves Redis and SQLite online stores, not {kind}; "
                              "use FeatureStore.get_online_features")

    def close(self) -> None:
        self.backend.close()


def _row(join_keys: tuple[str, ...], entity: dict[str, Any], names: list[str], values: list[Any]) -> dict[str, Any]:
    out = {k: entity.get(k) for k in join_keys}
    out.update(zip(names, values, strict=True))
    return out


@dataclass(frozen=True)
class _RedisReads:
    """A prepared Redis plan; swapped whole on refresh so a concurrent read never sees half of one."""

    # one HMGET per key bin (the views of one entity share a hash): key maker, fields, fields packed
    bins: list[tuple[_KeyMaker, list[bytes], bytes]]
    join_keys: tuple[str, ...]
    names: list[str]
    decoders: list[Decoder]


class _RedisBackend:
    """HMGET of precomputed mmh3 field names on Feast's ``<entity key><project>`` hashes.

    A plain Redis (Feast's ``redis_type: redis``, no TLS) is read over our own
    connection with pre-packed commands (:mod:`workbench.promote.resp`); any
    other setup through Feast's own redis-py client.
    """

    def __init__(self, store: FeatureStore) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore

        from workbench.promote.resp import RespConnection

        cfg = store.config.online_store
        plain = str(getattr(cfg.redis_type, "value", cfg.redis_type)) == "redis"
        self.raw = RespConnection.from_feast(cfg.connection_string) if plain else None
        # Feast's own client for this config (plain, cluster or sentinel)
        self.client = None if self.raw else RedisOnlineStore()._get_client(cfg)
        self.project = store.project.encode()
        self.version = store.config.entity_key_serialization_version

    def prepare(self, plan: Plan) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        from workbench.promote.resp import pack_fields

        bins: dict[tuple[str, ...], tuple[_KeyMaker, list[bytes], list[Decoder], list[str]]] = {}
        for v in plan.views:
            if v.join_keys not in bins:
                bins[v.join_keys] = (_KeyMaker(v.join_keys, v.join_types, self.version), [], [], [])
            _, fields, decoders, names = bins[v.join_keys]
            fields += [_mmh3(f"{v.name}:{f}") for f in v.features]
            decoders += v.decoders
            names += v.features
        b = list(bins.values())
        self.reads = _RedisReads([(m, f, pack_fields(f)) for m, f, _, _ in b], plan.join_keys,
                                 [n for *_, ns in b for n in ns], [d for _, _, ds, _ in b for d in ds])  # fmt: skip

    def _fetch(self, reads: _RedisReads, entities: Sequence[dict[str, Any]]) -> list[list[bytes | None]]:
        import redis

        from workbench.promote.resp import hmget_command
        from workbench.promote.store import StoreUnavailable

        bins, project = reads.bins, self.project
        try:
            if self.raw is not None:
                replies = self.raw.hmget([hmget_command(make(e) + project, packed, len(fields))
                                          for e in entities for make, fields, packed in bins])  # fmt: skip
            else:
                assert self.client is not None
                with self.client.pipeline(transaction=False) as pipe:
                    for e in entities:
                        for make, fields, _ in bins:
                            pipe.hmget(make(e) + project, fields)
                    replies = pipe.execute()
        except (OSError, redis.RedisError) as exc:
            raise StoreUnavailable(f"Redis online store read failed ({exc})") from exc
        n = len(bins)
        if n == 1:
            return replies
        return [[v for r in replies[i * n : (i + 1) * n] for v in r] for i in range(len(entities))]

    def get(self, entity: dict[str, Any]) -> dict[str, Any]:
        reads = self.reads
        raw = self._fetch(reads, [entity])[0]
        return _row(reads.join_keys, entity, reads.names, [d(r) for d, r in zip(reads.decoders, raw, strict=True)])

    def get_many(self, entities: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        reads = self.reads
        decs = reads.decoders
        return [_row(reads.join_keys, e, reads.names, [d(r) for d, r in zip(decs, raw, strict=True)])
                for e, raw in zip(entities, self._fetch(reads, entities), strict=True)]

    def get_many_values(self, entities: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
        reads = self.reads
        decs = reads.decoders
        if not entities:
            return reads.names, []
        return reads.names, [[d(r) for d, r in zip(decs, raw, strict=True)] for raw in self._fetch(reads, entities)]

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.client is not None:
            self.client.close()


@dataclass(frozen=True)
class _SqliteReads:
    join_keys: tuple[str, ...]
    names: list[str]
    decoders: list[Decoder]
    makers: list[_KeyMaker]  # one per view
    slots: dict[tuple[int, str], int]  # (view index, feature name) -> output position
    tables: list[str]
    one_sql: str


class _SqliteBackend:
    """One ``SELECT ... UNION ALL ...`` over the views' ``<project>_<view>`` tables."""

    def __init__(self, store: FeatureStore) -> None:
        import sqlite3
        from pathlib import Path

        path = Path(store.config.online_store.path)
        if not path.is_absolute():
            path = Path(store.repo_path) / path
        # our own connection; reads see every committed write of the job process
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.lock = threading.Lock()
        self.project = store.project
        self.version = store.config.entity_key_serialization_version

    def prepare(self, plan: Plan) -> None:
        slots: dict[tuple[int, str], int] = {}
        for i, v in enumerate(plan.views):
            for f in v.features:
                slots[(i, f)] = len(slots)
        tables = ['"' + f"{self.project}_{v.name}".replace('"', '""') + '"' for v in plan.views]
        self.reads = _SqliteReads(
            join_keys=plan.join_keys,
            names=plan.feature_names,
            decoders=[d for v in plan.views for d in v.decoders],
            makers=[_KeyMaker(v.join_keys, v.join_types, self.version) for v in plan.views],
            slots=slots,
            tables=tables,
            one_sql=" UNION ALL ".join(f"SELECT {i}, feature_name, value FROM {t} WHERE entity_key = ?"
                                       for i, t in enumerate(tables)),
        )  # fmt: skip

    def _execute(self, sql: str, params: list[Any]) -> list[Any]:
        import sqlite3

        try:
            with self.lock:
                return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise OnlineReadError(f"SQLite online store read failed ({exc}); was the version applied?") from exc

    def get(self, entity: dict[str, Any]) -> dict[str, Any]:
        r = self.reads
        values: list[Any] = [None] * len(r.names)
        for i, feature, raw in self._execute(r.one_sql, [m(entity) for m in r.makers]):
            s = r.slots.get((i, feature))
            if s is not None:
                values[s] = r.decoders[s](raw)
        return _row(r.join_keys, entity, r.names, values)

    def get_many(self, entities: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        r = self.reads
        keys = [[m(e) for m in r.makers] for e in entities]
        values: list[list[Any]] = [[None] * len(r.names) for _ in entities]
        for i, table in enumerate(r.tables):
            where: dict[bytes, list[int]] = {}
            for row, ks in enumerate(keys):
                where.setdefault(ks[i], []).append(row)
            wanted = list(where)
            for start in range(0, len(wanted), _SQLITE_PARAMS):
                chunk = wanted[start : start + _SQLITE_PARAMS]
                sql = (f"SELECT entity_key, feature_name, value FROM {table} "
                       f"WHERE entity_key IN ({','.join('?' * len(chunk))})")
                for key, feature, raw in self._execute(sql, chunk):
                    s = r.slots.get((i, feature))
                    if s is not None:
                        value = r.decoders[s](raw)
                        for row in where[key]:
                            values[row][s] = value
        return [_row(r.join_keys, e, r.names, v) for e, v in zip(entities, values, strict=True)]

    def get_many_values(self, entities: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
        names = self.reads.names
        return names, [[row[n] for n in names] for row in self.get_many(entities)] if entities else []

    def close(self) -> None:
        self.conn.close()
