"""The main job behind ``workbench up``: broker, a simulated stream, and JupyterLab.

The broker outlives this command (its data is the point); the simulator and
JupyterLab are children of it and stop with it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from workbench.config import Settings, settings
from workbench.errors import WorkbenchError
from workbench.stack.broker import Broker

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FIRST_TUTORIAL = "01_tap_a_stream.ipynb"


@dataclass
class Lab:
    broker_address: str
    lab_url: str
    simulator_pid: int
    jupyter_pid: int
    log_dir: Path


def start(rate: int = 50, s: Settings | None = None, notebooks: Path = NOTEBOOKS) -> tuple[Lab, list[subprocess.Popen[bytes]]]:
    s = s or settings()
    if not notebooks.is_dir():
        raise WorkbenchError(f"tutorials not found at {notebooks}; run from a clone of the repository")
    status = Broker(s).up()
    log_dir = s.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    sim = _spawn([sys.executable, "-m", "workbench.cli", "stream", "simulate", "--rate", str(rate), "--no-progress"],
                 log_dir / "simulator.log")
    token = secrets.token_hex(16)
    try:
        lab = _spawn([
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={s.jupyter_port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
            f"--LabApp.default_url=/lab/tree/{FIRST_TUTORIAL}",
            # these machines run as root; Jupyter refuses that unless told
            *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
        ], log_dir / "jupyterlab.log")  # fmt: skip
    except BaseException:
        stop([sim])
        raise
    url = f"http://127.0.0.1:{s.jupyter_port}/lab/tree/{FIRST_TUTORIAL}?token={token}"
    try:
        _wait_http(f"http://127.0.0.1:{s.jupyter_port}/api/status?token={token}", lab, log_dir / "jupyterlab.log")
    except BaseException:
        stop([sim, lab])  # nothing this command started outlives its failure
        raise
    return Lab(status.address, url, sim.pid, lab.pid, log_dir), [sim, lab]


def run(rate: int = 50) -> None:
    """Start everything, print the URLs, and wait; Ctrl-C stops the simulator and JupyterLab."""
    lab, children = start(rate)
    print(f"kafka:      {lab.broker_address}")
    print(f"simulator:  pid {lab.simulator_pid}, {rate} events/s to 'events' (log: {lab.log_dir}/simulator.log)")
    print(f"jupyterlab: {lab.lab_url}")
    print("Ctrl-C stops the simulator and JupyterLab; `workbench stack down` stops the broker.")
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop(children)


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WorkbenchError(f"JupyterLab exited during start-up; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise WorkbenchError(f"JupyterLab did not answer within {timeout_s:.0f}s; see {log}")
