"""The model store's one-line errors."""

from __future__ import annotations

from workbench.errors import WorkbenchError


class ModelStoreError(WorkbenchError):
    """A model store call was given something it cannot record (a bad name, range or metric)."""


class UnknownModelError(ModelStoreError):
    """No registered model, version or alias by that name."""
