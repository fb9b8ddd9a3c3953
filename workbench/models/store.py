"""The model store: MLflow's model registry, extended with Workbench's lineage.

Each :func:`ModelStore.register` is one MLflow run in the experiment
``workbench-models`` (params, numeric metrics, the artifact under ``artifact/``
and the lineage document ``lineage.json``) plus one registered model version
whose tags carry the same lineage (``workbench.lineage``, and ``workbench.kind``,
``workbench.parent``, ``workbench.depends_on``, ``workbench.feature_hashes`` for
searching in MLflow's own tools). By default the tracking and registry URI is
``sqlite:///<WORKBENCH_HOME>/mlflow.db`` with artifacts in ``<home>/mlartifacts``;
any MLflow tracking server (``http://...``) or SQL database works the same.

MLflow is imported on first use: ``import mlflow`` alone takes about 1.5-2 s.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from workbench.models.artifact import pack, unpack
from workbench.models.errors import ModelStoreError, UnknownModelError
from workbench.models.version import (
    LATEST,
    ModelVersion,
    Selector,
    check_alias,
    check_data_range,
    check_json,
    check_name,
    numeric_metrics,
    parse_ref,
    selector,
)

EXPERIMENT = "workbench-models"
TAG_LINEAGE = "workbench.lineage"
ARTIFACT_PATH = "artifact"
MAX_TAG_CHARS = 100_000  # MLflow's limit on a model version tag value

Parent = ModelVersion | str | int | None
Dependencies = ModelVersion | str | Mapping[str, int] | Iterable[ModelVersion | str] | None


def default_uri() -> str:
    """The configured MLflow URI, else SQLite under the Workbench home.

    ``settings().mlflow_uri`` (``WORKBENCH_MLFLOW_URI``) is used as soon as the
    settings object has that field.
    """
    from workbench.config import settings

    s = settings()
    configured = getattr(s, "mlflow_uri", None)
    return str(configured) if configured else f"sqlite:///{s.home / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow as a library: no telemetry, no progress bars, no schema chatter."""
    import warnings

    # Workbench never phones home, and a progress bar per artifact is noise in a notebook.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)  # "Creating initial MLflow database tables"
    with warnings.catch_warnings():
        # MLflow's SQLAlchemy models use a loader SQLAlchemy 2.1 deprecates; nothing for users to do
        warnings.filterwarnings("ignore", message=".*noload.*")
        yield


