"""``workbench bench exploration``: catalog coverage and CTR, exploration slots vs pure exploitation.

The shop simulator supplies sessions (user, time, the item the session is
on) and the TRUE click probability of any shown item at any position
(:meth:`ShopSimulator.click_probabilities`). Every policy sees the same
requests: the 100 catalog items nearest to the session's item (cosine over
item vectors, standing in for the recommender's embeddings and kNN) are the
candidates, and a list of ``k`` is shown.

* **exploit** -- all ``k`` slots by the observed CTR of each item so far
  (posterior mean with a Beta(1, 19) prior): greedy on its own feedback, the
  popularity loop the exploration slots are there to break;
* **explore-uniform** -- ``k - n_explore`` slots as *exploit*, ``n_explore`` uniformly at random
  among the other candidates;
* **explore-linTS** -- the same split, exploration slots by linear Thompson sampling
  (:mod:`workbench.learning.exploration`) over [1, session vector * item vector,
  item CTR estimate, log impressions, similarity], learning from its own slots.

Counts and the bandit are updated every ``batch`` requests, as a service would.
Coverage is the share of the catalog shown at least once (and clicked at
least once); CTR is clicks per impression over all requests and over the
second half (after learning). Exploration slots report their own CTR and the
smallest propensity they logged.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from workbench.learning.exploration import LinearThompson, fill_list
from workbench.streams.simulator import ShopSimulator

T0 = 1_750_000_000_000
_CANDIDATES = 100


def _requests(sim: ShopSimulator, days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user index, event time, item index) of each session's first view, in time order."""
    views = sim.frame(start_ms=T0, duration_s=days * 86_400).query("event_type == 'view'")
    first = views.drop_duplicates("session_id")
    users = first["user_id"].str.slice(1).astype(int).to_numpy()
    items = first["item_id"].str.slice(1).astype(int).to_numpy()
    return users, first["event_time_ms"].to_numpy(dtype=np.int64), items


def simulate(policy: str, sim: ShopSimulator, requests: tuple[np.ndarray, np.ndarray, np.ndarray], *,
             k: int = 8, n_explore: int = 2, batch: int = 200, seed: int = 0) -> dict[str, Any]:
    """Serve every request with ``policy`` and return coverage, CTR and the exploration log's check."""
    if policy not in ("exploit", "explore-uniform", "explore-linTS"):
        raise ValueError(f"unknown policy {policy!r}")
    users, times, items = requests
    vec = sim.item_vectors
    n_items, dim = vec.shape
    rng = np.random.default_rng(seed)
    imps, clicks = np.zeros(n_items), np.zeros(n_items)
    d_imps, d_clicks = np.zeros(n_items), np.zeros(n_items)  # since the last batch
    n_feat = dim + 4
    bandit = LinearThompson(n_feat, epsilon=1.0 if policy == "explore-uniform" else 0.05, seed=seed,
                            noise_sd=0.3, draws=128)
    pending_x: list[np.ndarray] = []
    pending_r: list[float] = []
    log_p: list[float] = []
    log_r: list[float] = []
    total_clicks = np.zeros(len(users))
    shown_ever = np.zeros(n_items, dtype=bool)
    uid = np.asarray(sim.user_ids, dtype=object)
    iid = np.asarray(sim.item_ids, dtype=object)
    explore = 0 if policy == "exploit" else n_explore
    for r in range(len(users)):
        if r % batch == 0 and r:
            imps += d_imps
            clicks += d_clicks
            d_imps[:], d_clicks[:] = 0, 0
            if pending_x:
                bandit.update_many(np.array(pending_x), pending_r)
                pending_x, pending_r = [], []
        session = vec[items[r]]
        sim_all = vec @ session
        cand = np.argpartition(-sim_all, _CANDIDATES)[:_CANDIDATES]
        ctr = (clicks[cand] + 1) / (imps[cand] + 20)
        X = np.column_stack([np.ones(len(cand)), vec[cand] * session, ctr * 10, np.log1p(imps[cand]),
                             sim_all[cand]])
        slate = fill_list(ctr, X, k=k, n_explore=explore, bandit=bandit)
        shown = cand[slate.items]
        p_click = sim.click_probabilities(uid[[users[r]] * k], iid[shown], times[r], np.arange(1, k + 1))
        clicked = rng.random(k) < p_click
        d_imps[shown] += 1
        d_clicks[shown] += clicked
        shown_ever[shown] = True
        total_clicks[r] = clicked.sum()
        for pos in np.flatnonzero(slate.explored):
            pending_x.append(X[slate.items[pos]])
            pending_r.append(float(clicked[pos]))
            log_p.append(float(slate.propensities[pos]))
            log_r.append(float(clicked[pos]))
    imps += d_imps
    clicks += d_clicks
    half = len(users) // 2
    out: dict[str, Any] = {
        "policy": policy,
        "requests": len(users),
        "ctr": float(total_clicks.sum() / (k * len(users))),
        "ctr_second_half": float(total_clicks[half:].sum() / (k * (len(users) - half))),
        "catalog_coverage_shown": float(shown_ever.mean()),
        "catalog_coverage_clicked": float((clicks > 0).mean()),
        "items_with_10_impressions": int((imps >= 10).sum()),
    }
    if log_p:
        out["exploration_slots"] = {"impressions": len(log_p), "ctr": float(np.mean(log_r)),
                                    "min_propensity": float(min(log_p))}
    return out


def run(days: float = 4.0, users: int = 5_000, items: int = 1_000, seed: int = 5, k: int = 8,
        n_explore: int = 2, progress: bool = True) -> dict[str, Any]:
    """All three policies on the same requests; JSON-ready."""
    sim = ShopSimulator(seed=seed, n_users=users, n_items=items, n_categories=10)
    requests = _requests(sim, days)
    results = {}
    cpu0 = time.process_time()
    for policy in ("exploit", "explore-uniform", "explore-linTS"):
        t0 = time.monotonic()
        results[policy] = simulate(policy, sim, requests, k=k, n_explore=n_explore, seed=seed)
        if progress:
            print(f"exploration bench: {policy} done in {time.monotonic() - t0:.0f} s "
                  f"({len(requests[0])} requests)", file=sys.stderr, flush=True)
    base, ts = results["exploit"], results["explore-linTS"]
    return {
        "benchmark": "exploration",
        "workload": {"days": days, "users": users, "catalog": items, "requests": len(requests[0]), "k": k,
                     "exploration_slots": n_explore, "candidates": _CANDIDATES, "seed": seed},
        "figure": ts["catalog_coverage_shown"],
        "figure_definition": "catalog share shown at least once, with linear-TS exploration slots",
        "baseline": base["catalog_coverage_shown"],
        "baseline_definition": "the same, pure exploitation of observed CTR",
        "ratio": round(ts["catalog_coverage_shown"] / max(base["catalog_coverage_shown"], 1e-12), 2),
        "ctr_ratio": round(ts["ctr"] / max(base["ctr"], 1e-12), 3),
        "policies": results,
        "cpu_s": round(time.process_time() - cpu0, 2),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
