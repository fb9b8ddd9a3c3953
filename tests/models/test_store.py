"""The model store on a real MLflow registry (SQLite under a private WORKBENCH_HOME)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.models.conftest import RANGE
from workbench import models
from workbench.config import Settings
from workbench.models import ModelStoreError, ModelVersion, UnknownModelError
from workbench.models.version import parse_ref


def test_register_and_load_round_trip_a_river_model(home: Settings) -> None:
    from river import linear_model

    model = linear_model.LogisticRegression()
    for i in range(50):
        model.learn_one({"x": i % 7, "y": i % 3}, i % 2 == 0)
    mv = models.register("ranker", model, kind="ranking", data_range=RANGE, metrics={"auc": 0.74},
                         description="first ranker")
    assert (mv.name, mv.version, mv.kind, mv.parent, mv.stale) == ("ranker", 1, "ranking", None, False)
    assert mv.data_range == RANGE and mv.metrics == {"auc": 0.74} and mv.run_id
    assert mv.artifact["format"] == "cloudpickle"
    assert mv.artifact["python_type"] == "river.linear_model.log_reg.LogisticRegression"

    loaded = models.load("ranker")
    assert loaded is not model
    assert loaded.predict_proba_one({"x": 3, "y": 1}) == model.predict_proba_one({"x": 3, "y": 1})
    assert models.load("ranker", 1).weights == model.weights  # again, from the download cache
    # the default store lives under WORKBENCH_HOME
    assert (home.home / "mlflow.db").is_file()
    assert list((home.home / "mlartifacts").rglob("model.pkl"))
    assert models.store().uri == f"sqlite:///{home.home / 'mlflow.db'}"


def test_directory_and_file_artifacts(home: Settings, tmp_path: Path) -> None:
    src = tmp_path / "index"
    (src / "sub").mkdir(parents=True)
    (src / "vectors.npy").write_bytes(b"\x93NUMPY" + bytes(range(40)))
    (src / "sub" / "meta.json").write_text('{"dim": 8}')
    mv = models.register("item_vectors", src, kind="embedding")
    assert mv.artifact["format"] == "directory" and mv.artifact["files"] == 2
    out = models.load("item_vectors")
    assert isinstance(out, Path) and out != src
    assert (out / "sub" / "meta.json").read_text() == '{"dim": 8}'
    assert (out / "vectors.npy").read_bytes() == (src / "vectors.npy").read_bytes()

    one = tmp_path / "weights.bin"
    one.write_bytes(b"abc")
    got = models.load("weights", models.register("weights", one, kind="other").version)
    assert got.name == "weights.bin" and got.read_bytes() == b"abc"

    (out / "vectors.npy").write_bytes(b"tampered")  # the cached copy no longer matches its digest
    with pytest.raises(ModelStoreError, match="the stored artifact changed"):
        models.load("item_vectors")


def test_lineage_chain_with_dependencies(home: Settings) -> None:
    e1 = models.register("item_vectors", {"v": 1}, kind="embedding", data_range=RANGE)
    r1 = models.register("ranker", {"w": 1}, kind="ranking", depends_on=e1,
                         feature_hashes=["bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"], metrics={"auc": 0.70})
    r2 = models.register("ranker", {"w": 2}, kind="ranking", parent=r1, depends_on="item_vectors/1",
                         metrics={"auc": 0.72})
    e2 = models.register("item_vectors", {"v": 2}, kind="embedding", parent=1)  # a number: same name
    r3 = models.register("ranker", {"w": 3}, kind="ranking", parent="ranker/2", depends_on={"item_vectors": 2},
                         data_range=RANGE, metrics={"auc": 0.75})
    # a model fine-tuned from another model's version: the chain crosses names
    r4 = models.register("ranker_ft", {"w": 4}, kind="ranking", parent=r3, depends_on=[e2])

    chain = models.lineage("ranker_ft")
    assert [v.ref for v in chain] == ["ranker_ft/1", "ranker/3", "ranker/2", "ranker/1"]
    assert [v.depends_on for v in chain] == [{"item_vectors": 2}, {"item_vectors": 2},
                                             {"item_vectors": 1}, {"item_vectors": 1}]
    assert chain[0] == r4 and chain[-1].feature_hashes == ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
    assert [v.metrics.get("auc") for v in chain[1:]] == [0.75, 0.72, 0.70]
    assert chain[1].data_range == RANGE
    assert [v.ref for v in models.lineage("item_vectors")] == ["item_vectors/2", "item_vectors/1"]
    assert models.lineage("ranker", 1) == [models.get("ranker", 1)]
    assert r2.parent == "ranker/1" and e2.parent == "item_vectors/1"


def test_a_new_embedding_version_flags_the_rankers_that_use_an_older_one(home: Settings) -> None:
    e1 = models.register("item_vectors", {"v": 1}, kind="embedding")
    r1 = models.register("ranker", {"w": 1}, kind="ranking", depends_on=e1)
    r2 = models.register("ranker", {"w": 2}, kind="ranking", parent=r1, depends_on=e1)
    assert not r1.stale and not r2.stale and models.stale("ranker") == []

    e2 = models.register("item_vectors", {"v": 2}, kind="embedding", parent=e1)
    assert [(v.ref, v.stale_because) for v in models.stale("ranker")] == [
        ("ranker/1", ("item_vectors/2",)), ("ranker/2", ("item_vectors/2",))]
    assert models.get("ranker").stale and not models.get("item_vectors").stale

    r3 = models.register("ranker", {"w": 3}, kind="ranking", parent=r2, depends_on=e2)
    assert not r3.stale
    assert [v.ref for v in models.stale("ranker")] == ["ranker/1", "ranker/2"]
    assert [v.stale for v in models.versions("ranker")] == [True, True, False]


def test_aliases(home: Settings) -> None:
    for w in range(3):
        models.register("ranker", {"w": w}, kind="ranking")
    assert models.set_alias("ranker", "champion", 2).aliases == ("champion",)
    models.set_alias("ranker", "challenger", "latest")
    assert models.get("ranker", "champion").version == 2
    assert models.load("ranker", "champion") == {"w": 1}
    assert models.get("ranker", "challenger").version == 3
    models.set_alias("ranker", "champion", 3)  # moves
    assert [v.aliases for v in models.versions("ranker")] == [(), (), ("challenger", "champion")]
    # an alias resolves to its number when recorded as a parent or dependency
    child = models.register("ranker", {"w": 9}, kind="ranking", parent="ranker@champion",
                            depends_on="ranker@challenger")
    assert child.parent == "ranker/3" and child.depends_on == {"ranker": 3}
    with pytest.raises(UnknownModelError, match="model 'ranker' has no alias 'nope'"):
        models.get("ranker", "nope")
    with pytest.raises(ModelStoreError, match="bad alias 'v2'"):
        models.set_alias("ranker", "v2", 1)


def test_unknown_and_bad_input_are_one_line_errors(home: Settings) -> None:
    assert models.names() == []
    with pytest.raises(UnknownModelError, match="no model named 'ghost'"):
        models.get("ghost")
    with pytest.raises(UnknownModelError, match="no model named 'ghost'"):
        models.versions("ghost")
    with pytest.raises(UnknownModelError, match="no model named 'ghost'"):
        models.register("ranker", {}, kind="ranking", depends_on="ghost/1")
    models.register("ranker", {}, kind="ranking")
    with pytest.raises(UnknownModelError, match="model 'ranker' has no version 7"):
        models.register("ranker", {}, kind="ranking", parent=7)
    with pytest.raises(ModelStoreError, match="first <= last"):
        models.register("ranker", {}, kind="ranking", data_range={"topic": "t", "partitions": {"0": [5, 1]}})
    with pytest.raises(ModelStoreError, match="bad model name"):
        models.register("a/b", {}, kind="ranking")
    with pytest.raises(ModelStoreError, match="cannot pickle"):
        models.register("ranker", _Unpicklable(), kind="ranking")
    # nothing above registered a version
    assert models.names() == ["ranker"] and [v.version for v in models.versions("ranker")] == [1]


class _Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("no")


def test_the_mlflow_registry_holds_the_lineage(home: Settings) -> None:
    """What MLflow's own tools (UI, client, any tracking server) see."""
    from mlflow import MlflowClient

    e1 = models.register("item_vectors", {"v": 1}, kind="embedding")
    mv = models.register("ranker", {"w": 1}, kind="ranking", depends_on=e1, data_range=RANGE,
                         feature_hashes=["aaaaaaaaaaaaaaaa"],
                         metrics={"auc": 0.7, "arms": {"candidate": {"log loss": 0.3}}, "verdict": "better"})
    client = MlflowClient(tracking_uri=models.store().uri, registry_uri=models.store().uri)
    raw = client.get_model_version("ranker", "1")
    assert raw.tags["workbench.kind"] == "ranking"
    assert raw.tags["workbench.depends_on"] == "item_vectors/1"
    assert raw.tags["workbench.feature_hashes"] == "aaaaaaaaaaaaaaaa"
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"auc": 0.7, "arms.candidate.log loss": 0.3}
    assert run.data.params["kind"] == "ranking" and json.loads(run.data.params["data_range"]) == RANGE
    (home.home / "dl").mkdir()
    doc = json.loads(Path(client.download_artifacts(mv.run_id, "lineage.json", str(home.home / "dl"))).read_text())
    assert doc == mv.document() and doc["version"] == 1


