"""Save and load a recommender through the model store: embedding and ranking as separate versions.

The embedding version is registered only when its table changed (its
fingerprint is recorded in the version's metrics); the ranking version
records ``depends_on`` the embedding version it was trained with, so a new
embedding version flags it as stale (``workbench.models.stale``).

>>> import tempfile
>>> from workbench.streams.simulator import ShopSimulator
>>> from workbench.recommender.recommender import Recommender
>>> events = ShopSimulator(seed=3, n_users=200, n_items=120, n_categories=4).frame(
...     start_ms=1_700_000_000_000, duration_s=86_400)
>>> rec = Recommender(dim=8, candidates=30, max_train_prefixes=500).fit(events)
>>> uri = f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
>>> v = save(rec, uri=uri)
>>> v.ref, v.depends_on
('session_ranker/1', {'item_embeddings': 1})
>>> save(rec, uri=uri).depends_on   # same table: the embedding version is reused
{'item_embeddings': 1}
>>> back = load(uri=uri)
>>> back.item_source = rec.item_source   # item features are data: the online store when served
>>> back.version, back.recommend(["i3"], k=3).items == rec.recommend(["i3"], k=3).items
('session_ranker/2', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.models import ModelVersion
    from workbench.recommender.recommender import Recommender

EMBEDDING_MODEL = "item_embeddings"
RANKING_MODEL = "session_ranker"


def _embedding_version(rec: Recommender, name: str, uri: str | None) -> ModelVersion:
    from workbench import models
    from workbench.models import UnknownModelError

    fingerprint = rec.embeddings.fingerprint()
    try:
        latest = models.get(name, uri=uri)
    except UnknownModelError:
        latest = None
    if latest is not None and latest.metrics.get("fingerprint") == fingerprint:
        return latest
    return models.register(name, rec.embeddings, kind="embedding", parent=latest, data_range=rec.data_range,
                           metrics={"fingerprint": fingerprint, "items": len(rec.embeddings),
                                    **rec.embeddings.params}, uri=uri)  # fmt: skip


def save(rec: Recommender, *, metrics: dict[str, Any] | None = None, parent: Any = None, uri: str | None = None,
         embedding_name: str = EMBEDDING_MODEL, ranking_name: str = RANKING_MODEL) -> ModelVersion:  # fmt: skip
    """Register the embedding (if new) and the ranking model; the recommender takes the new version names."""
    from workbench import models

    emb = _embedding_version(rec, embedding_name, uri)
    artifact = {"params": rec.params(), "ranker": rec.ranker, "popular": rec.popular, "extra_sets": rec.extra_sets,
                "extra_hashes": rec.extra_hashes}  # fmt: skip
    hashes = [f.hash for f in rec.item_feature_set().features] + [f.hash for f in rec.session_feature_set().features]
    hashes += rec.extra_hashes
    version = models.register(ranking_name, artifact, kind="ranking", parent=parent, depends_on=emb,
                              data_range=rec.data_range, feature_hashes=hashes,
                              metrics={"examples": rec.ranker.examples, **(metrics or {})}, uri=uri)  # fmt: skip
    rec.version, rec.embedding_version = version.ref, emb.ref
    return version


def load(version: Any = "latest", *, uri: str | None = None, ranking_name: str = RANKING_MODEL) -> Recommender:
    """A saved recommender: the ranking version and the embedding version it depends on."""
    from workbench import models
    from workbench.recommender.recommender import Recommender

    mv = models.get(ranking_name, version, uri=uri)
    artifact = models.load(ranking_name, mv.version, uri=uri)
    if len(mv.depends_on) != 1:
        raise models.ModelStoreError(f"{mv.ref} should depend on one embedding version, not {mv.depends_on}")
    ((emb_name, emb_version),) = mv.depends_on.items()
    rec = Recommender(**artifact["params"])
    rec.embeddings = models.load(emb_name, emb_version, uri=uri)
    rec._build_index()
    rec.ranker, rec.popular, rec.data_range = artifact["ranker"], artifact["popular"], mv.data_range
    rec.extra_sets, rec.extra_hashes = artifact.get("extra_sets", {}), artifact.get("extra_hashes", [])
    rec.version, rec.embedding_version = mv.ref, f"{emb_name}/{emb_version}"
    return rec
