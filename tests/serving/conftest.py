"""One served recommender per module: a private Redis, a fresh topic, promoted feature sets, a saved model.

The Redis here is this module's own ``redis-server`` on a free port
(:class:`workbench.stack.redis.RedisServer`), so a test can stop it (degraded
mode) without touching anyone else's store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from workbench.config import Settings, reload
from workbench.stack.redis import RedisServer

SESSION_GAP_MS = 30 * 60_000


@dataclass
class Served:
    settings: Settings
    topic: str
    feedback_topic: str
    history: pd.DataFrame
    redis: RedisServer
    rec: Any
    model_version: Any
    item_set: Any
    session_set: Any

    def state(self, **config: Any) -> Any:
        from workbench.serving.state import ServiceConfig, ServiceState

        cfg = ServiceConfig(env="production", events_topic=self.topic, feedback_topic=self.feedback_topic,
                            item_set=self.item_set.name, session_set=self.session_set.name, retry_s=0.2,
                            **config)  # fmt: skip
        return ServiceState(cfg)


def simulated_history(n_items: int = 150, hours: float = 6.0) -> list[dict[str, Any]]:
    """The shop simulator's last ``hours`` up to a minute ago, as plain event dicts."""
    from workbench.streams.simulator import ShopSimulator

    sim = ShopSimulator(seed=5, n_users=300, n_items=n_items, n_categories=5, diurnal_amplitude=0.0)
    now_ms = int(time.time() * 1000)
    return list(sim.events(start_ms=now_ms - int(hours * 3_600_000), duration_s=hours * 3600 - 60))


@pytest.fixture(scope="module")
def served(broker: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.features.test_live import produce
    from workbench import jobs
    from workbench.promote import promote
    from workbench.recommender.artifacts import save
    from workbench.recommender.feature_sets import item_features, session_features
    from workbench.recommender.recommender import Recommender
    from workbench.streams.kafka import delete_topics, ensure_topic

    redis = RedisServer(maxmemory_mb=256).start()
    home = tmp_path_factory.mktemp("serve-home")
    mp = pytest.MonkeyPatch()
    topic = f"test.serve.{uuid.uuid4().hex[:10]}"
    feedback = f"{topic}.feedback"
    try:
        mp.setenv("WORKBENCH_HOME", str(home))
        mp.setenv("WORKBENCH_FEAST_PROJECT", f"s{uuid.uuid4().hex[:10]}")
        mp.setenv("WORKBENCH_ENV", "production")
        mp.setenv("WORKBENCH_REDIS_URL", redis.url)
        mp.setenv("WORKBENCH_JOB_COMMIT_INTERVAL_S", "0.2")
        s = reload()
        ensure_topic(topic, partitions=2, s=s)
        ensure_topic(feedback, partitions=1, s=s)
        events = simulated_history()
        history = produce(topic, events, s)
        rec = Recommender(dim=16, candidates=60, max_train_prefixes=3_000).fit(history)
        version = save(rec)
        item_set = item_features(source=topic)
        session_set = session_features(SESSION_GAP_MS, source=topic)
        for fs in (item_set, session_set):
            result = promote(fs, force=True, progress=False)
            assert result.status == "promoted", result.summary()
        yield Served(s, topic, feedback, history, redis, rec, version, item_set, session_set)
    finally:
        try:
            for j in jobs.list_jobs():
                jobs.stop(j.job)
        finally:
            redis.close()
            try:
                delete_topics([topic, feedback], s=reload())
            except Exception:
                pass
            mp.undo()
            reload()


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Poll until ``check()`` is truthy; its last value otherwise."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every_s)
        value = check()
    return value


def home_of(s: Settings) -> Path:
    return s.home
