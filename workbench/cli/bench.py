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
    rounds: int = typer.Option(3, min=1, max=9, help="Rounds of raw consumer, pipeline and floor; medians reported."),
    backfill_events: int = typer.Option(5_000_000, min=1_000, help="Events in the in-memory backfill frame."),
    replay_events: int = typer.Option(20_000, min=100, help="Events replayed through the stream path broker-less."),
    month_days: int = typer.Option(30, min=1, max=30, help="Simulated days for incremental vs recompute."),
) -> None:
    """Feature throughput: live pipeline vs raw consumer, backfill vs stream replay, incremental vs recompute."""
    from workbench.bench.features import run

    _emit(run(stream_events=stream_events, rounds=rounds, backfill_events=backfill_events,
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


@app.command()
def bandit(
    seeds: int = typer.Option(500, min=10, help="Simulated experiments per design (the pinned figure is 500)."),
    seed: int = typer.Option(7, help="Random seed of the whole run."),
    check_every: int = typer.Option(100, min=1, help="Thompson sampling: requests per arm between checks."),
    arms: str = typer.Option("2,5", help="Comma-separated arm counts."),
) -> None:
    """Samples to decision: Thompson sampling (stop at P(best) >= 0.95) vs an A/B test sized in advance."""
    from workbench.bench.bandit import run
    from workbench.errors import WorkbenchError

    try:
        counts = tuple(int(a) for a in arms.split(",") if a.strip())
    except ValueError:
        raise WorkbenchError(f"--arms takes integers separated by commas, not {arms!r}") from None
    if not counts or min(counts) < 2:
        raise WorkbenchError("--arms needs arm counts of at least 2")
    _emit(run(seeds=seeds, seed=seed, check_every=check_every, arm_counts=counts))


@app.command()
def exploration(
    days: float = typer.Option(4.0, min=0.1, help="Simulated days of sessions (one request per session)."),
    users: int = typer.Option(5_000, min=100, help="Simulated users."),
    items: int = typer.Option(1_000, min=200, help="Catalog size."),
    seed: int = typer.Option(5, help="Simulator seed."),
) -> None:
    """Catalog coverage and CTR: linear-TS exploration slots vs uniform slots vs pure exploitation."""
    from workbench.bench.exploration import run

    _emit(run(days=days, users=users, items=items, seed=seed))


@app.command()
def retrain(
    users: int = typer.Option(1_000, min=50, help="Simulated users (events scale with it)."),
    history_days: int = typer.Option(28, min=1, help="Days of history before the week; the stateless window."),
    update_days: int = typer.Option(7, min=1, help="Daily updates compared."),
    seed: int = typer.Option(11, help="Simulator seed."),
    bootstrap: int = typer.Option(1000, min=50, help="Block-bootstrap replicates for the intervals."),
) -> None:
    """Daily retraining: stateful (continue on the day) vs stateless (from scratch on the window)."""
    from workbench.bench.retrain import run

    _emit(run(users=users, history_days=history_days, update_days=update_days, seed=seed, bootstrap=bootstrap))


@app.command("recommender-quality")
def recommender_quality(
    days: float = typer.Option(4.0, min=0.5, help="Simulated days (time split 80/20 by session start)."),
    seed: int = typer.Option(7, help="Simulator seed."),
    max_predictions: int = typer.Option(10_000, min=100, help="Held-out next-item predictions per data set."),
    gap_s: float = typer.Option(1800, min=60, help="MovieLens per-user inactivity gap that cuts sessions."),
    dataset: str = typer.Option("simulator,movielens-100k", help="Comma-separated data sets to run."),
) -> None:
    """Next-item HR@20 and MRR@20 on held-out sessions: popularity vs SKNN vs Workbench, same run."""
    from workbench.bench.recommender import run

    names = tuple(d.strip() for d in dataset.split(",") if d.strip())
    _emit(run(days=days, seed=seed, max_predictions=max_predictions, gap_s=gap_s, datasets=names))


@app.command("serve")
def serve_bench(
    seconds: float = typer.Option(60.0, min=5.0, help="Seconds of steady load for the latency figures."),
    rate: float = typer.Option(200.0, min=1.0, help="Steady request rate (requests/s)."),
    workers: int = typer.Option(2, min=1, max=16, help="Server worker processes."),
    step_s: float = typer.Option(15.0, min=3.0, help="Seconds per step of the max-rate ladder."),
    hours: float = typer.Option(6.0, min=0.5, help="Simulated hours of history behind the model and features."),
) -> None:
    """Recommendation latency (p50/p95/p99, errors) and max rps at p99 <= 50 ms, vs a no-op endpoint."""
    from workbench.bench.serve import run

    _emit(run(seconds=seconds, rate=rate, workers=workers, step_s=step_s, hours=hours))
