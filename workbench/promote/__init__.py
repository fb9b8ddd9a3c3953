"""Promotion to production: the Feast feature store, versions, rollback and time travel.

``promote`` is gated, planned, additive until one registry write switches
readers to the new version, and undone on failure; see
:mod:`workbench.promote.promotion`.
"""

from workbench.promote.gate import Gate, check_gate
from workbench.promote.plan import Plan
from workbench.promote.promotion import Promotion, PromotionFailed, promote
from workbench.promote.reader import OnlineReader
from workbench.promote.versions import VersionInfo, features_as_of, online_features, rollback, versions

__all__ = [
    "Gate",
    "OnlineReader",
    "Plan",
    "Promotion",
    "PromotionFailed",
    "VersionInfo",
    "check_gate",
    "features_as_of",
    "online_features",
    "promote",
    "rollback",
    "versions",
]
