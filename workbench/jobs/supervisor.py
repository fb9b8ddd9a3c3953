"""The supervisor of one job: ``python -m workbench.jobs.supervisor JOB --replicas N``.

A long-lived background process (``workbench.jobs.start`` launches it in its
own session) that

* spawns N replicas of :mod:`workbench.jobs.worker` (one consumer group, so
  they split the partitions), each logging to ``replica-<i>.log``;
* records its pid and every replica's pid, state, restarts, last exit code
  and start time in ``state.json`` (atomic writes);
* restarts a replica that exits with a backoff of 0.5 s doubling per recent
  crash, capped at 30 s;
* gives up when a replica crashed more than ``job_max_restarts`` times within
  ``job_restart_window_s``: it stops the other replicas and records the job
  as ``failed`` with the reason, instead of looping;
* on SIGTERM (or SIGINT) sends SIGTERM to the replicas, waits for them
  (SIGKILL after ``--stop-timeout-s``) and records ``stopped``.

Only one supervisor runs per job: it holds ``supervisor.lock`` while alive.

>>> backoff_s(1), backoff_s(2), backoff_s(3), backoff_s(20)
(0.5, 1.0, 2.0, 30.0)
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workbench.jobs.state import WORKER_MODULE, JobState, ReplicaState, job_dir, log_path, write_state

log = logging.getLogger("workbench.jobs.supervisor")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
POLL_S = 0.1


def backoff_s(recent_crashes: int) -> float:
    """Delay before restarting a replica that crashed ``recent_crashes`` times in the window."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** max(0, recent_crashes - 1))


@dataclass
class _Replica:
    state: ReplicaState
    proc: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float = 0.0


class Supervisor:
    def __init__(self, job: str, replicas: int, stop_timeout_s: float = 30.0) -> None:
        from workbench.config import settings

        s = settings()
        self.job = job
        self.max_restarts = s.job_max_restarts
        self.window_s = s.job_restart_window_s
        self.stop_timeout_s = stop_timeout_s
        self.replicas = [_Replica(ReplicaState(index=i)) for i in range(replicas)]
        self.state = JobState(job=job, pid=os.getpid(), status="running", started_at=time.time(),
                              replicas=[r.state for r in self.replicas])
        self._stopping = False

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stopping = True

    def run(self) -> int:
        lock = open(job_dir(self.job) / "supervisor.lock", "w")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another supervisor of %s is running; exiting", self.job)
            return 3
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for r in self.replicas:
            self._spawn(r)
        write_state(self.state)
        log.info("supervising %s with %d replica(s), pid %d", self.job, len(self.replicas), os.getpid())
        while not self._stopping and self.state.status == "running":
            changed = False
            for r in self.replicas:
                if r.proc is not None and r.proc.poll() is not None:
                    self._exited(r, r.proc.returncode)
                    changed = True
                elif r.proc is None and time.monotonic() >= r.restart_at:
                    self._spawn(r)
                    changed = True
                if self.state.status != "running":
                    break
            if changed:
                write_state(self.state)
            time.sleep(POLL_S)
        self._stop_replicas()
        if self.state.status == "running":
            self.state.status = "stopped"
        write_state(self.state)
        log.info("%s %s", self.job, self.state.status)
        return 0 if self.state.status == "stopped" else 1

    def _spawn(self, r: _Replica) -> None:
        i = r.state.index
        out = open(log_path(self.job, i), "ab")  # noqa: SIM115 - the child owns it; closed below
        try:
            r.proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, self.job, "--replica", str(i), "--supervisor", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        finally:
            out.close()
        r.state.pid, r.state.state, r.state.started_at = r.proc.pid, "running", time.time()
        log.info("replica %d started, pid %d", i, r.proc.pid)

    def _exited(self, r: _Replica, code: int) -> None:
        now = time.monotonic()
        r.proc = None
        r.state.last_exit = code
        r.crashes.append(now)
        while r.crashes and now - r.crashes[0] > self.window_s:
            r.crashes.popleft()
        i = r.state.index
        if len(r.crashes) > self.max_restarts:
            r.state.state = "failed"
            self.state.status = "failed"
            self.state.reason = f"replica {i} crashed {len(r.crashes)}x, last exit {code}"
            log.error("replica %d exited with %d; %s: giving up", i, code, self.state.reason)
            return
        delay = backoff_s(len(r.crashes))
        r.restart_at = now + delay
        r.state.restarts += 1
        r.state.state = "backoff"
        log.warning("replica %d exited with %d; restart %d in %.1fs", i, code, r.state.restarts, delay)

    def _stop_replicas(self) -> None:
        live = [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]
        for r in live:
            assert r.proc is not None
            r.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for r in live:
            assert r.proc is not None
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("replica %d did not stop in %.0fs; killing it", r.state.index, self.stop_timeout_s)
                r.proc.kill()
                r.proc.wait()
        for r in self.replicas:
            if r.proc is not None:
                r.state.last_exit = r.proc.returncode
            if r.state.state != "failed":
                r.state.state = "stopped"
            r.proc = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.jobs.supervisor",
                                     description="Supervise the replicas of one feature job.")
    parser.add_argument("job")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--stop-timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # the log is a file: line by line
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s supervisor %(levelname)s: %(message)s")
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    job_dir(args.job).mkdir(parents=True, exist_ok=True)
    return Supervisor(args.job, args.replicas, args.stop_timeout_s).run()


if __name__ == "__main__":
    sys.exit(main())
