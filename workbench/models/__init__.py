"""The model store: versions of the embedding and ranking models, each with its lineage.

Every version records its parent (the version it was trained or fine-tuned
from), the data range it was trained on (topic partitions with first and last
offsets, and event-time bounds: the shape of
``workbench.evaluation.evaluate.data_range``), the feature definition hashes
(``workbench.features.definition.load(HASH)`` rebuilds each), its evaluation
metrics, the model versions it depends on, and the artifact. It lives in
MLflow's model registry: SQLite under ``WORKBENCH_HOME`` by default, any MLflow
tracking server when configured (see :func:`workbench.models.store.default_uri`).
Every function takes ``uri=`` to name a store explicitly.

>>> import tempfile
>>> from workbench import models
>>> uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
>>> rng = {"topic": "events", "partitions": {"0": [0, 999]}, "event_time_ms": [0, 86_400_000]}
>>> e1 = models.register("item_vectors", {"a": [0.1, 0.2]}, kind="embedding", data_range=rng, uri=uri)
>>> r1 = models.register("ranker", {"w": 1}, kind="ranking", depends_on=e1,
...                      feature_hashes=["3f2a9c0d11e4b5a6"], metrics={"auc": 0.71}, uri=uri)
>>> r2 = models.register("ranker", {"w": 2}, kind="ranking", parent=r1, depends_on=e1, uri=uri)
>>> [v.ref for v in models.lineage("ranker", uri=uri)]
['ranker/2', 'ranker/1']
>>> models.load("ranker", 1, uri=uri)
{'w': 1}
>>> e2 = models.register("item_vectors", {"a": [0.3, 0.1]}, kind="embedding", parent=e1, uri=uri)
>>> [(v.ref, v.stale_because) for v in models.stale("ranker", uri=uri)]
[('ranker/1', ('item_vectors/2',)), ('ranker/2', ('item_vectors/2',))]
>>> models.set_alias("ranker", "champion", 2, uri=uri).aliases
('champion',)
>>> models.get("ranker", "champion", uri=uri).depends_on
{'item_vectors': 1}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workbench.models.errors import ModelStoreError, UnknownModelError
from workbench.models.store import Dependencies, ModelStore, Parent, default_uri
from workbench.models.version import LATEST, ModelVersion, Selector, parse_ref

__all__ = [
    "ModelStore", "ModelStoreError", "ModelVersion", "UnknownModelError", "get", "lineage", "load",
    "names", "parse_ref", "register", "set_alias", "stale", "store", "versions",
]

_stores: dict[str, ModelStore] = {}


def store(uri: str | None = None) -> ModelStore:
    """The store at ``uri`` (default: :func:`~workbench.models.store.default_uri`), one per URI."""
    uri = uri or default_uri()
    if uri not in _stores:
        _stores[uri] = ModelStore(uri)
    return _stores[uri]


def register(name: str, artifact: Any, *, kind: str, parent: Parent = None,
             data_range: Mapping[str, Any] | None = None, feature_hashes: Iterable[Any] = (),
             metrics: Mapping[str, Any] | None = None, depends_on: Dependencies = None,
             description: str = "", uri: str | None = None) -> ModelVersion:
    """Store ``artifact`` as the next version of ``name`` and return that version.

    - ``artifact``: any picklable object (stored with cloudpickle), or a
      :class:`~pathlib.Path` to a file or directory (copied as is).
    - ``kind``: ``"embedding"``, ``"ranking"`` or another word.
    - ``parent``: the version this one was trained or fine-tuned from: a
      :class:`ModelVersion`, ``"ranker/3"``, ``"ranker@champion"`` or a version
      number of ``name``; it must exist and is recorded by number.
    - ``data_range``: ``{"topic", "partitions": {p: [first, last]}, "event_time_ms": [min, max]}``.
    - ``feature_hashes``: definition hashes, or Feature objects (saved, so their hashes rebuild).
    - ``metrics``: JSON-serializable evaluation metrics; numeric leaves also become MLflow metrics.
    - ``depends_on``: the model versions this one was trained with, e.g. the
      embedding version a ranking model used (a version, ``"name/N"``, or ``{name: N}``).
    """
    return store(uri).register(name, artifact, kind=kind, parent=parent, data_range=data_range,
                               feature_hashes=feature_hashes, metrics=metrics, depends_on=depends_on,
                               description=description)


def get(name: str, version: Selector = LATEST, *, uri: str | None = None) -> ModelVersion:
    """One version: a number, ``"latest"`` (the highest number) or an alias such as ``"champion"``."""
    return store(uri).get(name, version)


def load(name: str, version: Selector = LATEST, *, uri: str | None = None) -> Any:
    """The version's artifact: the unpickled object, or the Path of its file or directory."""
    return store(uri).load(name, version)


def versions(name: str, *, uri: str | None = None) -> list[ModelVersion]:
    """Every version of ``name``, oldest first."""
    return store(uri).versions(name)


def names(*, uri: str | None = None) -> list[str]:
    """Every registered model name."""
    return store(uri).names()


def lineage(name: str, version: Selector = LATEST, *, uri: str | None = None) -> list[ModelVersion]:
    """The chain from a version back to its root through parents; each shows its ``depends_on``."""
    return store(uri).lineage(name, version)


def set_alias(name: str, alias: str, version: Selector, *, uri: str | None = None) -> ModelVersion:
    """Point ``alias`` at a version (moving it if it pointed elsewhere)."""
    return store(uri).set_alias(name, alias, version)


def stale(name: str, *, uri: str | None = None) -> list[ModelVersion]:
    """Versions of ``name`` whose ``depends_on`` names an older version than the newest of that model."""
    return store(uri).stale(name)
