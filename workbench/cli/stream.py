"""``workbench stream simulate | replay | validate``: producers and the validation job."""

from __future__ import annotations

import json
import math

import typer

app = typer.Typer(help="Produce simulated or replayed events, and validate topics.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def simulate(
    rate: float = typer.Option(..., help="Target events/s; 0 with --days means as fast as possible."),
    duration: float | None = typer.Option(None, help="Stop after this many wall-clock seconds (default: "
                                          "until Ctrl-C when live, until the history is sent with --days)."),
    seed: int = typer.Option(0, min=0, help="Simulator seed; the same seed gives the same world."),
    topic: str | None = typer.Option(None, help="Topic to produce to (default: the events topic)."),
    days: float | None = typer.Option(None, help="Send this many days of history ending now, instead of live."),
    start: str | None = typer.Option(None, help="With --days: the history starts at this ISO time instead."),
    shift_at: str | None = typer.Option(None, help="Distribution shift time: an offset after the first "
                                        "simulated instant (90s, 15m, 2h, 15d) or an ISO time."),
    users: int = typer.Option(5000, min=1, help="Simulated users."),
    items: int = typer.Option(2000, min=20, help="Catalog size."),
    max_events: int | None = typer.Option(None, min=1, help="Stop after this many events."),
    progress: bool = typer.Option(True, help="Show the live progress bar."),
) -> None:
    """Produce shop-simulator events, live (event time = now) or as fast history (--days)."""
    if not rate >= 0 or math.isinf(rate):
        raise _fail("--rate must be a finite number >= 0")
    if days is None and rate == 0:
        raise _fail("--rate 0 (as fast as possible) needs --days; live mode needs a rate > 0")
    if duration is not None and not duration > 0:
        raise _fail("--duration must be > 0")
    if days is not None and not days > 0:
        raise _fail("--days must be > 0")
    if start is not None and days is None:
        raise _fail("--start needs --days (live mode always starts now)")
    from workbench.streams.produce import parse_iso_ms, simulate_to_kafka

    try:
        start_ms = None if start is None else parse_iso_ms(start)
        out = simulate_to_kafka(rate, duration, days=days, seed=seed, topic=topic, shift_at=shift_at,
                                start_ms=start_ms, max_events=max_events, n_users=users, n_items=items,
                                progress=progress)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(out["summary"])
    if out["errors"]:
        raise typer.Exit(1)


@app.command()
def replay(
    dataset: str = typer.Argument(..., help="Data set to replay: movielens-100k."),
    speedup: float = typer.Option(0.0, help="Time compression; 0 or inf means as fast as possible."),
    limit: int | None = typer.Option(None, min=1, help="Send only the first N events."),
    topic: str | None = typer.Option(None, help="Topic to produce to (default: the events topic)."),
    gap_s: float = typer.Option(1800.0, help="Inactivity gap (seconds) that starts a new session."),
    progress: bool = typer.Option(True, help="Show the live progress bar."),
) -> None:
    """Replay a data set in event-time order, keeping its original event times."""
    if dataset != "movielens-100k":
        raise _fail(f"unknown data set {dataset!r}; choose movielens-100k")
    if not speedup >= 0:
        raise _fail("--speedup must be >= 0")
    if not gap_s > 0:
        raise _fail("--gap-s must be > 0")
    from workbench.streams.movielens import replay_movielens

    out = replay_movielens(speedup, limit=limit, topic=topic, gap_s=gap_s, progress=progress)
    typer.echo(out["summary"])
    if out["errors"]:
        raise typer.Exit(1)


@app.command()
def validate(
    topic: str | None = typer.Option(None, help="Topic to validate (default: the events topic)."),
    from_beginning: bool = typer.Option(True, help="With no committed offsets, start at the beginning."),
    max_records: int | None = typer.Option(None, min=1, help="Stop after this many records."),
    timeout_s: float | None = typer.Option(None, help="Stop after this many seconds without a record."),
) -> None:
    """Validate a topic, sending bad records to <topic>.dlq; prints the counts as JSON."""
    from workbench.config import settings
    from workbench.streams.validation import validate_topic

    counts = validate_topic(topic=topic or settings().events_topic, from_beginning=from_beginning,
                            max_records=max_records, timeout_s=timeout_s)
    typer.echo(json.dumps(counts, default=str))
