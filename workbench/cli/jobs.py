"""``workbench jobs list | start | stop | logs | status``: supervised feature jobs."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from workbench.jobs import JobStatus

app = typer.Typer(help="Start, stop and inspect the supervised feature jobs that keep the online store fresh.",
                  no_args_is_help=True)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_jobs(jobs: list[JobStatus], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("job", "status", "health", "pid", "replicas"):
        table.add_column(col)
    for j in jobs:
        table.add_row(j.job, j.status, j.health, str(j.pid or "-"), str(len(j.replicas)))
    Console(width=160).print(table)


@app.command("list")
def list_() -> None:
    """Every job, its status and health."""
    from workbench.jobs import list_jobs

    jobs = list_jobs()
    if not jobs:
        typer.echo("no jobs yet (`workbench promote` creates them)")
        return
    _print_jobs(jobs, "feature jobs")


@app.command()
def status(job: str) -> None:
    """One job and its replicas; exits 3 when the job is not running."""
    from rich.console import Console
    from rich.table import Table

    from workbench.jobs import status as job_status

    st = job_status(job)
    _print_jobs([st], f"job {job}")
    if st.replicas:
        table = Table(title="replicas")
        for col in ("replica", "pid", "state", "restarts", "last exit", "started"):
            table.add_column(col)
        for r in st.replicas:
            table.add_row(str(r.index), str(r.pid or "-"), r.state, str(r.restarts),
                          "-" if r.last_exit is None else str(r.last_exit), _when(r.started_at))
        Console(width=160).print(table)
    if st.status != "running":
        raise typer.Exit(3)


@app.command()
def start(job: str, replicas: int = typer.Option(1, "--replicas", min=1, help="Worker processes.")) -> None:
    """Start the job under its supervisor (a running job is left as it is)."""
    from workbench.jobs import start as job_start

    st = job_start(job, replicas=replicas)
    typer.echo(f"{st.job}: {st.health} (supervisor pid {st.pid})")


@app.command()
def stop(job: str, timeout_s: float = typer.Option(60.0, "--timeout-s", help="Then SIGKILL.")) -> None:
    """Stop the job: SIGTERM to its supervisor, which stops the replicas."""
    from workbench.jobs import stop as job_stop

    st = job_stop(job, timeout_s=timeout_s)
    typer.echo(f"{st.job}: {st.health}")


@app.command()
def logs(
    job: str,
    lines: int = typer.Option(50, "-n", "--lines", min=1),
    replica: int = typer.Option(None, "--replica", help="Only this replica's log."),
) -> None:
    """The last lines of the supervisor's and the replicas' logs."""
    from workbench.jobs import logs as job_logs

    typer.echo(job_logs(job, lines=lines, replica=replica))
