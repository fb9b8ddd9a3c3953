"""Promotion to production: the Feast feature store, versions, rollback and time travel.

``promote`` is gated, planned, additive until one registry write switches
readers to the new version, and undone on failure; see
:mod:`workbench.promote.promotion`.
"""

import sys
import types
from typing import Any

from workbench.promote.gate import Gate, check_gate
from workbench.promote.plan import Plan
from workbench.promote.promotion import Promotion, PromotionFailed, promote
from workbench.promote.reader import OnlineReader
from workbench.promote.to_model import ModelPromotion, promote_to_model
from workbench.promote.versions import VersionInfo, features_as_of, online_features, rollback, versions

__all__ = [
    "Gate",
    "ModelPromotion",
    "OnlineReader",
    "Plan",
    "Promotion",
    "PromotionFailed",
    "VersionInfo",
    "check_gate",
    "features_as_of",
    "online_features",
    "promote",
    "promote_to_model",
    "rollback",
    "versions",
]


class _CallablePackage(types.ModuleType):
    """``wb.promote(...)`` keeps working once ``workbench.promote`` is imported as a package.

    Importing any ``workbench.promote.*`` module binds this package to the name
    ``promote`` on ``workbench``, over the lazily exported function; calling the
    package calls the function.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Promotion:
        return promote(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
