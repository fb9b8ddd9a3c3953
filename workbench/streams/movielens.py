"""MovieLens 100k as a clickstream: every rating becomes one ``view`` event.

The data is the copy shipped inside the ``recbole`` wheel
(``recbole/dataset_example/ml-100k/``); only its atomic files are read, recbole
itself is never imported (``pip install --no-deps recbole`` is enough).

Mapping
-------
* one event per rating, ``event_type="view"``, with the extra field ``rating`` (1-5);
* ``event_time_ms`` is the original timestamp (seconds) times 1000;
* ``user_id`` ``ml-u<id>``, ``item_id`` ``ml-i<id>``, ``event_id`` ``ml-<row>``
  (the row of ``ml-100k.inter``);
* ``category`` is the movie's first genre (``unknown`` when it has none);
* ``price`` is synthetic and deterministic: ``2.99 + (crc32(item_id) % 1000) / 100``,
  so 2.99 to 12.98;
* ``session_id`` ``ml-u<id>-<n>``: a user's n-th run of ratings with no gap longer
  than ``gap_s`` (30 minutes by default).

Events are ordered by time, ties broken by file row, so the order is stable.

>>> missing = movielens_frame(data_dir="/nonexistent")
Traceback (most recent call last):
...
workbench.errors.DataMissingError: MovieLens 100k not found in /nonexistent; install it with: pip install --no-deps recbole
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import DataMissingError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.config import Settings
    from workbench.streams.events import Event

DATASETS = ("movielens-100k",)
_FILES = ("ml-100k.inter", "ml-100k.item")
_HINT = "install it with: pip install --no-deps recbole"


def movielens_dir(data_dir: str | Path | None = None) -> Path:
    """The folder holding ``ml-100k.inter`` and ``ml-100k.item``; DataMissingError when absent."""
    if data_dir is None:
        # find_spec on a top-level name locates the package without importing it
        spec = importlib.util.find_spec("recbole")
        if spec is None or spec.origin is None:
            raise DataMissingError(f"MovieLens 100k not found (recbole is not installed); {_HINT}")
        path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    else:
        path = Path(data_dir)
    if not all((path / name).is_file() for name in _FILES):
        raise DataMissingError(f"MovieLens 100k not found in {path}; {_HINT}")
    return path


def item_price(item_id: str) -> float:
    """The synthetic, deterministic price of an item.

    >>> item_price("ml-i1")
    4.56
    """
    return round(2.99 + (zlib.crc32(item_id.encode()) % 1000) / 100, 2)


def movielens_frame(gap_s: float = 1800, data_dir: str | Path | None = None) -> pd.DataFrame:
    """All 100,000 ratings as events (schema columns plus ``rating``), in event-time order."""
    import numpy as np
    import pandas as pd

    if gap_s <= 0:
        raise ValueError("gap_s must be > 0")
    path = movielens_dir(data_dir)
    inter = pd.read_csv(path / "ml-100k.inter", sep="\t", header=0, names=["user", "item", "rating", "ts"],
                        dtype={"user": str, "item": str, "rating": float, "ts": float})
    items = pd.read_csv(path / "ml-100k.item", sep="\t", header=0, names=["item", "title", "year", "genres"],
                        dtype=str, quoting=3, keep_default_na=False)
    genre = items.set_index("item")["genres"].str.split(" ").str[0].replace("", "unknown")
    inter["row"] = np.arange(len(inter))
    inter["t"] = (inter["ts"] * 1000).astype(np.int64)
    # sessions: per user in time order, a new one after a gap longer than gap_s
    by_user = inter.sort_values(["user", "t", "row"], kind="stable")
    new = by_user["user"].ne(by_user["user"].shift()) | by_user["t"].diff().gt(gap_s * 1000)
    by_user["n"] = new.astype(np.int64).groupby(by_user["user"]).cumsum() - 1
    df = by_user.sort_values(["t", "row"], kind="stable").reset_index(drop=True)
    item_id = "ml-i" + df["item"]
    prices = {i: item_price(i) for i in item_id.unique()}
    out = pd.DataFrame({
        "event_id": ("ml-" + df["row"].astype(str)).astype("string"),
        "event_type": pd.Categorical(["view"] * len(df), categories=["view", "add_to_cart", "purchase",
                                                                      "impression", "click"]),
        "event_time_ms": df["t"].astype(np.int64),
        "user_id": ("ml-u" + df["user"]).astype("string"),
        "session_id": ("ml-u" + df["user"] + "-" + df["n"].astype(str)).astype("string"),
        "item_id": item_id.astype("string"),
        "category": df["item"].map(genre).fillna("unknown").astype("category"),
        "price": item_id.map(prices).astype(np.float64),
        "rating": df["rating"].astype(np.int64),
    })
    return out


def movielens_events(frame: pd.DataFrame) -> Iterator[Event]:
    """Plain-Python event dicts (JSON-ready) from :func:`movielens_frame`, in its order."""
    names = list(frame.columns)
    columns = [frame[c].astype(object).tolist() if c in ("category", "event_type") else frame[c].tolist()
               for c in names]
    for row in zip(*columns, strict=True):
        yield dict(zip(names, row, strict=True))


def replay_movielens(
    speedup: float = 0.0,
    *,
    limit: int | None = None,
    topic: str | None = None,
    gap_s: float = 1800,
    data_dir: str | Path | None = None,
    progress: bool = False,
    s: Settings | None = None,
) -> dict[str, Any]:
    """Produce MovieLens events to Kafka in event-time order and return the counts.

    Wall-clock waits are ``(t_next - t_prev) / speedup``; ``speedup`` 0 or inf
    sends as fast as possible. Event times stay the original ones.
    """
    import math

    from workbench.config import settings
    from workbench.streams.kafka import ensure_topic
    from workbench.streams.produce import event_time_pacer, produce_events

    if speedup < 0 or math.isnan(speedup):
        raise ValueError("speedup must be >= 0 (0 or inf: as fast as possible)")
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1")
    s = s or settings()
    topic = topic or s.events_topic
    frame = movielens_frame(gap_s=gap_s, data_dir=data_dir)
    if limit is not None:
        frame = frame.iloc[:limit]
    ensure_topic(topic, s=s)
    pacer = None if speedup == 0 or math.isinf(speedup) else event_time_pacer(speedup)
    stats = produce_events(movielens_events(frame), topic, pacer=pacer, total=len(frame), progress=progress,
                           description="replay movielens-100k", s=s)
    return {**stats.as_dict(), "summary": stats.line()}
