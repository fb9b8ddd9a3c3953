"""``workbench bench NAME``: benchmarks that print JSON with a same-run baseline and the ratio."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Benchmarks: each prints JSON with its figure, a same-run baseline and their ratio.",
                  no_args_is_help=True)


def _emit(result: dict[str, object]) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def tap(
    events: int = typer.Option(1_000_000, min=10_000, help="Events produced to the benchmark topic."),
    buffer_rows: int = typer.Option(100_000, min=1_000, help="Tap buffer size for the memory figure."),
) -> None:
    """Tap throughput into a DataFrame vs a plain confluent-kafka JSON consumer."""
    from workbench.bench.tap import run

    _emit(run(events=events, buffer_rows=buffer_rows))
