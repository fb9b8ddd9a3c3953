"""A real JupyterLab server for tests: own port, own token, isolated Jupyter dirs.

The server sees the labextension and server extension the package installed
into ``sys.prefix`` (that is what is under test), but user-level config, data
and runtime directories point into ``tmp_path`` so a developer's ~/.jupyter
cannot change the outcome. It is stopped by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lab:
    url: str  # base URL, no trailing slash
    token: str
    root_dir: Path
    log: Path

    def api(self, path: str, token: bool = True) -> str:
        return f"{self.url}/{path.lstrip('/')}" + (f"?token={self.token}" if token else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_env(tmp: Path, jupyter_path: Path | None = None) -> dict[str, str]:
    """Environment with Jupyter's per-user dirs under ``tmp``; ``jupyter_path`` adds kernelspecs."""
    env = dict(os.environ)
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
    ):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    env["IPYTHONDIR"] = str(tmp / "ipython")
    # No news feed or update check: the machine is offline and the toasts would cover the page.
    lab_config = {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
    (tmp / "config" / "jupyter_server_config.json").write_text(json.dumps(lab_config))
    notification = tmp / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    if jupyter_path is not None:
        env["JUPYTER_PATH"] = str(jupyter_path)
    return env


@contextmanager
def running_lab(root_dir: Path, env: dict[str, str], log: Path, timeout_s: float = 90) -> Iterator[Lab]:
    """Start ``python -m jupyterlab`` and yield once /api/status answers; always stop it."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI and this machine run as root; Jupyter refuses that by default
        cmd.append("--allow-root")
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    lab = Lab(f"http://127.0.0.1:{port}", token, root_dir, log)
    try:
        _wait_ready(lab, proc, timeout_s)
        yield lab
    finally:
        _stop(proc)


def _wait_ready(lab: Lab, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}; see {lab.log}")
        try:
            with urllib.request.urlopen(lab.api("api/status"), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer within {timeout_s:.0f}s; see {lab.log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM is jupyter_server's clean shutdown: it also shuts down the kernels it started.
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
