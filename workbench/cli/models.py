"""``workbench models list | show NAME[/VERSION] | lineage NAME[/VERSION]``: the model store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from workbench.models import ModelVersion

app = typer.Typer(help="Model versions with their lineage (MLflow's model registry).", no_args_is_help=True)

REF_HELP = "NAME, NAME/VERSION or NAME@ALIAS (default: the latest version)."


@app.command("list")
def list_(name: str = typer.Argument(None, help="Only this model.")) -> None:
    """Every version, newest first per model; STALE marks one trained with an older dependency."""
    from workbench.models import names, versions
    from workbench.models.report import version_line
    from workbench.models.version import check_name

    chosen = [check_name(name)] if name else names()
    if not chosen:
        typer.echo("no models yet")
        return
    rows = [v for model in chosen for v in reversed(versions(model))]
    width = max(len(v.ref) for v in rows)
    for v in rows:
        typer.echo(version_line(v, width))


@app.command()
def show(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """One version as JSON: its lineage document plus created time, run, aliases and the stale flag."""
    from dataclasses import asdict

    from workbench.models import get, parse_ref

    v = get(*parse_ref(ref))
    typer.echo(json.dumps({"ref": v.ref, **asdict(v)}, indent=2, default=str))


@app.command()
def lineage(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """The chain to the root through parents: data range, feature hashes, metrics, depends_on."""
    from workbench.features.definition import registry_dir
    from workbench.models import lineage as chain_of
    from workbench.models import parse_ref
    from workbench.models.report import lineage_text

    chain = chain_of(*parse_ref(ref))
    folder = registry_dir()
    stored = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    typer.echo(lineage_text(chain, stored, stages=_stages(chain)))


def _stages(chain: list[ModelVersion]) -> dict[str, list[str]]:
    """Each version's routing history in any service: ``when  stage  (service)  reason``."""
    import time

    from workbench.serving.routing import RoutingStore

    out: dict[str, list[str]] = {}
    store = RoutingStore()
    for v in chain:
        for c in store.history(ref=v.ref):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.at))
            out.setdefault(v.ref, []).append(f"{when}  {c.stage:<8} ({c.service})  {c.reason}")
    return out
