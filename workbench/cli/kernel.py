"""``workbench kernel install | uninstall``: the "Workbench (Python 3)" Jupyter kernel."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    help="Install the Workbench Jupyter kernel (IPython with the %tap magic).", no_args_is_help=True
)


USER = typer.Option(False, "--user", help="The user's Jupyter data dir (~/.local/share/jupyter).")
SYS_PREFIX = typer.Option(False, "--sys-prefix", help="This environment (sys.prefix/share/jupyter).")
PREFIX = typer.Option(None, "--prefix", help="PREFIX/share/jupyter.")


def _target(user: bool, sys_prefix: bool, prefix: str | None) -> tuple[bool, str | None]:
    """(user, prefix) for jupyter_client; no flag means the system-wide directory."""
    from workbench.errors import WorkbenchError

    if sum([user, sys_prefix, prefix is not None]) > 1:
        raise WorkbenchError("choose one of --user, --sys-prefix and --prefix")
    return user, sys.prefix if sys_prefix else prefix


@app.command()
def install(user: bool = USER, sys_prefix: bool = SYS_PREFIX, prefix: str | None = PREFIX) -> None:
    """Install the "workbench" kernelspec, pointing at this Python interpreter."""
    from workbench.errors import WorkbenchError
    from workbench.jupyter.kernelspec import install as install_spec

    as_user, at_prefix = _target(user, sys_prefix, prefix)
    try:
        path = install_spec(user=as_user, prefix=at_prefix)
    except PermissionError as exc:
        raise WorkbenchError(
            f"cannot write the kernelspec ({exc.filename}); try --user or --sys-prefix"
        ) from exc
    typer.echo(f"installed kernelspec 'workbench' (Workbench (Python 3)) in {path}")


@app.command()
def uninstall(user: bool = USER, sys_prefix: bool = SYS_PREFIX, prefix: str | None = PREFIX) -> None:
    """Remove the "workbench" kernelspec from the same place install would write it."""
    from workbench.errors import WorkbenchError
    from workbench.jupyter.kernelspec import destination
    from workbench.jupyter.kernelspec import uninstall as uninstall_spec

    as_user, at_prefix = _target(user, sys_prefix, prefix)
    path = uninstall_spec(user=as_user, prefix=at_prefix)
    if path is None:
        raise WorkbenchError(f"no 'workbench' kernelspec at {destination(as_user, at_prefix)}")
    typer.echo(f"removed {path}")
