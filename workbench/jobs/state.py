"""The supervisor's state file and how to tell whether a recorded process is still ours.

``<home>/jobs/<job>/state.json`` is written atomically (temp file, then
rename) by the supervisor on every change:

>>> import json
>>> s = JobState(job="shop_v2", pid=4242, status="running",
...              replicas=[ReplicaState(index=0, pid=4243, state="running", started_at=1.0)])
>>> JobState.from_json(s.to_json()) == s
True
>>> json.loads(s.to_json())["replicas"][0]["restarts"]
0
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.jobs.spec import jobs_dir

SUPERVISOR_MODULE = "workbench.jobs.supervisor"
WORKER_MODULE = "workbench.jobs.worker"


@dataclass
class ReplicaState:
    index: int
    pid: int | None = None
    # starting | running | backoff | stopped | failed
    state: str = "starting"
    restarts: int = 0
    last_exit: int | None = None
    started_at: float | None = None


@dataclass
class JobState:
    job: str
    pid: int | None = None
    # running | stopped | failed
    status: str = "running"
    replicas: list[ReplicaState] = field(default_factory=list)
    reason: str = ""
    started_at: float | None = None
    updated_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> JobState:
        raw = json.loads(text)
        raw["replicas"] = [ReplicaState(**r) for r in raw.get("replicas", [])]
        return JobState(**raw)


def job_dir(job: str) -> Path:
    return jobs_dir() / job


def state_path(job: str) -> Path:
    return job_dir(job) / "state.json"


def read_state(job: str) -> JobState | None:
    path = state_path(job)
    try:
        return JobState.from_json(path.read_text())
    except FileNotFoundError:
        return None


def write_state(state: JobState) -> None:
    import time

    state.updated_at = time.time()
    path = state_path(state.job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".state.{os.getpid()}.tmp")  # one temp per writer: no two writers share it
    tmp.write_text(state.to_json())
    tmp.replace(path)


def alive(pid: int | None, module: str, job: str) -> bool:
    """True when ``pid`` runs ``python -m <module> <job>``: not exited, not a zombie, not a reused pid."""
    if not pid:
        return False
    try:  # our own child (start() spawned it): reap it if it exited, or it stays a zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return module.encode() in argv and job.encode() in argv


def log_path(job: str, replica: int | None = None) -> Path:
    return job_dir(job) / ("supervisor.log" if replica is None else f"replica-{replica}.log")
