"""``workbench serve``: the recommendation service on uvicorn."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=32, help="Worker processes (one model copy each)."),
    model: str = typer.Option("latest", help="Ranking model version: a number, latest or an alias."),
    env: str = typer.Option(None, "--env", help="Feature store profile: local (SQLite) or production (Redis)."),
    session_set: str = typer.Option("rec_session", help="Promoted feature set holding session_items."),
    item_set: str = typer.Option("items", help="Promoted feature set holding the item features."),
    consume: bool = typer.Option(True, help="Consume the events and feedback topics (trending, learning)."),
    item_cache_ttl_s: float = typer.Option(1.0, min=0.0, help="Seconds an item's online row is reused."),
    events_topic: str = typer.Option(None, help="Topic POST /events writes to (default WORKBENCH_EVENTS_TOPIC)."),
    feedback_topic: str = typer.Option("feedback", help="Topic impressions and feedback are logged to."),
    service: str = typer.Option("recommender", help="Name of the routing table and bandit (shared by workers)."),
    learn_online: bool = typer.Option(True, help="Loaded versions learn from feedback (off: only the loop changes them)."),
    attribution_s: float = typer.Option(30.0, min=0.1, help="Seconds a click still counts for its list's version."),
    token_file: str = typer.Option(None, help="Admin token file (default <WORKBENCH_HOME>/serve.token)."),
) -> None:
    """Serve recommendations: POST /events, GET /recommendations, POST /feedback, /health, /metrics, /admin/*."""
    import os

    import uvicorn

    from workbench.serving.state import CONFIG_ENV, ServiceConfig

    config = ServiceConfig(model=model, env=env, session_set=session_set, item_set=item_set, consume=consume,
                           item_cache_ttl_s=item_cache_ttl_s, events_topic=events_topic,
                           feedback_topic=feedback_topic, service=service, learn_online=learn_online,
                           attribution_s=attribution_s, token_file=token_file)  # fmt: skip
    from workbench.serving.auth import admin_token, token_path

    admin_token(token_file)  # made here, once, so workers never race to create it
    if workers == 1:  # load the model here so a bad version fails with one line before binding the port
        from workbench.recommender.artifacts import load

        load(model)
    os.environ[CONFIG_ENV] = config.to_env()
    # one request is a few small matrix products: BLAS thread pools only add spin-waits and tail latency
    # next to other workers on the same cores (read when numpy loads in each worker process)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    typer.echo(f"serving on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}, model {model}); "
               f"admin token in {token_path(token_file)}")
    uvicorn.run("workbench.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", loop="uvloop", http="httptools", access_log=False)  # fmt: skip


def skew(
    served: str = typer.Option(..., "--served", help="Feature set whose served values are checked."),
    feedback_topic: str = typer.Option("feedback", help="Topic the service logs impressions to."),
    max_lag_ms: int = typer.Option(10_000, min=0, help="How far the online store may trail the stream."),
    env: str = typer.Option(None, "--env", help="Environment the set was promoted in."),
    show: int = typer.Option(20, min=0, help="Mismatches printed."),
) -> None:
    """Served values (logged with every impression) against the backfill of the same definitions."""
    from workbench.errors import WorkbenchError
    from workbench.serving.skew import served_skew

    report = served_skew(served, feedback_topic=feedback_topic, max_lag_ms=max_lag_ms, env=env)
    for line in report.mismatches[:show]:
        typer.echo(f"  {line}")
    if report.mismatch_count:
        raise WorkbenchError(report.summary())
    typer.echo(report.summary())
