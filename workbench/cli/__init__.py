"""The ``workbench`` command line. One module per noun; no logic of its own lives here."""

from __future__ import annotations

import sys

import typer

from workbench.cli import bench, evaluations, jobs, kernel, loop, models, promote, serve, stack, stream, up
from workbench.cli import review as review_cli

app = typer.Typer(
    help="Workbench: taps, streaming features, evaluation and promotion on a real Kafka stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("up")(up.up)
app.add_typer(stack.app, name="stack")
app.add_typer(stream.app, name="stream")
app.add_typer(evaluations.app, name="evaluations")
app.add_typer(bench.app, name="bench")
app.add_typer(kernel.app, name="kernel")
app.command("promote")(promote.promote)
app.command("rollback")(promote.rollback)
app.add_typer(promote.features_app, name="features")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.command("review")(review_cli.review)
app.command("serve")(serve.serve)
app.add_typer(loop.app, name="loop")
promote.features_app.command("skew")(serve.skew)


def main() -> None:
    """Entry point: expected failures become one clear line and a non-zero exit."""
    from workbench.cli._errors import EXPECTED, one_line

    try:
        app()
    except EXPECTED as exc:
        typer.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(1)
