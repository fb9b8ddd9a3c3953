"""``workbench evaluations list | show ID``: stored evaluation records."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Read stored evaluation records (the promotion gate reads them too).", no_args_is_help=True)


@app.command("list")
def list_(
    feature_set: str = typer.Option(None, "--set", help="Only this feature set."),
    limit: int = typer.Option(20, min=1),
) -> None:
    """Newest first: id, time, feature set, verdict, lift with its interval."""
    import datetime as dt

    from workbench.evaluation.records import list_records

    rows = list_records(limit=limit, feature_set=feature_set)
    if not rows:
        typer.echo("no evaluations yet")
        return
    for r in rows:
        when = dt.datetime.fromtimestamp(r.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        lift = r.lift
        band = f"{lift.get('relative', float('nan')):+.2%} [{lift.get('relative_low', float('nan')):+.2%}, " \
               f"{lift.get('relative_high', float('nan')):+.2%}]"
        typer.echo(f"{r.id}  {when}  {r.feature_set or '-':<20} {r.verdict:<12} {band}")


@app.command()
def show(record_id: str) -> None:
    """The whole record as JSON."""
    from dataclasses import asdict

    from workbench.errors import WorkbenchError
    from workbench.evaluation.records import get

    rec = get(record_id)
    if rec is None:
        raise WorkbenchError(f"no evaluation with id {record_id!r}; `workbench evaluations list` shows them")
    typer.echo(json.dumps(asdict(rec), indent=2, default=str))
