"""Workbench: a notebook-first workbench for real-time machine learning.

The public API is small and pinned by ``tests/test_api.py``. Heavy libraries
load on first use, so ``import workbench`` stays fast.

>>> import workbench as wb
>>> "tap" in wb.__all__
True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


class WorkbenchWarning(UserWarning):
    """Warnings Workbench itself raises (the test suite turns them into errors)."""


# public name -> "module:attribute"
_LAZY = {
    "Settings": "workbench.config:Settings",
    "settings": "workbench.config:settings",
    "tap": "workbench.taps.tap:tap",
    "Tap": "workbench.taps.tap:Tap",
    "replay": "workbench.taps.replay:replay",
    "ShopSimulator": "workbench.streams.simulator:ShopSimulator",
    "Entity": "workbench.features.definition:Entity",
    "USER": "workbench.features.definition:USER",
    "SESSION": "workbench.features.definition:SESSION",
    "ITEM": "workbench.features.definition:ITEM",
    "CATEGORY": "workbench.features.definition:CATEGORY",
    "Feature": "workbench.features.definition:Feature",
    "FeatureSet": "workbench.features.definition:FeatureSet",
    "col": "workbench.features.expr:col",
    "windows": "workbench.features.windows:",
    "aggregations": "workbench.features.aggregations:",
    "backfill": "workbench.features.backfill:backfill",
    "skew_check": "workbench.features.skew:skew_check",
    "training_frame": "workbench.features.training:training_frame",
    "session_features": "workbench.features.session:session_features",
    "RequestFeature": "workbench.features.request:RequestFeature",
    "request_frame": "workbench.features.request:request_frame",
    "evaluate": "workbench.evaluation.evaluate:evaluate",
    "FeatureFrame": "workbench.evaluation.evaluate:FeatureFrame",
    "LeakageError": "workbench.evaluation.progressive:LeakageError",
    "labels": "workbench.evaluation.labels:",
    "promote": "workbench.promote.promotion:promote",
    "rollback": "workbench.promote.versions:rollback",
    "features_as_of": "workbench.promote.versions:features_as_of",
    "online_features": "workbench.promote.versions:online_features",
    "models": "workbench.models:",
}

__all__ = sorted([*_LAZY, "WorkbenchWarning", "__version__"])


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module, attr = target.split(":")
    mod = importlib.import_module(module)
    value = getattr(mod, attr) if attr else mod
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
