"""Workbench inside Jupyter: the server extension, the labextension and the IPython magics.

Two entry points live here because Jupyter and IPython look them up by package:

* ``_jupyter_server_extension_points`` – the sidebar's REST API (``server.py``);
* ``load_ipython_extension`` – ``%load_ext workbench.jupyter`` registers ``%tap``.

The JupyterLab extension itself is TypeScript in ``extensions/workbench-lab``; its
build lands in ``workbench/jupyter/labextension`` and the wheel ships it as
``share/jupyter/labextensions/workbench-lab``.

Nothing heavy is imported at module level: this runs in every kernel start-up.

>>> [p["module"] for p in _jupyter_server_extension_points()]
['workbench.jupyter.server']
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.jupyter.server"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench.jupyter``: register the Workbench magics."""
    from workbench.jupyter.magics import load_ipython_extension as load

    load(ipython)