def test_feature_objects_are_saved_so_their_hashes_rebuild(home: Settings) -> None:
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import SESSION, Feature, load

    f = Feature("views_1m", SESSION, win.Tumbling(size_ms=60_000), agg.Count())
    mv = models.register("ranker", {}, kind="ranking", feature_hashes=[f])
    assert mv.feature_hashes == (f.hash,)
    assert load(mv.feature_hashes[0]).hash == f.hash


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(name=_names, version=st.integers(1, 10_000), parent=st.one_of(st.none(), _names),
       deps=st.dictionaries(_names, st.integers(1, 99), max_size=3),
       parts=st.dictionaries(st.integers(0, 63).map(str),
                             st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)).map(sorted), max_size=4),
       metrics=st.dictionaries(_names, st.floats(allow_nan=False, allow_infinity=False), max_size=3))
def test_the_lineage_document_round_trips(name: str, version: int, parent: str | None, deps: dict[str, int],
                                          parts: dict[str, list[int]], metrics: dict[str, float]) -> None:
    v = ModelVersion(name, version, "ranking", parent=f"{parent}/1" if parent else None,
                     data_range={"topic": "events", "partitions": parts, "event_time_ms": [0, 1]},
                     depends_on=deps, metrics=metrics, feature_hashes=("a" * 16,))
    doc = json.loads(json.dumps(v.document()))
    assert ModelVersion.from_document(name, version, doc) == v
    assert parse_ref(v.ref) == (name, version)
