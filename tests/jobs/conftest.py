"""Fixtures for supervised feature jobs: a private home with Feast repos; jobs stopped at teardown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.jobs.helpers import JobHome
from workbench import config
from workbench.config import Settings


@pytest.fixture
def job_home(broker: Settings, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobHome]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_FEAST_PROJECT", f"jobs_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("WORKBENCH_REDIS_URL", redis_url)
    home = JobHome(config.reload())
    try:
        yield home
    finally:
        from confluent_kafka import KafkaException

        from workbench.jobs import spec, stop
        from workbench.streams.kafka import delete_consumer_group_and_topics, delete_topics, list_topics

        with ThreadPoolExecutor(4) as pool:  # each stop waits for a graceful shutdown: in parallel
            list(pool.map(lambda job: stop(job, timeout_s=60), dict.fromkeys(home.started)))
        # the jobs' groups, changelog/repartition topics and features.<set> topics leave the shared broker
        made = [spec.read(job) for job in dict.fromkeys(home.started) if spec.spec_path(job).exists()]
        for s in made:
            for attempt in range(30):  # a killed member stays in the group until its session times out
                try:
                    delete_consumer_group_and_topics(s.consumer_group)
                    break
                except KafkaException as exc:
                    if "NON_EMPTY_GROUP" not in str(exc) or attempt == 29:
                        raise
                    time.sleep(0.5)
        present = set(list_topics())
        outputs = sorted({f"features.{s.feature_set}" for s in made} & present)
        if outputs:
            delete_topics(outputs)
        monkeypatch.undo()
        config.reload()


