"""``workbench promote SET``, ``workbench rollback SET`` and ``workbench features list | history SET``."""

from __future__ import annotations

import datetime as dt
import json

import typer

from workbench.errors import WorkbenchError

features_app = typer.Typer(help="Promoted feature sets: versions, status, job health and lineage.",
                           no_args_is_help=True)


def promote(
    feature_set: str = typer.Argument(..., help="A feature set name from the registry (evaluated in a notebook)."),
    env: str = typer.Option(None, "--env", help="Environment: local (SQLite) or production (Redis)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stop after printing the plan."),
    force: bool = typer.Option(False, "--force", help="Override a closed gate (recorded with the promotion)."),
    to_model: str = typer.Option(None, "--to-model", help="Also train a candidate of this model that reads the set "
                                 "(ranking) and put it in shadow in the running service."),
    service_url: str = typer.Option("http://127.0.0.1:8000", "--service", help="The service (with --to-model)."),
    token_file: str = typer.Option(None, help="Admin token file (with --to-model; default <home>/serve.token)."),
    hours: float = typer.Option(24.0, min=0.1, help="History the candidate trains on (with --to-model)."),
) -> None:
    """Gate, generate, plan, apply, backfill, start the job, switch, record (and, with --to-model, the model)."""
    from workbench.promote import promote as run

    if to_model is not None:
        if dry_run:
            raise WorkbenchError("--dry-run and --to-model do not go together: the candidate needs the promotion")
        from workbench.promote.to_model import promote_to_model

        try:
            chained = promote_to_model(feature_set, model=to_model, env=env, force=force, hours=hours,
                                       service_url=service_url, token_file=token_file)  # fmt: skip
        except LookupError as exc:
            raise WorkbenchError(str(exc).strip("'\"")) from exc
        if chained.promotion.status == "refused":
            raise WorkbenchError(f"promote {feature_set} refused: {chained.promotion.gate.line()} (--force overrides)")
        typer.echo(chained.summary())
        return
    try:
        result = run(feature_set, env=env, dry_run=dry_run, force=force)
    except LookupError as exc:
        raise WorkbenchError(str(exc).strip("'\"")) from exc
    if result.status == "refused":
        raise WorkbenchError(f"promote {feature_set} refused: {result.gate.line()} (--force overrides, recorded)")
    typer.echo(result.summary())


def rollback(
    feature_set: str = typer.Argument(...),
    env: str = typer.Option(None, "--env"),
) -> None:
    """Re-point the FeatureService to the previous version (one registry write); stop the newer job."""
    from workbench.promote import rollback as run

    rec = run(feature_set, env=env)
    typer.echo(f"{feature_set}: serving v{rec.version} again")


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@features_app.command("list")
def list_(env: str = typer.Option(None, "--env")) -> None:
    """Every promoted set: active version, its job's health, versions, and sets not promoted yet."""
    from rich.console import Console
    from rich.table import Table

    from workbench.features.sets import set_names
    from workbench.promote import lineage, versions
    from workbench.promote.store import environment

    env = environment(env)
    table = Table("feature set", "active", "job", "versions", "promoted at", title=f"feature sets ({env})")
    promoted = lineage.all_sets(env)
    for name in promoted:
        vs = versions(name, env)
        active = next((v for v in vs if v.status == "active"), None)
        table.add_row(name, f"v{active.version}" if active else "-", active.job if active else "-",
                      ", ".join(f"v{v.version} {v.status}" for v in vs), _when(active.created_at if active else None))
    for name in set_names():
        if name not in promoted:
            table.add_row(name, "-", "-", "draft/evaluated, not promoted", "-")
    Console().print(table)


@features_app.command()
def history(feature_set: str, env: str = typer.Option(None, "--env"),
            as_json: bool = typer.Option(False, "--json", help="Full lineage as JSON.")) -> None:
    """Every version of SET: status, job health and lineage."""
    from workbench.promote import versions
    from workbench.promote.store import environment

    vs = versions(feature_set, environment(env))
    if not vs:
        raise WorkbenchError(f"feature set {feature_set!r} was never promoted in {environment(env)}")
    if as_json:
        typer.echo(json.dumps([{"version": v.version, "status": v.status, "job": v.job, **v.lineage} for v in vs],
                              indent=2, default=str))
        return
    for v in vs:
        lin = v.lineage
        gate = "forced" if lin["forced"] else f"evaluation {lin['evaluation_id']}, skew {lin['skew_id']}"
        parts = lin["data_range"].get("partitions", {})
        rng = ", ".join(f"p{p}:{lo}-{hi}" for p, (lo, hi) in sorted(parts.items())) or "empty"
        typer.echo(f"v{v.version}  {v.status:<11} {_when(lin['created_at'])}  job: {v.job}\n"
                   f"     gate: {gate}; origin: {lin['origin']}\n"
                   f"     definitions: {', '.join(lin['feature_hashes'])}\n"
                   f"     backfill: {lin['data_range'].get('topic')} {rng}")
