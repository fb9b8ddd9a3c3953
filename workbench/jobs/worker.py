"""One replica of a feature job: ``python -m workbench.jobs.worker JOB [--replica I] [--supervisor PID]``.

It reads the job's spec, rebuilds the feature set from the definition hashes,
and runs the set's quixstreams application (consumer group
``spec.consumer_group``, so replicas split the partitions) with the online
sink on every feature branch. State lives in
``<home>/state/jobs/<job>-r<replica>`` with changelog topics, so a replica
killed and restarted restores its windows and resumes from committed offsets.
Each replica has its own stable transactional id (see :func:`run`), so a
restart does not wait for the killed replica's transaction to time out.

It runs until SIGTERM (quixstreams stops at the next record and commits) and
exits 0; any error exits non-zero for the supervisor to see. A replica whose
supervisor died (it was re-parented) stops by itself, so no orphan keeps
writing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet
    from workbench.jobs.spec import JobSpec

log = logging.getLogger("workbench.jobs.worker")

# how long the group waits for a replica that stopped heartbeating (killed) before reassigning its partitions
SESSION_TIMEOUT_MS = 10_000


def feature_set_of(spec: JobSpec) -> FeatureSet:
    """The spec's features, rebuilt from their hashes (a missing or changed definition is an error)."""
    from workbench.features.definition import FeatureSet, load

    features = []
    for h in spec.feature_hashes:
        try:
            features.append(load(h))
        except FileNotFoundError as exc:
            raise WorkbenchError(f"job {spec.job}: definition {h} is not in the registry") from exc
    fs = FeatureSet(spec.feature_set, features)
    missing = sorted(set(f.name for f in fs.features) - set(spec.views))
    if missing:
        raise WorkbenchError(f"job {spec.job}: no FeatureView for {', '.join(missing)}")
    return fs


def run(job: str, replica: int = 0, supervisor: int | None = None) -> None:
    """Run one replica until SIGTERM; with ``supervisor`` (its pid), also until that process is gone."""
    from pathlib import Path

    if supervisor is not None:
        _stop_when_orphaned(supervisor)

    from workbench.config import settings
    from workbench.jobs import spec as job_spec

    # a broken spec fails here, before the heavy imports: a crash loop is cheap to detect
    try:
        spec = job_spec.read(job)
    except FileNotFoundError as exc:
        raise WorkbenchError(str(exc)) from exc
    if not (Path(spec.repo_path) / "feature_store.yaml").exists():
        raise WorkbenchError(f"job {job}: no Feast repo at {spec.repo_path}")
    fs = feature_set_of(spec)

    from workbench.features.intake import Intake
    from workbench.features.job import LateRecords, application, compile_feature_set
    from workbench.jobs.sink import OnlineSink
    from workbench.streams.validation import DeadLetters

    s = settings()
    source = fs.features[0].source
    dead_letters = DeadLetters(source)
    sink = OnlineSink(spec, fs, dead_letters)
    sink.open_in_background()
    dead_letters.prime()  # a restarted replica must not dead-letter a record twice
    late = LateRecords(dead_letters)
    member = f"{spec.consumer_group}-r{replica}"
    app = application(
        fs,
        exactly_once=spec.exactly_once,
        consumer_group=spec.consumer_group,
        state_dir=s.home / "state" / "jobs" / f"{job}-r{replica}",
        commit_interval=s.job_commit_interval_s,
        # A killed replica's partitions wait for the group to drop it: a short session keeps
        # that short. (Static membership would skip even that, but a static member never
        # leaves the group when stopped, which holds its partitions after a scale-down.)
        consumer_extra_config={"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 2_000},
        # A stable transactional id per replica fences the killed replica's producer and
        # aborts its open transaction at once; a random one would leave it open, and
        # read_committed readers of the changelog stuck, until the transaction timeout.
        producer_extra_config={"transactional.id": member} if spec.exactly_once else {},
    )
    compile_feature_set(app, fs, late, Intake(dead_letters), sink=sink, feature_topic=spec.feature_topic)
    log.info("job %s replica %d: group %s, %d features, seam %s", job, replica, spec.consumer_group,
             len(fs.features), spec.seam or "none")
    try:
        app.run()
    finally:
        dead_letters.flush()
        log.info("job %s replica %d stopped: %d rows written, %d updates before the seam, unwritable %s",
                 job, replica, sink.rows_written, sink.before_seam, dict(sink.unwritable) or "none")


def _stop_when_orphaned(parent: int, poll_s: float = 1.0) -> None:
    """SIGTERM ourselves once ``parent`` (the supervisor) is no longer our parent: it died.

    The pid comes from the supervisor itself, so a supervisor that died while
    this process was still starting is noticed too. Before quixstreams
    installs its handler, SIGTERM simply ends the process (nothing to save yet).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("supervisor %d is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.jobs.worker", description=__doc__.split("\n")[0])
    parser.add_argument("job")
    parser.add_argument("--replica", type=int, default=0)
    parser.add_argument("--supervisor", type=int, default=None, help="stop when this parent pid is gone")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # the log is a file: line by line
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s r{args.replica} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    try:
        run(args.job, args.replica, args.supervisor)
    except WorkbenchError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
