"""Supervised feature jobs on the real broker, writing to real SQLite and Redis online stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.features.test_live import produce, read_all
from tests.jobs.helpers import (
    JobHome,
    expected_online,
    group_partitions,
    make_events,
    read_online,
    shop_set,
    wait_for,
    wait_online,
)
from workbench import jobs
from workbench.features.backfill import backfill
from workbench.jobs.state import WORKER_MODULE, alive

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SESSIONS = [f"s{i}" for i in range(8)]
WORKBENCH = str(Path(sys.executable).with_name("workbench"))


def test_end_to_end_sqlite_and_redis_hold_the_backfill_values(
    job_home: JobHome, new_topic: Callable[..., str]
) -> None:
    """Same events, one job per store: each store holds the backfill's last value per key, and they agree.

    The Redis job runs with ``feature_topic=False``: ``features.<set>`` then holds the SQLite job's
    updates only, exactly one per backfill row.
    """
    source = new_topic("jobe2e", partitions=2)
    fs = shop_set(source)
    lite = job_home.make_job(fs, "local")
    red = job_home.make_job(fs, "production", job=f"{fs.name}_v1_redis", feature_topic=False)
    for spec in (lite, red):
        st = job_home.start(spec.job)
        assert st.status == "running", st.health
    history = produce(source, make_events(400, SESSIONS, seed=1), job_home.settings)
    expected = expected_online(fs, history)
    got_lite = wait_online(job_home, lite, fs, expected)
    got_red = wait_online(job_home, red, fs, expected)
    assert got_lite == got_red
    assert jobs.status(lite.job).health == "running 1/1"
    # both stores are complete, so both jobs have committed every update they will write
    written = [json.loads(r["value"]) for r in read_all(fs.topic, job_home.settings)]
    rows = sum(int((~backfill(f, history).late).sum()) for f in fs.features)
    assert len(written) == rows


def test_two_replicas_share_partitions_and_a_killed_one_resumes_exactly(
    job_home: JobHome, new_topic: Callable[..., str]
) -> None:
    """Two replicas in one group split the partitions; SIGKILL one mid-run: restarted, values exact."""
    source = new_topic("jobkill", partitions=2)
    fs = shop_set(source)
    spec = job_home.make_job(fs, "production")
    job_home.start(spec.job, replicas=2)
    split: list[list[int]] = []

    def both_assigned() -> bool:
        nonlocal split
        split = group_partitions(spec.consumer_group, source, job_home.settings)
        return len(split) == 2 and all(split)

    wait_for(both_assigned, 120, "two members with a partition each", lambda: f"{split}\n{jobs.logs(spec.job)}")
    first = produce(source, make_events(1500, SESSIONS, seed=2), job_home.settings)

    def some_written() -> bool:
        return any(v is not None for v in read_online(spec.repo_path, fs, SESSIONS)["n_1h"].values())

    wait_for(some_written, 120, "a first online value", lambda: jobs.logs(spec.job))
    victim = jobs.status(spec.job).replicas[0].pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    second = produce(source, make_events(1500, SESSIONS, start=1500, seed=3), job_home.settings)
    history = pd.concat([first, second]).sort_values(["partition", "offset"]).reset_index(drop=True)
    wait_online(job_home, spec, fs, expected_online(fs, history))

    st = jobs.status(spec.job)
    assert st.status == "running" and st.health == "running 2/2", st.health
    killed = st.replicas[0]
    assert (killed.restarts, killed.last_exit, killed.pid != victim) == (1, -signal.SIGKILL, True)


def test_updates_before_the_seam_are_not_written(job_home: JobHome, new_topic: Callable[..., str]) -> None:
    """Records before the seam build window state only: a pre-written (materialized) value stays untouched."""
    from workbench.jobs.sink import OnlineSink

    source = new_topic("jobseam", partitions=1)
    before = produce(source, make_events(60, ["old", "mid"], seed=4), job_home.settings)
    fs = shop_set(source)
    spec = job_home.make_job(fs, "production", seam={"0": len(before)})
    # stands in for the materialized backfill: a sentinel no job run would compute
    sentinel = OnlineSink(spec, fs, store=job_home.store("production"))
    sentinel.setup()
    for name, value in (("n_1h", 999), ("spend_1h", -1.0), ("last_item", "sentinel")):
        sentinel.add({"feature": name, "key": "old", "value": value, "event_time_ms": 0, "source_partition": 0,
                      "source_offset": len(before)}, "old", 0, [], source, 0, 0)  # fmt: skip
    sentinel.flush()

    job_home.start(spec.job)
    after = produce(source, make_events(60, ["mid", "new"], start=60, seed=5), job_home.settings)
    history = pd.concat([before, after]).reset_index(drop=True)
    expected = expected_online(fs, history)
    for per in expected.values():
        del per["old"]
    wait_online(job_home, spec, fs, expected)  # mid's windows include its records before the seam
    old = read_online(spec.repo_path, fs, ["old"])
    assert old == {"n_1h": {"old": 999}, "spend_1h": {"old": -1.0}, "last_item": {"old": '"sentinel"'}}


def test_crash_loop_is_reported_failed(job_home: JobHome, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that keeps crashing (its definition is gone) is given up on after max restarts."""
    from workbench import config
    from workbench.jobs.spec import JobSpec, write

    monkeypatch.setenv("WORKBENCH_JOB_MAX_RESTARTS", "2")
    monkeypatch.setenv("WORKBENCH_JOB_RESTART_WINDOW_S", "120")
    config.reload()
    write(JobSpec(job="broken_v1", feature_set="broken", version=1, feature_hashes=["0" * 16], env="local",
                  repo_path=str(job_home.settings.repo_root / "local"), views={"n": "broken_v1"},
                  join_keys={"broken_v1": "session_id"}))  # fmt: skip
    job_home.store("local")  # the repo exists; the definition does not
    job_home.start("broken_v1")
    wait_for(lambda: jobs.status("broken_v1").status == "failed", 90, "failed status",
             lambda: jobs.logs("broken_v1"))
    st = jobs.status("broken_v1")
    assert st.health == "failed: replica 0 crashed 3x, last exit 2"
    assert st.replicas[0].restarts == 2
    assert "definition 0000000000000000 is not in the registry" in jobs.logs("broken_v1", replica=0)

    res = cli("status", "broken_v1")
    assert res.returncode == 3
    assert "failed: replica 0 crashed 3x, last exit 2" in res.stdout


