"""The production Feast feature store, one repo folder per environment, and the objects of a version.

Profiles (``WORKBENCH_ENV`` or ``--env``):

- ``local``: SQLite online store (``online.db``), file offline store
  (Parquet under ``data/``), SQL registry in SQLite (``registry.db``).
- ``production``: the Redis online store at ``WORKBENCH_REDIS_URL``; the same
  offline store and registry.

The registry is Feast's SQL registry so that every object write is one
transaction: re-pointing the ``<set>`` FeatureService to a new version is one
atomic write, and a reader sees the old version or the new one.

>>> print(config_yaml("local", Path("/srv/repo/local"), "workbench"))  # doctest: +NORMALIZE_WHITESPACE
project: workbench
provider: local
registry:
  registry_type: sql
  path: sqlite:////srv/repo/local/registry.db
  cache_ttl_seconds: 2
online_store:
  type: sqlite
  path: /srv/repo/local/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
<BLANKLINE>
>>> redis_connection_string("redis://:pw@10.0.0.5:6380/2")
'10.0.0.5:6380,db=2,password=pw'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from workbench.errors import WorkbenchError
from workbench.promote.naming import entities, feast_type, join_key, view_names

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

    from workbench.features.definition import Entity, Feature, FeatureSet

ENVIRONMENTS = ("local", "production")


class StoreUnavailable(WorkbenchError):
    """The online store (Redis in production) cannot be reached."""


def environment(env: str | None) -> str:
    from workbench.config import settings

    name = env or settings().env
    if name not in ENVIRONMENTS:
        raise WorkbenchError(f"unknown environment {name!r}; use one of: {', '.join(ENVIRONMENTS)}")
    return name


def repo_path(env: str | None = None) -> Path:
    from workbench.config import settings

    return settings().repo_root / environment(env)


def redis_connection_string(url: str) -> str:
    """Feast's ``host:port,db=N[,password=...]`` form of a ``redis://`` URL."""
    u = urlparse(url)
    parts = [f"{u.hostname or '127.0.0.1'}:{u.port or 6379}"]
    db = (u.path or "/0").lstrip("/") or "0"
    parts.append(f"db={db}")
    if u.password:
        parts.append(f"password={u.password}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def config_yaml(env: str, path: Path, project: str, redis_url: str = "") -> str:
    online = (f"  type: redis\n  connection_string: \"{redis_connection_string(redis_url)}\"\n"
              if env == "production" else f"  type: sqlite\n  path: {path / 'online.db'}\n")
    return (
        f"project: {project}\n"
        "provider: local\n"
        "registry:\n"
        "  registry_type: sql\n"
        f"  path: sqlite:///{path / 'registry.db'}\n"
        "  cache_ttl_seconds: 2\n"
        f"online_store:\n{online}"
        "offline_store:\n"
        "  type: file\n"
        "entity_key_serialization_version: 3\n"
    )


def ensure_repo(env: str | None = None) -> Path:
    """Create (or refresh) the environment's repo folder and its ``feature_store.yaml``."""
    from workbench.config import settings

    s = settings()
    name = environment(env)
    path = repo_path(name)
    (path / "data").mkdir(parents=True, exist_ok=True)
    text = config_yaml(name, path, s.feast_project, s.redis_url)
    yaml = path / "feature_store.yaml"
    if not yaml.exists() or yaml.read_text() != text:
        tmp = yaml.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(yaml)
    return path


def open_store(env: str | None = None, check: bool = True) -> FeatureStore:
    """A Feast FeatureStore on the environment's repo (created on first use)."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(ensure_repo(env)))
    if check and environment(env) == "production":
        ping_redis()
    return store


def ping_redis() -> None:
    import redis

    from workbench.config import settings

    url = settings().redis_url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis online store at {url} is unreachable ({exc}); "
                               "start redis-server or set WORKBENCH_REDIS_URL") from exc


# -- the Feast objects of one feature-set version ---------------------------------


@dataclass
class VersionObjects:
    """Everything one version adds to the registry; nothing here touches another version."""

    feature_set: str
    version: int
    entities: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    views: list[FeatureView] = field(default_factory=list)
    service: FeatureService | None = None

    @property
    def all(self) -> list[Any]:
        return [*self.entities, *self.sources, *self.views, *([self.service] if self.service else [])]


def ttl_of(features: list[Feature]) -> timedelta:
    """How long a value stays meaningful: the longest window (or session gap) plus its grace."""
    longest = 0
    for f in features:
        spec = f.window.spec()
        span = max(int(spec.get(k) or 0) for k in ("size_ms", "gap_ms", "half_life_ms"))
        longest = max(longest, span + int(spec.get("grace_ms") or 0))
    return timedelta(milliseconds=longest or 86_400_000)


def data_file(view: str) -> str:
    """The view's offline table, relative to the repo (Feast resolves it against repo_path)."""
    return f"data/{view}.parquet"


def feast_entity(entity: Entity) -> Any:
    from feast import Entity as FeastEntity
    from feast.value_type import ValueType

    return FeastEntity(name=entity.name, join_keys=[join_key(entity)], value_type=ValueType.STRING,
                       description=f"Workbench entity {entity.name}; key {entity.key_expr.spec()}")


def _dtype(name: str) -> Any:
    from feast import types

    if name.startswith("Array("):
        return types.Array(getattr(types, name[6:-1]))
    return getattr(types, name)


def version_objects(feature_set: FeatureSet, version: int) -> VersionObjects:
    """Entities, sources, one FeatureView per entity, and the FeatureService ``<set>_v<N>``."""
    from feast import FeatureService, FeatureView, Field, FileSource, PushSource
    from feast.types import String

    names = view_names(feature_set, version)
    out = VersionObjects(feature_set.name, version)
    for entity in entities(feature_set):
        members = [f for f in feature_set.features if f.entity.name == entity.name]
        view = names[members[0].name]
        batch = FileSource(name=f"{view}_batch", path=data_file(view), timestamp_field="event_timestamp")
        push = PushSource(name=f"{view}_push", batch_source=batch)
        schema = [Field(name=join_key(entity), dtype=String)]
        schema += [Field(name=f.name, dtype=_dtype(feast_type(f)), description=f.description,
                         tags={"workbench.hash": f.hash}) for f in members]
        fe = feast_entity(entity)
        out.entities.append(fe)
        out.sources += [batch, push]
        out.views.append(FeatureView(
            name=view, entities=[fe], ttl=ttl_of(members), schema=schema, source=push, online=True,
            tags={"workbench.set": feature_set.name, "workbench.version": str(version),
                  "workbench.hashes": ",".join(f.hash for f in members)},
        ))  # fmt: skip
    out.service = FeatureService(name=f"{feature_set.name}_v{version}", features=list[Any](out.views),
                                 tags={"workbench.set": feature_set.name, "workbench.version": str(version)})
    return out


def set_service(name: str, views: list[FeatureView], version: int) -> FeatureService:
    """The unversioned FeatureService ``<set>`` that readers use; promote and rollback re-point it."""
    from feast import FeatureService

    return FeatureService(name=name, features=list[Any](views),
                          tags={"workbench.set": name, "workbench.version": str(version)})
