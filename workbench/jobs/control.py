"""Start, stop and inspect supervised feature jobs (the API behind ``workbench jobs``)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from workbench.errors import WorkbenchError
from workbench.jobs.spec import jobs_dir, spec_path
from workbench.jobs.state import (
    SUPERVISOR_MODULE,
    WORKER_MODULE,
    JobState,
    ReplicaState,
    alive,
    job_dir,
    log_path,
    read_state,
    write_state,
)


class UnknownJob(WorkbenchError):
    """No job of that name has a spec (``promote`` writes it)."""


class JobStartError(WorkbenchError):
    """The supervisor did not come up."""


@dataclass(frozen=True)
class JobStatus:
    """A job as ``workbench jobs status`` shows it.

    ``status`` is running, stopped, failed, or dead (the supervisor is gone
    without having recorded why); ``health`` says it in one short line.
    """

    job: str
    status: str
    health: str
    replicas: list[ReplicaState] = field(default_factory=list)
    pid: int | None = None


def _require(job: str) -> None:
    if not spec_path(job).exists():
        raise UnknownJob(f"no job {job!r}; `workbench jobs list` shows the jobs")


def _health(state: JobState, running: int) -> str:
    n = len(state.replicas)
    if state.status == "failed":
        return f"failed: {state.reason}" if state.reason else "failed"
    if state.status == "stopped":
        return "stopped"
    text = f"running {running}/{n}"
    waiting = [r for r in state.replicas if r.state == "backoff"]
    if waiting:
        r = waiting[0]
        text += f" (replica {r.index} restarting after exit {r.last_exit}, {r.restarts} restarts)"
    return text


def status(job: str) -> JobStatus:
    """The job's recorded state, checked against the processes that are really there."""
    _require(job)
    state = read_state(job)
    if state is None:
        return JobStatus(job, "stopped", "never started")
    replicas = [ReplicaState(**vars(r)) for r in state.replicas]
    if state.status != "running":
        return JobStatus(job, state.status, _health(state, 0), replicas, state.pid)
    if not alive(state.pid, SUPERVISOR_MODULE, job):
        return JobStatus(job, "dead", f"dead: supervisor {state.pid} is gone", replicas, state.pid)
    running = 0
    for r in replicas:
        if r.state == "running" and alive(r.pid, WORKER_MODULE, job):
            running += 1
        elif r.state == "running":
            r.state = "exited"  # the supervisor has not noticed yet
    return JobStatus(job, "running", _health(state, running), replicas, state.pid)


def list_jobs() -> list[JobStatus]:
    """Every job with a spec, by name."""
    root = jobs_dir()
    if not root.exists():
        return []
    return [status(p.name) for p in sorted(root.iterdir()) if (p / "spec.json").exists()]


def start(job: str, replicas: int = 1, wait_s: float = 30.0) -> JobStatus:
    """Start the job's supervisor in the background; a running job is left as it is.

    Returns once the supervisor has recorded its replicas (or ``wait_s`` passed).
    """
    _require(job)
    if replicas < 1:
        raise WorkbenchError(f"replicas must be at least 1, not {replicas}")
    folder = job_dir(job)
    with open(folder / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two starts at once: the second sees the first running
        current = status(job)
        if current.status == "running":
            return current
        _kill_leftovers(job)
        with open(log_path(job), "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, job, "--replicas", str(replicas)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            state = read_state(job)
            if state is not None and state.pid == proc.pid:
                return status(job)
            if proc.poll() is not None:
                raise JobStartError(f"supervisor of {job} exited with {proc.returncode}: {_last_line(job)}")
            time.sleep(0.05)
        return status(job)


def stop(job: str, timeout_s: float = 60.0) -> JobStatus:
    """SIGTERM the supervisor and wait for it (it stops the replicas); SIGKILL after ``timeout_s``."""
    _require(job)
    state = read_state(job)
    if state is None:
        return status(job)
    if alive(state.pid, SUPERVISOR_MODULE, job):
        assert state.pid is not None
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while alive(state.pid, SUPERVISOR_MODULE, job) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(state.pid, SUPERVISOR_MODULE, job):
            os.kill(state.pid, signal.SIGKILL)
    _kill_leftovers(job)
    state = read_state(job) or state
    if state.status == "running":  # the supervisor died without recording it
        state.status = "stopped"
        for r in state.replicas:
            r.state = "stopped"
        write_state(state)
    return status(job)


def _kill_leftovers(job: str) -> None:
    """SIGKILL replicas a dead supervisor left behind (they also stop by themselves when orphaned)."""
    state = read_state(job)
    if state is None:
        return
    for r in state.replicas:
        if alive(r.pid, WORKER_MODULE, job):
            assert r.pid is not None
            os.kill(r.pid, signal.SIGKILL)


def logs(job: str, lines: int = 50, replica: int | None = None) -> str:
    """The last ``lines`` of the supervisor's log and each replica's (or of one replica's)."""
    _require(job)
    if replica is not None:
        path = log_path(job, replica)
        if not path.exists():
            raise WorkbenchError(f"job {job} has no log for replica {replica}")
        return _tail(path, lines)
    parts = []
    for path in [log_path(job), *sorted(job_dir(job).glob("replica-*.log"))]:
        if path.exists():
            parts.append(f"==> {path.name} <==\n{_tail(path, lines)}")
    return "\n".join(parts)


def _tail(path: os.PathLike[str], lines: int) -> str:
    with open(path, errors="replace") as f:
        return "".join(deque(f, maxlen=lines)).rstrip("\n")


def _last_line(job: str) -> str:
    text = _tail(log_path(job), 1) if log_path(job).exists() else ""
    return text.strip() or "no output"