def test_cli_list_start_status_logs_stop(job_home: JobHome, new_topic: Callable[..., str]) -> None:
    fs = shop_set(new_topic("jobcli", partitions=1))
    spec = job_home.make_job(fs, "local")
    job_home.started.append(spec.job)  # stopped at teardown whatever happens here

    res = cli("list")
    assert res.returncode == 0 and spec.job in res.stdout and "never started" in res.stdout
    res = cli("start", spec.job)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{spec.job}: running 1/1 (supervisor pid {jobs.status(spec.job).pid})"
    assert cli("start", spec.job).returncode == 0  # idempotent: left alone
    res = cli("status", spec.job)
    assert res.returncode == 0 and "running 1/1" in res.stdout
    res = cli("logs", spec.job, "-n", "5")
    assert res.returncode == 0 and "==> supervisor.log <==" in res.stdout and "supervising" in res.stdout

    # a supervisor killed outright: its state reads as dead, its orphaned replica stops by itself,
    # and start brings the job back
    before = jobs.status(spec.job)
    assert before.pid is not None and before.replicas[0].pid is not None
    os.kill(before.pid, signal.SIGKILL)
    res = cli("status", spec.job)
    assert res.returncode == 3 and f"dead: supervisor {before.pid} is gone" in res.stdout
    wait_for(lambda: not alive(before.replicas[0].pid, WORKER_MODULE, spec.job), 60, "orphan replica exit",
             lambda: jobs.logs(spec.job))
    res = cli("start", spec.job)
    assert res.returncode == 0 and "running 1/1" in res.stdout, res.stdout + res.stderr

    res = cli("stop", spec.job)
    assert res.returncode == 0 and res.stdout.strip() == f"{spec.job}: stopped"
    assert cli("status", spec.job).returncode == 3

    for args in (("status", "nope"), ("start", "nope"), ("logs", "nope"), ("stop", "nope")):
        res = cli(*args)
        assert res.returncode == 1, args
        assert res.stderr.strip() == "error: no job 'nope'; `workbench jobs list` shows the jobs"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WORKBENCH, "jobs", *args], capture_output=True, text=True, timeout=120)
