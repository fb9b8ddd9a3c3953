"""Versions of a promoted feature set: listing, rollback and time travel.

``rollback`` re-points the FeatureService ``<set>`` to the previous version in
one registry write, marks the newer version rolled back, stops its job and
restarts the previous version's job (it resumes from its committed offsets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.promote.lineage import PromotionRecord


@dataclass
class VersionInfo:
    version: int
    status: str
    job: str
    lineage: dict[str, Any]

    @property
    def created_at(self) -> float:
        return float(self.lineage["created_at"])


def _job_health(job: str) -> str:
    from workbench import jobs

    try:
        return jobs.status(job).health
    except (FileNotFoundError, WorkbenchError, LookupError):
        return "no job"


def versions(name: str, env: str | None = None) -> list[VersionInfo]:
    """Every version of ``name`` in ``env``, newest first, with its job's health and lineage."""
    from workbench.promote import lineage
    from workbench.promote.store import environment

    return [VersionInfo(r.version, r.status, _job_health(r.job), r.lineage())
            for r in lineage.history(name, environment(env))]


def rollback(name: str, env: str | None = None, progress: bool = True) -> PromotionRecord:
    """Serve the previous version again; returns its record (now active)."""
    from workbench import jobs
    from workbench.features.definition import FeatureSet, load
    from workbench.promote import codegen, lineage
    from workbench.promote.store import environment, open_store, version_objects

    env = environment(env)
    records = lineage.history(name, env)
    current = next((r for r in records if r.status == "active"), None)
    if current is None:
        raise WorkbenchError(f"feature set {name!r} has no active version in {env}; nothing to roll back")
    target = next((r for r in records if r.version < current.version and r.status == "inactive"), None)
    if target is None:
        raise WorkbenchError(f"{name} v{current.version} is the first version in {env}; nothing to roll back to")
    store = open_store(env)
    fs = FeatureSet(name, [load(h) for h in target.feature_hashes])
    views = version_objects(fs, target.version).views
    path = store.repo_path / f"{name}.py"
    old = path.read_text() if path.exists() else None
    now = time.time()
    with lineage.engine().begin() as conn:
        lineage.set_status(conn, current, "rolled_back", now)
        lineage.set_status(conn, target, "active", None)
        codegen.write(path, codegen.render_set_service(name, target.version, sorted(v.name for v in views)))
        try:
            from workbench.promote.store import set_service

            store.apply([set_service(name, views, target.version)])  # the one registry write
        except BaseException:
            if old is not None:
                codegen.write(path, old)
            raise
    say = print if progress else (lambda *_a: None)
    say(f"FeatureService {name!r}: v{current.version} → v{target.version}")
    jobs.stop(current.job)
    say(f"stopped job {current.job}")
    status = jobs.start(target.job)
    say(f"job {target.job}: {status.health}")
    target.status, target.ended_at = "active", None
    return target


_READERS: dict[tuple[str, str, str], Any] = {}


def online_features(name: str, entity: dict[str, Any] | list[dict[str, Any]], env: str | None = None) -> Any:
    """The promoted set ``name``'s values for one entity (a dict) or many (a list), as production reads them.

    Reads through :class:`workbench.promote.reader.OnlineReader` (Feast's
    storage format, precomputed reads), kept open per set and environment; a
    promotion or rollback is picked up within the reader's refresh interval.
    """
    from workbench.config import settings
    from workbench.promote.reader import OnlineReader
    from workbench.promote.store import environment

    env = environment(env)
    key = (name, env, str(settings().repo_root))
    reader = _READERS.get(key)
    if reader is None:
        reader = _READERS[key] = OnlineReader.for_service(name, env=env)
    return reader.get(entity) if isinstance(entity, dict) else reader.get_many(entity)


def features_as_of(name: str, at: Any, env: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Feature values of ``name`` as they were at ``at``, recomputed from the recorded range and hashes.

    The version serving at ``at`` is found in the promotion records; its
    definitions are rebuilt from their hashes; the recorded data range is
    replayed (from its first offsets to the records' present end) and the
    backfill path computes every feature; the last value per key at or before
    ``at`` (event time) is returned, one row per entity key.
    """
    import pandas as pd

    from workbench.features.backfill import backfill
    from workbench.features.definition import load
    from workbench.promote import lineage
    from workbench.promote.store import environment
    from workbench.taps.positions import to_epoch_ms
    from workbench.taps.replay import replay

    env = environment(env)
    at_ms = to_epoch_ms(at)
    rec = lineage.as_of(name, env, at_ms / 1000) or lineage.active(name, env)
    if rec is None:
        raise WorkbenchError(f"feature set {name!r} was never promoted in {env}")
    features = [load(h) for h in rec.feature_hashes]
    rng = rec.data_range
    start = {int(p): int(lo) for p, (lo, _hi) in rng.get("partitions", {}).items()} or None
    events = replay(rng.get("topic") or features[0].source, start, None, progress=progress)
    events = events[events["event_time_ms"] <= at_ms]
    rows: dict[str, dict[str, Any]] = {}
    for f in features:
        out = backfill(f, events)
        if "late" in out:
            out = out[~out["late"].astype(bool)]
        for key, value in out.groupby("key", sort=False)["value"].last().items():
            rows.setdefault(f"{f.entity.name}:{key}", {"entity": f.entity.name, "key": key})[f.name] = value
    frame = pd.DataFrame(list(rows.values()), columns=["entity", "key", *(f.name for f in features)])
    frame.attrs.update({"version": rec.version, "as_of_ms": at_ms, "hashes": rec.feature_hashes})
    return frame.sort_values(["entity", "key"]).reset_index(drop=True)
