"""Helpers for the job tests: a private home with Feast repos, events, expected and online values."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.config import Settings
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.backfill import backfill
from workbench.features.definition import SESSION, Feature, FeatureSet, save
from workbench.jobs.spec import JobSpec
from workbench.promote.naming import entities, join_key, online_value, view_names
from workbench.streams import kafka

BASE_MS = 1_700_000_000_000


@dataclass
class JobHome:
    """One test's WORKBENCH_HOME with both environments' Feast repos; jobs are stopped at the end."""

    settings: Settings
    started: list[str] = field(default_factory=list)

    def store(self, env: str) -> Any:
        from workbench.promote.store import open_store

        return open_store(env)

    def make_job(self, fs: FeatureSet, env: str = "local", job: str | None = None,
                 seam: dict[str, int] | None = None, feature_topic: bool = True) -> JobSpec:
        """Apply version 1 of ``fs`` to ``env``'s registry and write the job's spec."""
        from workbench.jobs import spec as job_spec
        from workbench.promote.store import repo_path, version_objects

        store = self.store(env)
        store.apply(version_objects(fs, 1).all)
        save(fs.features)
        views = view_names(fs, 1)
        spec = JobSpec(
            job=job or f"{fs.name}_v1", feature_set=fs.name, version=1,
            feature_hashes=[f.hash for f in fs.features], env=env, repo_path=str(repo_path(env)),
            views=views, join_keys={views[f.name]: join_key(f.entity) for f in fs.features},
            seam=seam or {}, feature_topic=feature_topic,
        )  # fmt: skip
        job_spec.write(spec)
        return spec

    def start(self, job: str, replicas: int = 1) -> Any:
        from workbench.jobs import start

        self.started.append(job)
        return start(job, replicas=replicas)


def shop_features(source: str) -> list[Feature]:
    """A count, a sum and a last value per session (Int64, Float64 and String online)."""
    return [
        Feature("n_1h", SESSION, win.Tumbling(size_ms=3_600_000), agg.Count(), source=source),
        Feature("spend_1h", SESSION, win.Tumbling(size_ms=3_600_000), agg.Sum("price"), source=source),
        Feature("last_item", SESSION, win.Session(gap_ms=1_800_000), agg.Last("item_id"), source=source),
    ]


def shop_set(source: str) -> FeatureSet:
    return FeatureSet(f"s{uuid.uuid4().hex[:8]}", shop_features(source))


def make_events(n: int, sessions: list[str], start: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """In event-time order per session, so the last record of a key gives its current value."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        session = sessions[rng.randrange(len(sessions))]
        out.append({
            "event_id": f"e{i}", "event_type": "view", "event_time_ms": BASE_MS + 1000 * i,
            "user_id": f"u-{session}", "session_id": session, "item_id": f"i{rng.randrange(5)}",
            "category": "books", "price": rng.randint(0, 100) / 4,
        })  # fmt: skip
    return out


def expected_online(fs: FeatureSet, history: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """feature -> key -> the backfill's value at the key's last update, as the online store holds it."""
    out: dict[str, dict[str, Any]] = {}
    for f in fs.features:
        rows = backfill(f, history)
        rows = rows[~rows.late].sort_values(["partition", "offset", "window_start_ms"], kind="stable")
        last = rows.groupby("key", sort=False).tail(1)
        out[f.name] = {str(k): online_value(f, v) for k, v in zip(last.key, last.value, strict=True)}
    return out


def read_online(repo: str, fs: FeatureSet, keys: list[str]) -> dict[str, dict[str, Any]]:
    """feature -> key -> value, read with a plain Feast FeatureStore (None for a missing value)."""
    from feast import FeatureStore

    views = view_names(fs, 1)
    store = FeatureStore(repo_path=repo)
    jk = join_key(entities(fs)[0])
    got = store.get_online_features(
        features=[f"{views[f.name]}:{f.name}" for f in fs.features],
        entity_rows=[{jk: k} for k in keys],
    ).to_dict()
    return {f.name: dict(zip(got[jk], got[f.name], strict=True)) for f in fs.features}


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached in {timeout_s:.0f}s\n{detail()}")


def wait_online(home: JobHome, spec: JobSpec, fs: FeatureSet, expected: dict[str, dict[str, Any]],
                timeout_s: float = 120.0) -> dict[str, dict[str, Any]]:
    """Poll the online store until it holds ``expected`` (every key of every feature)."""
    from workbench.jobs import logs

    keys = sorted({k for per in expected.values() for k in per})
    got: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        nonlocal got
        got = read_online(spec.repo_path, fs, keys)
        return all(got[name].get(k) == v for name, per in expected.items() for k, v in per.items())

    wait_for(check, timeout_s, f"online values of {spec.job}",
             lambda: f"expected {expected}\ngot {got}\n{logs(spec.job, lines=30)}")
    return got


def read_topic(topic: str, s: Settings) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of ``topic`` as (value, headers), read to the end."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = kafka.consumer(s)
    try:
        ends = {}
        for p in kafka.partitions(c, topic):
            lo, hi = kafka.watermarks(c, topic, p)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out = []
        while ends:
            for m in c.consume(num_messages=500, timeout=1.0):
                if m.error():
                    continue
                out.append((m.value(), {k: v.decode() if v else v for k, v in m.headers() or []}))
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
            for tp in c.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition, None)
        return out
    finally:
        c.close()


def group_partitions(group: str, topic: str, s: Settings) -> list[list[int]]:
    """Per member of ``group``: the partitions of ``topic`` assigned to it (empty list for none)."""
    client = kafka.admin(s)
    desc = client.describe_consumer_groups([group], request_timeout=10)[group].result()
    return [sorted(tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic)
            for m in desc.members]
