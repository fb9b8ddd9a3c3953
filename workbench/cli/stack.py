"""``workbench stack up | down | status``: the embedded Kafka broker."""

from __future__ import annotations

import typer

app = typer.Typer(help="Start, stop and inspect the local Kafka stack.", no_args_is_help=True)


@app.command()
def up() -> None:
    """Start the embedded broker (a no-op when it runs; reuses existing data)."""
    from workbench.stack.broker import Broker

    broker = Broker()
    was_running = broker.status().running
    status = broker.up()
    typer.echo("already running" if was_running else "started")
    typer.echo("\n".join(status.lines()))


@app.command()
def down() -> None:
    """Stop the embedded broker by its pid."""
    from workbench.stack.broker import Broker

    broker = Broker()
    if not broker.s.embedded:
        typer.echo(f"external cluster at {broker.s.bootstrap}: not running (nothing to stop)")
        return
    typer.echo("stopped" if broker.down() else "not running")


@app.command()
def status() -> None:
    """Show pid, address, topics and disk use."""
    from workbench.stack.broker import Broker

    st = Broker().status()
    typer.echo("\n".join(st.lines()))
    if not st.running:
        raise typer.Exit(3)
