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


@app.command()
def features(
    stream_events: int = typer.Option(200_000, min=100, help="Events through the real pipeline and the raw consumer."),
    backfill_events: int = typer.Option(5_000_000, min=1_000, help="Events in the in-memory backfill frame."),
    replay_events: int = typer.Option(20_000, min=100, help="Events replayed through the stream path broker-less."),
    month_days: int = typer.Option(30, min=1, max=30, help="Simulated days for incremental vs recompute."),
) -> None:
    """Feature throughput: live pipeline vs raw consumer, backfill vs stream replay, incremental vs recompute."""
    from workbench.bench.features import run

    _emit(run(stream_events=stream_events, backfill_events=backfill_events,
              replay_events=replay_events, month_days=month_days))


@app.command()
def evaluation(
    days: float = typer.Option(2.0, min=0.1, help="Simulated days of history."),
    seed: int = typer.Option(11, help="Simulator seed."),
) -> None:
    """Prequential loop samples/s (features, labels, two arms) vs River's progressive_val_score."""
    from workbench.bench.evaluation import run

    _emit(run(days=days, seed=seed))


@app.command()
def promote(
    rates: str = typer.Option("2000,5000,10000", help="Comma-separated producer rates (events/s) for freshness."),
    seconds: float = typer.Option(20.0, min=1.0, help="Seconds of paced traffic per rate, for job and baseline each."),
    features: int = typer.Option(50, min=1, help="Features read per entity for the read-latency figure."),
    reads: int = typer.Option(2000, min=100, help="Timed reads each for Workbench and Feast."),
    commit_interval_s: float | None = typer.Option(
        None, help="Job commit interval for this run (default: WORKBENCH_JOB_COMMIT_INTERVAL_S)."),
) -> None:
    """Online read latency (Workbench vs Feast) and freshness (feature job vs plain consumer) on Redis."""
    from workbench.bench.promote import run
    from workbench.errors import WorkbenchError

    try:
        rate_list = [int(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise WorkbenchError(f"--rates takes integers separated by commas, not {rates!r}") from None
    _emit(run(rates=rate_list, seconds=seconds, features=features, reads=reads, commit_interval_s=commit_interval_s))
