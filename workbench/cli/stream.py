"""``workbench stream simulate | replay | validate``: producers and the validation job."""

from __future__ import annotations

import typer

app = typer.Typer(help="Produce simulated or replayed events, and validate topics.", no_args_is_help=True)