class ModelStore:
    """Model versions with lineage on one MLflow tracking/registry URI."""

    def __init__(self, uri: str | None = None, *, artifact_root: str | None = None,
                 cache_dir: Path | None = None) -> None:
        from workbench.config import settings

        self.uri = uri or default_uri()
        db = _sqlite_path(self.uri)
        self._db = db
        # a SQLite store keeps its artifacts beside the database; a server decides for itself
        self.artifact_root = artifact_root or (str(db.parent / "mlartifacts") if db else None)
        self.cache_dir = cache_dir or settings().home / "mlcache"
        self._mlflow: Any = None
        self._experiment: str | None = None

    def __repr__(self) -> str:
        return f"ModelStore({self.uri!r})"

    @property
    def client(self) -> Any:
        """The MLflow client (created on first use)."""
        if self._mlflow is None:
            with _quiet():
                if self._db is not None:
                    from workbench.config import settings
                    from workbench.models.template import seed

                    seed(self._db, settings().cache_dir)
                from mlflow import MlflowClient

                self._mlflow = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._mlflow

    # -- writing ----------------------------------------------------------------------------

    def register(self, name: str, artifact: Any, *, kind: str, parent: Parent = None,
                 data_range: Mapping[str, Any] | None = None, feature_hashes: Iterable[Any] = (),
                 metrics: Mapping[str, Any] | None = None, depends_on: Dependencies = None,
                 description: str = "") -> ModelVersion:
        """Store ``artifact`` as the next version of ``name`` with its lineage; see the package doc."""
        check_name(name)
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 64:
            raise ModelStoreError(f"bad model kind {kind!r}: e.g. 'embedding' or 'ranking'")
        draft = ModelVersion(
            name=name, version=0, kind=kind,
            parent=self._resolve_parent(name, parent),
            data_range=check_data_range(data_range),
            feature_hashes=_hashes(feature_hashes),
            metrics=check_json(dict(metrics or {}), "metrics"),
            depends_on=self._resolve_dependencies(depends_on),
            description=str(description),
        )
        c = self.client
        run = c.create_run(self._experiment_id(), run_name=name,
                           tags={"workbench.model": name, "workbench.kind": kind})
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory(prefix="wb-model-") as tmp:
                folder = Path(tmp) / ARTIFACT_PATH
                draft = replace(draft, artifact=pack(artifact, folder))
                c.log_artifacts(run_id, str(folder), ARTIFACT_PATH)
            self._log_run(run_id, draft)
            self._ensure_registered(name)
            doc = {k: v for k, v in draft.document().items() if k not in ("name", "version")}
            mv = c.create_model_version(name, source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                                        run_id=run_id, tags=_version_tags(draft, doc),
                                        description=draft.description or None)
            version = int(mv.version)
            c.log_text(run_id, json.dumps(replace(draft, version=version).document(), indent=2),
                       "lineage.json")
            c.set_terminated(run_id)
        except BaseException:
            c.set_terminated(run_id, status="FAILED")
            raise
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: Selector) -> ModelVersion:
        """Point ``alias`` (e.g. ``"champion"``) at a version; returns that version."""
        mv = self.get(name, version)
        self.client.set_registered_model_alias(name, check_alias(alias), str(mv.version))
        return self.get(name, mv.version)

    # -- reading ----------------------------------------------------------------------------

    def get(self, name: str, version: Selector = LATEST) -> ModelVersion:
        """One version by number, ``"latest"`` (the highest number) or alias."""
        check_name(name)
        sel = selector(version)
        from mlflow.exceptions import MlflowException

        try:
            if sel == LATEST:
                page = self.client.search_model_versions(f"name='{name}'", max_results=1,
                                                         order_by=["version_number DESC"])
                if not page:
                    raise UnknownModelError(f"no model named {name!r}; `workbench models list` shows them")
                raw = page[0]
            elif isinstance(sel, int):
                raw = self.client.get_model_version(name, str(sel))
            else:
                raw = self.client.get_model_version_by_alias(name, sel)
        except MlflowException:
            self._raise_unknown(name, sel)
        return self._read([raw], self._aliases(name), {})[0]

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        check_name(name)
        raws = sorted(self._search_versions(name), key=lambda r: int(r.version))
        if not raws:
            raise UnknownModelError(f"no model named {name!r}; `workbench models list` shows them")
        return self._read(raws, self._aliases(name), {})

    def names(self) -> list[str]:
        """Every registered model name, sorted."""
        out: list[str] = []
        token = None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            out.extend(m.name for m in page)
            token = page.token
            if not token:
                return sorted(out)

    def load(self, name: str, version: Selector = LATEST) -> Any:
        """The artifact: the Python object, or the :class:`~pathlib.Path` of a stored file or directory.

        Downloads once into ``cache_dir`` (versions never change); the digest is checked each time.
        """
        mv = self.get(name, version)
        folder = self.cache_dir / mv.run_id / ARTIFACT_PATH
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
                got = Path(self.client.download_artifacts(mv.run_id, ARTIFACT_PATH, tmp))
                try:
                    got.rename(folder)  # atomic: a concurrent loader's copy wins, equally good
                except OSError:
                    if not folder.exists():
                        raise
        return unpack(folder, mv.artifact)

    def lineage(self, name: str, version: Selector = LATEST) -> list[ModelVersion]:
        """The version, its parent, the parent's parent ... to the root (each with its depends_on)."""
        chain = [self.get(name, version)]
        while chain[-1].parent:
            ref = chain[-1].parent
            if any(v.ref == ref for v in chain):
                raise ModelStoreError(f"lineage of {name} loops at {ref}")
            try:
                chain.append(self.get(*parse_ref(ref)))
            except UnknownModelError:
                raise UnknownModelError(f"{chain[-1].ref} names parent {ref}, which is not in the "
                                        "registry any more") from None
        return chain

    def stale(self, name: str) -> list[ModelVersion]:
        """Versions of ``name`` trained with an older version of a model they depend on."""
        return [v for v in self.versions(name) if v.stale]

    # -- internals --------------------------------------------------------------------------

    def _experiment_id(self) -> str:
        if self._experiment is None:
            from mlflow.exceptions import MlflowException

            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                try:
                    self._experiment = self.client.create_experiment(EXPERIMENT,
                                                                     artifact_location=self.artifact_root)
                except MlflowException:  # another process created it first
                    exp = self.client.get_experiment_by_name(EXPERIMENT)
                    if exp is None:
                        raise
            if exp is not None:
                self._experiment = str(exp.experiment_id)
        assert self._experiment is not None
        return self._experiment

    def _ensure_registered(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(name, tags={"workbench.model": "true"})
            except MlflowException:  # created concurrently
                self.client.get_registered_model(name)

    def _log_run(self, run_id: str, mv: ModelVersion) -> None:
        from mlflow.entities import Metric, Param

        params = {"kind": mv.kind, "parent": mv.parent or "-",
                  "depends_on": _deps_text(mv.depends_on) or "-",
                  "feature_hashes": ",".join(mv.feature_hashes) or "-",
                  "data_range": json.dumps(mv.data_range) if mv.data_range else "-",
                  "artifact_format": mv.artifact.get("format", "-")}
        now_ms = int(time.time() * 1000)
        # MLflow metric keys allow letters, digits and _ - . / : and spaces
        metrics = [Metric(re.sub(r"[^\w\-./: ]", "_", k), v, now_ms, 0)
                   for k, v in numeric_metrics(mv.metrics).items()]
        self.client.log_batch(run_id, metrics=metrics, params=[Param(k, v[:6000]) for k, v in params.items()])

    def _resolve_parent(self, name: str, parent: Parent) -> str | None:
        if parent is None:
            return None
        if isinstance(parent, ModelVersion):
            return self.get(parent.name, parent.version).ref
        if isinstance(parent, int) and not isinstance(parent, bool):
            return self.get(name, parent).ref
        if isinstance(parent, str):
            return self.get(*parse_ref(parent)).ref
        raise ModelStoreError(f"bad parent {parent!r}: a ModelVersion, 'name/3', 'name@alias' or a version number")

    def _resolve_dependencies(self, deps: Dependencies) -> dict[str, int]:
        if deps is None:
            return {}
        if isinstance(deps, Mapping):
            items: list[ModelVersion | str] = [f"{k}/{v}" for k, v in deps.items()]
        elif isinstance(deps, ModelVersion | str):
            items = [deps]
        else:
            items = list(deps)
        out: dict[str, int] = {}
        for item in items:
            if isinstance(item, ModelVersion):
                mv = self.get(item.name, item.version)
            elif isinstance(item, str):
                mv = self.get(*parse_ref(item))  # an alias or "latest" is pinned to its number now
            else:
                raise ModelStoreError(f"bad dependency {item!r}: a ModelVersion or 'name/3'")
            if out.get(mv.name, mv.version) != mv.version:
                raise ModelStoreError(f"depends on two versions of {mv.name}")
            out[mv.name] = mv.version
        return dict(sorted(out.items()))

    def _search_versions(self, name: str) -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_model_versions(f"name='{name}'", max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _aliases(self, name: str) -> dict[int, tuple[str, ...]]:
        from mlflow.exceptions import MlflowException

        try:
            aliases = self.client.get_registered_model(name).aliases or {}
        except MlflowException:
            return {}
        out: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            out.setdefault(int(v), []).append(alias)
        return {v: tuple(sorted(a)) for v, a in out.items()}

    def _newest(self, name: str, cache: dict[str, int]) -> int:
        if name not in cache:
            page = self.client.search_model_versions(f"name='{name}'", max_results=1,
                                                     order_by=["version_number DESC"])
            cache[name] = int(page[0].version) if page else 0
        return cache[name]

    def _read(self, raws: list[Any], aliases: dict[int, tuple[str, ...]],
              newest: dict[str, int]) -> list[ModelVersion]:
        out = []
        for raw in raws:
            doc = json.loads((raw.tags or {}).get(TAG_LINEAGE, "{}"))
            version = int(raw.version)
            newer = tuple(f"{dep}/{self._newest(dep, newest)}" for dep, v in doc.get("depends_on", {}).items()
                          if self._newest(dep, newest) > int(v))
            out.append(ModelVersion.from_document(
                raw.name, version, doc, created_at=raw.creation_timestamp / 1000.0, run_id=raw.run_id or "",
                aliases=aliases.get(version, ()), stale=bool(newer), stale_because=newer))
        return out

    def _raise_unknown(self, name: str, sel: Selector) -> NoReturn:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            raise UnknownModelError(f"no model named {name!r}; `workbench models list` shows them") from None
        what = f"alias {sel!r}" if isinstance(sel, str) else f"version {sel}"
        raise UnknownModelError(f"model {name!r} has no {what}; `workbench models list {name}` lists its versions")


def _hashes(features: Iterable[Any]) -> tuple[str, ...]:
    """Definition hashes, sorted; a :class:`~workbench.features.definition.Feature` is saved so
    ``workbench.features.definition.load(hash)`` rebuilds it."""
    if isinstance(features, str):
        features = [features]
    out: set[str] = set()
    for f in features:
        if isinstance(f, str):
            if not f or any(ch in f for ch in ",/ "):
                raise ModelStoreError(f"bad feature definition hash {f!r}")
            out.add(f)
        elif hasattr(f, "hash") and hasattr(f, "spec"):
            from workbench.features.definition import save

            out.update(save([f]))
        else:
            raise ModelStoreError(f"feature_hashes takes hashes or Feature objects, got {type(f).__name__}")
    return tuple(sorted(out))


def _deps_text(deps: Mapping[str, int]) -> str:
    return ",".join(f"{k}/{v}" for k, v in deps.items())


def _version_tags(mv: ModelVersion, doc: dict[str, Any]) -> dict[str, str]:
    text = json.dumps(doc, sort_keys=True)
    if len(text) > MAX_TAG_CHARS:
        raise ModelStoreError(f"lineage document of {mv.name} is {len(text)} characters; the registry keeps "
                              f"at most {MAX_TAG_CHARS} (keep large evaluation details in the artifact)")
    return {
        TAG_LINEAGE: text,
        "workbench.kind": mv.kind,
        "workbench.parent": mv.parent or "",
        "workbench.depends_on": _deps_text(mv.depends_on),
        "workbench.feature_hashes": ",".join(mv.feature_hashes),
    }
