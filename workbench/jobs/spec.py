"""What a feature job runs, written by ``promote`` and read by the supervisor and the worker.

A spec is plain JSON at ``<home>/jobs/<job>/spec.json``; ``job`` is the
versioned name ``<set>_v<N>``:

>>> spec = JobSpec(job="shop_v2", feature_set="shop", version=2, feature_hashes=["5041c39a47740c22"],
...                env="local", repo_path="/tmp/repo/local", views={"views_5m": "shop_v2"},
...                join_keys={"shop_v2": "user_id"}, seam={"0": 10, "1": 12, "2": 9})
>>> JobSpec.from_json(spec.to_json()) == spec
True
>>> spec.consumer_group
'workbench-job-shop_v2'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class JobSpec:
    job: str
    feature_set: str
    version: int
    # the definitions, rebuilt from the registry (workbench.features.definition.load)
    feature_hashes: list[str]
    env: str
    # the Feast repo (one environment's folder) whose online store the job writes
    repo_path: str
    # feature name -> FeatureView name; FeatureView name -> join key
    views: dict[str, str]
    join_keys: dict[str, str]
    # source partition -> first offset NOT covered by the backfill; updates from
    # records before it are already in the online store (materialized) and are
    # computed only to build window state, never written again
    seam: dict[str, int] = field(default_factory=dict)
    exactly_once: bool = True
    # also write every update to ``features.<set>`` (one more transactional produce per
    # update); a job that only feeds the online store can turn it off
    feature_topic: bool = True

    @property
    def consumer_group(self) -> str:
        return f"workbench-job-{self.job}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> JobSpec:
        return JobSpec(**json.loads(text))


def jobs_dir() -> Path:
    from workbench.config import settings

    return settings().home / "jobs"


def spec_path(job: str) -> Path:
    return jobs_dir() / job / "spec.json"


def write(spec: JobSpec) -> Path:
    path = spec_path(spec.job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(spec.to_json())
    tmp.replace(path)
    return path


def read(job: str) -> JobSpec:
    path = spec_path(job)
    if not path.exists():
        raise FileNotFoundError(f"no job {job!r} (no {path})")
    return JobSpec.from_json(path.read_text())
