"""Feature review apps the Jupyter server starts for the sidebar, one child process per feature set.

Each is ``workbench review SET --headless --port P`` in its own process
group (the CLI and its ``marimo run`` child), so stopping it by that group's
id stops both. The URL, with its access token, is the first line the CLI
prints. Every app still running when the server exits is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError


@dataclass
class ReviewApp:
    feature_set: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


class ReviewApps:
    """The review apps this server started, by feature set name."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._apps: dict[str, ReviewApp] = {}
        self._lock = threading.Lock()

    def open(self, feature_set: str, timeout_s: float = 90.0) -> ReviewApp:
        """The running app for ``feature_set``, or a new one once it answers (blocking)."""
        from workbench.cli.review import URL_PREFIX

        with self._lock:
            app = self._apps.get(feature_set)
            if app is not None and app.running:
                return app
            self.log_dir.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            log = self.log_dir / f"review-{feature_set}.log"
            cmd = [sys.executable, "-m", "workbench.cli", "review", feature_set, "--headless", "--port", str(port)]
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            deadline = time.monotonic() + timeout_s
            url = None
            while time.monotonic() < deadline:
                text = log.read_text(errors="replace")
                if url is None:
                    url = next((ln.split(": ", 1)[1].strip() for ln in text.splitlines()
                                if ln.startswith(URL_PREFIX)), None)
                if proc.poll() is not None:
                    last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "no output")
                    raise WorkbenchError(f"review app for {feature_set!r} exited: {last.strip()}")
                if url is not None and _answers(port):
                    app = self._apps[feature_set] = ReviewApp(feature_set, url, proc, log)
                    return app
                time.sleep(0.2)
            _stop(proc)
            raise WorkbenchError(f"review app for {feature_set!r} did not answer within {timeout_s:.0f}s; see {log}")

    def running(self) -> list[ReviewApp]:
        with self._lock:
            return [a for a in self._apps.values() if a.running]

    def stop(self, feature_set: str) -> bool:
        with self._lock:
            app = self._apps.pop(feature_set, None)
        if app is None:
            return False
        _stop(app.proc)
        return True

    def stop_all(self) -> None:
        for name in list(self._apps):
            self.stop(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the app's own process group (the CLI and marimo), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its group id is its pid: start_new_session
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
