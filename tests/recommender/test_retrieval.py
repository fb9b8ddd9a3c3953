from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.recommender.baselines import Popularity, SessionKNN, evaluate_next_item
from workbench.recommender.embeddings import train_ppmi_svd
from workbench.recommender.retrieval import AnnIndex, ExactIndex, build_index, recall_at_k
from workbench.recommender.sessions import time_split, to_sessions


def _clustered(n: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((50, dim))
    v = centers[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype("float32")
    return np.array([f"i{i}" for i in range(n)]), v


def test_ann_recall_against_exact_search() -> None:
    ids, v = _clustered(6_000)
    queries = v[:100] + np.float32(0.05)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    recall = recall_at_k(AnnIndex(ids, v), ExactIndex(ids, v), queries, k=200)
    assert recall >= 0.9
    assert recall_at_k(ExactIndex(ids, v), ExactIndex(ids, v), queries, k=200) == 1.0


def test_index_choice_follows_catalog_size() -> None:
    ids, v = _clustered(300)
    assert isinstance(build_index(ids, v, threshold=1_000), ExactIndex)
    assert isinstance(build_index(ids, v, threshold=100), AnnIndex)


def test_exclusions_are_never_returned() -> None:
    ids, v = _clustered(500)
    for index in (ExactIndex(ids, v), AnnIndex(ids, v)):
        got, scores = index.search(v[0], k=20, exclude=["i0", "i1"])
        assert "i0" not in got and "i1" not in got and len(got) == 20
        assert np.all(np.diff(scores) <= 1e-6), "best first"


def test_embeddings_put_co_occurring_items_together() -> None:
    rng = np.random.default_rng(3)
    # two disjoint worlds: sessions never mix items of group A and group B
    a, b = [f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]
    seqs = [np.array(list(rng.choice(a if j % 2 else b, size=6, replace=False))) for j in range(400)]
    emb = train_ppmi_svd(seqs, dim=8, window=3)
    within = np.mean([emb.similarity(a[i], a[i + 1]) for i in range(19)])
    across = np.mean([emb.similarity(a[i], b[i]) for i in range(20)])
    assert within > across + 0.3
    assert emb.fingerprint() == train_ppmi_svd(seqs, dim=8, window=3).fingerprint()


def test_baselines_run_the_next_item_protocol() -> None:
    rows = []
    for s in range(200):
        items = ["x", "y", "z"] if s % 2 else ["p", "q", "r"]
        rows += [{"session_id": f"s{s}", "item_id": it, "event_type": "view", "event_time_ms": s * 10_000 + j}
                 for j, it in enumerate(items)]
    train, test = time_split(to_sessions(pd.DataFrame(rows)), test_fraction=0.25)
    sknn = evaluate_next_item(SessionKNN().fit(train), test, k=2)
    pop = evaluate_next_item(Popularity().fit(train), test, k=2)
    assert sknn["HR@2"] == 1.0  # the next item is fully determined by the session's first item
    assert pop["HR@2"] < 1.0
