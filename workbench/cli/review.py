"""``workbench review SET``: the feature review app (``workbench/apps/review.py``) under ``marimo run``.

marimo serves the app on 127.0.0.1 with a fresh access token (handed over
on stdin, so it never shows in ``ps``); the first line printed is the URL
with that token, which is also how the Jupyter server extension learns it.
"""

from __future__ import annotations

import typer

URL_PREFIX = "review app for "


def review_command(set_name: str, port: int, host: str, headless: bool, since: str, token: str | None,
                   app: str = "review") -> list[str]:
    """The ``marimo run`` command line for an app and a feature set.

    >>> cmd = review_command("shop", 2718, "127.0.0.1", True, "10m", "t0k")
    >>> cmd[cmd.index("--"):]
    ['--', '--set', 'shop', '--since', '10m']
    >>> "--headless" in cmd and cmd[cmd.index("--token-password-file") + 1]
    '-'
    """
    import sys

    from workbench.apps import app_path

    cmd = [sys.executable, "-m", "marimo", "run", str(app_path(app)), "--host", host, "--port", str(port)]
    if headless:
        cmd.append("--headless")
    cmd += ["--token", "--token-password-file", "-"] if token else ["--no-token"]
    return [*cmd, "--", "--set", set_name, "--since", since]


def review(
    set_name: str = typer.Argument(..., metavar="SET", help="A feature set name from the registry."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (default: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to serve on."),
    headless: bool = typer.Option(False, "--headless", help="Do not open a browser."),
    since: str = typer.Option("10m", "--since", help="How far back the live tap starts."),
    token: bool = typer.Option(True, "--token/--no-token", help="Require the printed access token."),
) -> None:
    """Review a feature set in a marimo app: definition, live values, skew, drift, lift, promote."""
    import secrets
    import signal
    import subprocess

    from workbench.errors import WorkbenchError
    from workbench.features.sets import load_set

    try:
        load_set(set_name)  # fail here, in one line, rather than inside the app
    except LookupError as exc:
        raise WorkbenchError(str(exc).strip('"')) from None
    port = port or _free_port(host)
    secret = secrets.token_urlsafe(24) if token else None
    url = f"http://{host}:{port}/" + (f"?access_token={secret}" if secret else "")
    typer.echo(f"{URL_PREFIX}{set_name}: {url}", nl=True)
    proc = subprocess.Popen(review_command(set_name, port, host, headless, since, secret), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write((secret or "").encode())
    proc.stdin.close()

    def stop(signum: int, _frame: object) -> None:
        proc.send_signal(signal.SIGTERM)  # marimo shuts its sessions down on SIGTERM

    signal.signal(signal.SIGTERM, stop)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches marimo too (same process group); let it finish
        code = proc.wait()
    if code not in (0, -signal.SIGTERM, -signal.SIGINT, 130, 143):
        raise WorkbenchError(f"marimo exited with {code}; its output is above")


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
