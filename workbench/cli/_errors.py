"""Exception types the CLI reports as one line instead of a traceback."""

from __future__ import annotations

from pydantic import ValidationError

from workbench.config import SettingsError
from workbench.errors import WorkbenchError

EXPECTED: tuple[type[BaseException], ...] = (WorkbenchError, SettingsError, ValidationError)


def one_line(exc: BaseException) -> str:
    """Fold an error into one line; pydantic's multi-line reports become `field: message`."""
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return "bad setting: " + "; ".join(parts)
    return " ".join(str(exc).split())
