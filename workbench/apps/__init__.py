"""marimo apps shipped with Workbench: plain ``.py`` notebooks, run with ``marimo run``.

``review.py`` is the feature review app (``workbench review SET``). Every app
here passes ``marimo check`` (the tests run it on each file).

>>> [p.name for p in app_paths()]
['review.py']
>>> app_path("review").name
'review.py'
"""

from __future__ import annotations

from pathlib import Path

APPS_DIR = Path(__file__).resolve().parent
# Modules here that are helpers, not apps.
_HELPERS = {"__init__.py", "panels.py", "launch.py"}


def app_paths() -> list[Path]:
    """Every marimo app in this folder."""
    return sorted(p for p in APPS_DIR.glob("*.py") if p.name not in _HELPERS)


def app_path(name: str) -> Path:
    """The app called ``name`` (file name without ``.py``)."""
    path = APPS_DIR / f"{name}.py"
    if path.name in _HELPERS or not path.is_file():
        raise LookupError(f"no marimo app {name!r} in {APPS_DIR}")
    return path
