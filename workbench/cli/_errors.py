"""Exception types the CLI reports as one line instead of a traceback."""

from __future__ import annotations

from workbench.config import SettingsError
from workbench.errors import WorkbenchError

EXPECTED: tuple[type[BaseException], ...] = (WorkbenchError, SettingsError)
