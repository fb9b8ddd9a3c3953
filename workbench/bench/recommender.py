"""``workbench bench recommender-quality``: next-item HR@20 and MRR@20, baselines and Workbench, same run.

Two data sets, each cut by time (train on sessions that ended before the cut,
test on sessions that started after it):

* the shop simulator (its ground truth is known: items are chosen by intent
  category, affinity and a time-varying popularity);
* MovieLens-100K replayed as views, sessions cut by a per-user inactivity gap.

Every model is asked for item ``i + 1`` of each test session from its items
``0..i`` (with their event times, at the time of item ``i`` plus 1 ms).
Popularity and SKNN train on the training sessions. Workbench's recommender
trains on the training events; at test time its item features are what the
stream had computed before the request, from all events up to then (the
online store's view), via the backfill of the same definitions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from workbench.recommender.sessions import Sessions

SIM_START_MS = 1_767_225_600_000  # 2026-01-01


def simulator_events(days: float = 4.0, seed: int = 7) -> pd.DataFrame:
    from workbench.streams.simulator import ShopSimulator

    sim = ShopSimulator(seed=seed)
    df = sim.frame(start_ms=SIM_START_MS, duration_s=days * 86_400)
    return df.assign(partition=0, offset=range(len(df)))


def movielens_events(gap_s: float = 1800) -> pd.DataFrame:
    import numpy as np

    from workbench.streams.movielens import movielens_frame

    df = movielens_frame(gap_s=gap_s)
    # ratings carry whole seconds and many share one: spread ties over the second in file order, so
    # "before the request" never admits the very rating being predicted (the stream's order does the same)
    tie = df.groupby("event_time_ms", sort=False).cumcount().to_numpy()
    df["event_time_ms"] = df["event_time_ms"].to_numpy() + np.minimum(tie, 999)
    return df.assign(partition=0, offset=range(len(df)))


def prefixes(test: Sessions, max_predictions: int, seed: int) -> list[tuple[int, int]]:
    import numpy as np

    pairs = [(s, i) for s in range(len(test)) for i in range(1, len(test.items[s]))]
    if len(pairs) > max_predictions:
        rng = np.random.default_rng(seed)
        pairs = [pairs[j] for j in sorted(rng.choice(len(pairs), max_predictions, replace=False))]
    return pairs


def evaluate(model: Any, test: Sessions, pairs: list[tuple[int, int]], k: int = 20,
             timed: bool = False) -> dict[str, float]:  # fmt: skip
    """HR@k and MRR@k over the given (session, position) prefixes."""
    hits, rr = 0, 0.0
    started = time.perf_counter()
    for s, i in pairs:
        seq, ts = test.items[s], test.times[s]
        if timed:
            out = model.recommend(list(seq[:i]), k, session_times=[int(t) for t in ts[:i]], now_ms=int(ts[i - 1]) + 1)
            recs = out.items
        else:
            recs = model.recommend(list(seq[:i]), k)
        target = seq[i]
        if target in recs:
            hits += 1
            rr += 1.0 / (recs.index(target) + 1)
    n = max(len(pairs), 1)
    return {f"HR@{k}": round(hits / n, 4), f"MRR@{k}": round(rr / n, 4),
            "ms_per_request": round(1000 * (time.perf_counter() - started) / n, 3)}  # fmt: skip


def compare(events: pd.DataFrame, k: int = 20, max_predictions: int = 10_000, seed: int = 0,
            test_fraction: float = 0.2, **params: Any) -> dict[str, Any]:  # fmt: skip
    """Popularity, SKNN and Workbench on one time split of one events frame."""
    from workbench.recommender.baselines import Popularity, SessionKNN
    from workbench.recommender.feature_sets import PointInTimeItemFeatures
    from workbench.recommender.recommender import Recommender
    from workbench.recommender.sessions import time_split, to_sessions

    sessions = to_sessions(events)
    train, test = time_split(sessions, test_fraction=test_fraction)
    cut = int(test.start_ms.min())
    pairs = prefixes(test, max_predictions, seed)
    out: dict[str, Any] = {"train_sessions": len(train), "test_sessions": len(test), "predictions": len(pairs),
                           "items": int(events["item_id"].nunique())}  # fmt: skip
    out["popularity"] = evaluate(Popularity().fit(train), test, pairs, k)
    out["sknn"] = evaluate(SessionKNN().fit(train), test, pairs, k)
    started = time.perf_counter()
    rec = Recommender(seed=seed, **params).fit(events[events["event_time_ms"] < cut])
    fit_s = time.perf_counter() - started
    # serving: the item features the stream had computed by each request, over all events so far
    rec.item_source = PointInTimeItemFeatures(rec.item_feature_set(), events)
    out["workbench"] = {**evaluate(rec, test, pairs, k, timed=True), "fit_s": round(fit_s, 1),
                        "ranker_examples": rec.ranker.examples, "weights": rec.ranker.weights()}  # fmt: skip
    best = max(("popularity", "sknn"), key=lambda m: out[m][f"HR@{k}"])
    out["best_baseline"] = best
    out[f"ratio_HR@{k}"] = round(out["workbench"][f"HR@{k}"] / max(out[best][f"HR@{k}"], 1e-12), 3)
    out[f"ratio_MRR@{k}"] = round(out["workbench"][f"MRR@{k}"] / max(out[best][f"MRR@{k}"], 1e-12), 3)
    out["target_met"] = (out["workbench"][f"HR@{k}"] >= out[best][f"HR@{k}"]
                         and out["workbench"][f"MRR@{k}"] >= out[best][f"MRR@{k}"])  # fmt: skip
    return out


def run(days: float = 4.0, seed: int = 7, max_predictions: int = 10_000, gap_s: float = 1800,
        datasets: tuple[str, ...] = ("simulator", "movielens-100k")) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {"k": 20, "protocol": "next item of held-out sessions, time split 80/20"}
    if "simulator" in datasets:
        result["simulator"] = {"days": days, "seed": seed,
                               **compare(simulator_events(days, seed), max_predictions=max_predictions)}
    if "movielens-100k" in datasets:
        result["movielens-100k"] = {"gap_s": gap_s, **compare(movielens_events(gap_s), max_predictions=max_predictions)}
    return result
