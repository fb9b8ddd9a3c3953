"""``workbench up``: the main job (broker, simulated stream, JupyterLab with the tutorials)."""

from __future__ import annotations

import typer


def up(rate: int = typer.Option(50, min=1, help="Simulated events per second.")) -> None:
    """Start the broker, stream the shop simulator, and serve JupyterLab with the tutorials."""
    from workbench.stack.lab import run

    run(rate)
