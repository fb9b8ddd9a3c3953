"""Item embeddings learned from session co-occurrence (item2vec-style, by matrix factorisation).

Items that appear near each other in sessions get similar vectors. We count
co-occurrences within a window, weight them by positive pointwise mutual
information with context-distribution smoothing (the closed form of what
skip-gram with negative sampling factorises), and keep the top singular
vectors. Vectors are L2-normalised, so a dot product is a cosine.

>>> import numpy as np
>>> seqs = [np.array(["a", "b", "c"]), np.array(["a", "b"]), np.array(["x", "y"]), np.array(["y", "x", "z"])]
>>> emb = train_ppmi_svd(seqs, dim=2, window=2)
>>> emb.similarity("a", "b") > emb.similarity("a", "y")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass
class ItemEmbeddings:
    """A versionable table: item ids, their unit vectors, and how they were trained."""

    ids: np.ndarray
    vectors: np.ndarray  # float32, shape (n_items, dim), rows unit length (or zero)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {str(item): i for i, item in enumerate(self.ids)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def vector(self, item: str) -> np.ndarray | None:
        i = self.index.get(item)
        return None if i is None else self.vectors[i]

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.vector(a), self.vector(b)
        return 0.0 if va is None or vb is None else float(va @ vb)

    def frame(self) -> Any:
        """The table as a DataFrame keyed by item_id (the input session features read)."""
        import pandas as pd

        return pd.DataFrame({"item_id": self.ids, "vector": list(self.vectors)}).set_index("item_id")

    def fingerprint(self) -> str:
        """A content hash: part of the hash of any feature that reads this table."""
        import hashlib

        h = hashlib.sha256()
        h.update("\x00".join(map(str, self.ids)).encode())
        h.update(self.vectors.astype("float32").tobytes())
        return h.hexdigest()[:16]


def cooccurrence(sequences: Sequence[np.ndarray], window: int = 5) -> tuple[np.ndarray, Any]:
    """Item ids and a symmetric sparse count matrix of pairs at most ``window`` apart in a session."""
    import numpy as np
    from scipy import sparse

    lengths = np.fromiter((len(s) for s in sequences), dtype="int64", count=len(sequences))
    flat = np.concatenate(list(sequences)) if len(sequences) else np.zeros(0, dtype=str)
    ids, codes = np.unique(flat, return_inverse=True)
    session = np.repeat(np.arange(len(sequences)), lengths)
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        same = session[d:] == session[:-d]
        a, b = codes[:-d][same], codes[d:][same]
        # nearer neighbours count more, as in word2vec's dynamic window
        w = np.full(len(a), (window - d + 1) / window, dtype="float64")
        rows += [a, b]
        cols += [b, a]
        weights += [w, w]
    n = len(ids)
    if not rows:
        return ids, sparse.csr_matrix((n, n))
    m = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return ids, m.tocsr()


def train_ppmi_svd(
    sequences: Sequence[np.ndarray],
    dim: int = 64,
    window: int = 5,
    alpha: float = 0.75,
    eig_power: float = 0.5,
    seed: int = 0,
) -> ItemEmbeddings:
    """Factorise the smoothed PPMI matrix of session co-occurrences with a truncated SVD."""
    import numpy as np
    from scipy.sparse.linalg import svds

    ids, counts = cooccurrence(sequences, window)
    n = len(ids)
    params = {"method": "ppmi_svd", "dim": dim, "window": window, "alpha": alpha, "eig_power": eig_power}
    if n == 0:
        return ItemEmbeddings(ids, np.zeros((0, dim), "float32"), params)
    coo = counts.tocoo()
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    # context distribution smoothing (alpha < 1) keeps rare items from dominating PMI
    ctx = row_sum**alpha
    pmi = np.log(coo.data) + np.log(ctx.sum()) - np.log(row_sum[coo.row]) - np.log(ctx[coo.col])
    keep = pmi > 0
    from scipy import sparse

    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    k = max(1, min(dim, n - 2))
    if n <= 3 or ppmi.nnz == 0:
        vec = np.zeros((n, dim), dtype="float64")
    else:
        rng = np.random.default_rng(seed)
        u, s, _ = svds(ppmi.astype("float64"), k=k, v0=rng.standard_normal(n))
        order = np.argsort(-s)
        vec = u[:, order] * (s[order] ** eig_power)
        if k < dim:
            vec = np.hstack([vec, np.zeros((n, dim - k))])
        # svds' sign is arbitrary; fix it so a retrain on the same data gives the same table
        signs = np.sign(vec[np.abs(vec).argmax(axis=0), np.arange(dim)])
        vec *= np.where(signs == 0, 1, signs)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    vec = np.divide(vec, norms, out=np.zeros_like(vec), where=norms > 0)
    return ItemEmbeddings(ids, vec.astype("float32"), params)
