"""``workbench bench retrain``: stateful vs stateless daily retraining on the shop simulator.

28 days of history, then a week of daily updates (``workbench.learning.retrain``):
stateless retrains each day from scratch on the trailing 28 days, stateful
continues the previous version on the day's labels only. Model: River's
``StandardScaler | LogisticRegression`` predicting a purchase within 30 minutes
of a view, on point-in-time streaming features (the backfill path):
session views, the item's price, the item's views over the last day and its
purchases over the last 7 days. Compute is training CPU seconds (process
time); quality is log loss and ROC AUC of predict-then-learn on each next day
with 95% block-bootstrap intervals. Target: stateful >= 10x cheaper with a log
loss inside the stateless interval.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

T0 = 1_750_000_000_000


def run(users: int = 1_000, history_days: int = 28, update_days: int = 7, seed: int = 11, bootstrap: int = 1000,
        progress: bool = True) -> dict[str, Any]:
    import numpy as np
    from river import linear_model, preprocessing

    import workbench as wb
    from workbench import aggregations as agg
    from workbench import windows as win
    from workbench.evaluation.evaluate import examples_from_history
    from workbench.learning.retrain import compare_retraining

    def say(msg: str) -> None:
        if progress:
            print(f"retrain bench: {msg}", file=sys.stderr, flush=True)

    cpu0, t0 = time.process_time(), time.monotonic()
    days = history_days + update_days
    sim = wb.ShopSimulator(seed=seed, n_users=users, n_items=400, n_categories=8)
    events = sim.frame(start_ms=T0, duration_s=days * 86_400)
    events = events.assign(partition=0, offset=np.arange(len(events)))
    say(f"{len(events):,} simulated events over {days} days")
    features = [
        wb.Feature("session_views", wb.SESSION, win.Session(gap_ms=1_800_000), agg.Count(),
                   where=wb.col("event_type") == "view"),
        wb.Feature("item_price", wb.ITEM, win.Sliding(size_ms=86_400_000), agg.Last("price")),
        wb.Feature("item_views_1d", wb.ITEM, win.Sliding(size_ms=86_400_000), agg.Count(),
                   where=wb.col("event_type") == "view"),
        wb.Feature("item_purchases_7d", wb.ITEM, win.Sliding(size_ms=7 * 86_400_000), agg.Count(),
                   where=wb.col("event_type") == "purchase"),
    ]
    label = wb.labels.purchase_within(minutes=30)
    examples = list(examples_from_history(events, label, {"m": features}))
    prep_s = time.monotonic() - t0
    say(f"{len(examples):,} prediction examples with point-in-time features in {prep_s:.0f} s")

    def model() -> Any:
        return preprocessing.StandardScaler() | linear_model.LogisticRegression()

    report = compare_retraining(examples, model, start_ms=T0, history_days=history_days, update_days=update_days,
                                bootstrap=bootstrap, seed=seed, feature_hashes=[f.hash for f in features],
                                progress=say)
    ll = report["quality"]["log_loss"]
    return {
        "benchmark": "retrain",
        "workload": {"users": users, "history_days": history_days, "update_days": update_days, "seed": seed,
                     "events": len(events), "examples": len(examples), "label": label.spec(),
                     "features": [f.name for f in features], "model": "StandardScaler | LogisticRegression"},
        "figure": report["cpu_s"]["stateful"],
        "figure_definition": "training CPU seconds over the week, stateful (previous version + that day's labels)",
        "baseline": report["cpu_s"]["stateless"],
        "baseline_definition": f"training CPU seconds over the week, stateless (from scratch on {history_days} days)",
        "ratio": report["cpu_ratio"],
        "log_loss": {"stateless": ll["stateless"], "stateful": ll["stateful"],
                     "difference": ll["stateful_minus_stateless"]},
        "roc_auc": report["quality"]["roc_auc"],
        "target": {"cpu_ratio": 10, "quality": "stateful log loss inside the stateless 95% interval"},
        "meets_target": {"cpu_ratio": report["cpu_ratio"] >= 10,
                         "quality": report["stateful_within_stateless_ci"]},
        "detail": report,
        "preparation_s": round(prep_s, 1),
        "cpu_s_total": round(time.process_time() - cpu0, 1),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
