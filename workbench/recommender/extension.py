"""A ranking version with the features of a promoted item feature set as extra columns, trained statefully.

The ranker is a standardizer and a logistic regression keyed by feature name,
so a new column can join a trained model without a restart: the copy keeps
every weight and running mean it had, and the new column starts at weight 0
(and no scale), so the candidate ranks exactly like its parent until it has
learned something about the new feature. It then continues, online, on the
newest sessions of the history with the new feature's point-in-time values
(the backfill of the very definitions the promotion put online).

>>> from workbench.streams.simulator import ShopSimulator
>>> from workbench.recommender.feature_sets import item_features
>>> from workbench.recommender.recommender import Recommender
>>> from workbench.features.definition import ITEM, Feature, FeatureSet
>>> from workbench.features import aggregations as agg, windows as win
>>> events = ShopSimulator(seed=3, n_users=200, n_items=120, n_categories=4).frame(
...     start_ms=1_700_000_000_000, duration_s=86_400)
>>> parent = Recommender(dim=8, candidates=30, max_train_prefixes=500).fit(events)
>>> extra = FeatureSet("item_carts", [Feature("item_carts_1d", ITEM, win.Sliding(size_ms=86_400_000),
...                    agg.Count(), where=None, source="events")])
>>> child, report = extend(parent, extra, events, max_prefixes=300)
>>> child.ranker.features[-1], child.extra_sets
('item_carts:item_carts_1d', {'item_carts': ['item_carts_1d']})
>>> report["lists"] > 0 and child.ranker.examples > parent.ranker.examples
True
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.features.definition import FeatureSet
    from workbench.recommender.ranking import Ranker
    from workbench.recommender.recommender import Recommender


def column_name(set_name: str, feature: str) -> str:
    return f"{set_name}:{feature}"


def extend_ranker(ranker: Ranker, columns: list[str]) -> Ranker:
    """A copy of ``ranker`` that also reads ``columns`` (new weights 0, everything else kept)."""
    from workbench.recommender.ranking import Ranker

    clash = set(columns) & set(ranker.features)
    if clash:
        raise WorkbenchError(f"the ranker already reads {sorted(clash)}")
    out = Ranker(model=copy.deepcopy(ranker.model))
    out.features = tuple(ranker.features) + tuple(columns)  # type: ignore[assignment]  # FEATURES plus extras
    out.examples = ranker.examples
    return out


def check_item_set(fs: FeatureSet) -> None:
    keyed = {f.entity.key for f in fs.features}
    if keyed != {"item_id"}:
        raise WorkbenchError(f"the ranking model reads extra features per candidate item: {fs.name!r} is keyed by "
                             f"{', '.join(sorted(map(str, keyed)))}, not item_id")  # fmt: skip


def extend(parent: Recommender, feature_set: FeatureSet, history: pd.DataFrame, *, max_prefixes: int = 20_000,
           recent_share: float = 0.5, topic: str | None = None) -> tuple[Recommender, dict[str, Any]]:  # fmt: skip
    """The candidate: ``parent`` plus ``feature_set``'s columns, continued on the newest ``recent_share`` of sessions.

    Every extra set the parent already reads is backfilled from ``history`` too (for training only).
    """
    import numpy as np

    from workbench.evaluation.evaluate import data_range
    from workbench.features.sets import load_set
    from workbench.recommender.feature_sets import PointInTimeItemFeatures
    from workbench.recommender.sessions import to_sessions

    check_item_set(feature_set)
    if feature_set.name in parent.extra_sets:
        raise WorkbenchError(f"{parent.version} already ranks on {feature_set.name!r}")
    if len(history) == 0:
        raise WorkbenchError("no history to train the candidate on: the source topic is empty in that range")
    child = copy.copy(parent)
    names = [f.name for f in feature_set.features]
    child.extra_sets = {**parent.extra_sets, feature_set.name: names}
    child.extra_hashes = [*parent.extra_hashes, *(f.hash for f in feature_set.features)]
    child.ranker = extend_ranker(parent.ranker, [column_name(feature_set.name, n) for n in names])
    child.max_train_prefixes = max_prefixes
    frame = history.reset_index(drop=True)
    child.item_source = PointInTimeItemFeatures(parent.item_feature_set(), frame)
    sets = {feature_set.name: feature_set, **{n: load_set(n) for n in parent.extra_sets}}
    child.extra_sources = {n: PointInTimeItemFeatures(fs, frame) for n, fs in sets.items()}
    sessions = to_sessions(frame, min_length=2)
    order = np.argsort(sessions.start_ms, kind="stable")
    newest = order[int(len(order) * (1 - recent_share)):]
    used = child.learn_sessions([sessions.items[i] for i in newest], [sessions.times[i] for i in newest])
    child.data_range = data_range(frame, topic)
    child.version = "unsaved"
    return child, {"lists": used, "sessions": len(newest), "added": child.extra_sets[feature_set.name]}

