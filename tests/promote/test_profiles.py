"""The production profile (Redis, Debian's redis-server) end to end, and a broker restart under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.features.test_live import make_events, produce
from tests.promote.conftest import online, open_gate, shop_set
from tests.promote.test_promote import expected, later, wait_for
from workbench import jobs
from workbench.config import Settings, reload
from workbench.promote import promote, rollback
from workbench.stack.broker import Broker
from workbench.taps.replay import replay

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_production_profile_serves_from_redis(
    home: Settings, history: tuple[str, pd.DataFrame], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setenv("WORKBENCH_REDIS_URL", redis_url)
    monkeypatch.setenv("WORKBENCH_ENV", "production")
    s = reload()
    topic, frame = history
    v1, v2 = shop_set(topic), shop_set(topic, extra=True)
    open_gate(v1, frame)
    open_gate(v2, frame)
    try:
        assert promote(v1, progress=False).status == "promoted"
        rows = [{"session_id": f"s{i}", "user_id": f"u{i}"} for i in range(4)]
        got = online("shop", rows, env="production")
        assert got["session_views"] == [expected(v1, frame)["session_views"][f"s{i}"] for i in range(4)]
        # the rows really are in Redis, under this project's keys
        client = redis.Redis.from_url(redis_url)
        assert any(s.feast_project.encode() in k for k in client.scan_iter(count=1000))
        produce(topic, later(make_events(80, seed=8), 600_000), home)
        everything = replay(topic)

        def read_redis() -> dict[str, dict[str, Any]]:
            got = online("shop", rows, env="production")
            return {n: {r["session_id" if n.startswith("session") else "user_id"]: v
                        for r, v in zip(rows, vals, strict=True)}
                    for n, vals in got.items() if n not in ("session_id", "user_id")}

        deadline = time.monotonic() + 60
        while read_redis() != expected(v1, everything) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert read_redis() == expected(v1, everything)
        assert promote(v2, progress=False).version == 2
        assert "session_items" in read_redis()
        assert rollback("shop", progress=False).version == 1
        assert set(read_redis()) == {"session_views", "user_price_5m"}
    finally:
        for j in jobs.list_jobs():
            jobs.stop(j.job)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_restart_under_load_loses_and_doubles_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker of its own goes down and comes back while events flow; the job's values end exact.

    (Its own broker, so restarting it disturbs nothing else that uses the shared one.)
    """
    import uuid

    from workbench.streams.kafka import ensure_topic

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_KAFKA_PORT", str(_free_port()))
    monkeypatch.setenv("WORKBENCH_CONTROLLER_PORT", str(_free_port()))
    monkeypatch.setenv("WORKBENCH_KAFKA_HEAP_MB", "256")
    monkeypatch.setenv("WORKBENCH_FEAST_PROJECT", f"t{uuid.uuid4().hex[:10]}")
    s = reload()
    b = Broker(s)
    b.up()
    try:
        topic = f"test.restart.{uuid.uuid4().hex[:8]}"
        ensure_topic(topic, partitions=3, s=s)
        frame = produce(topic, make_events(400, seed=5), s)
        v1 = shop_set(topic)
        open_gate(v1, frame)
        events = later(make_events(600, seed=9), 600_000)
        assert promote(v1, progress=False).status == "promoted"
        done = threading.Event()

        def send() -> None:
            from workbench.streams import kafka
            from workbench.streams.events import encode

            p = kafka.producer(s, **{"enable.idempotence": True})
            for i, e in enumerate(events):
                p.produce(topic, key=e["session_id"].encode(), value=encode(e))
                p.poll(0)
                if i % 20 == 0:
                    time.sleep(0.05)  # ~400 events/s: the restart lands mid-stream
            assert p.flush(120) == 0
            done.set()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(0.5)
        b.down()
        time.sleep(1.0)
        b.up()
        sender.join(timeout=180)
        assert done.is_set(), "the producer did not deliver every event after the restart"
        everything = replay(topic)
        assert len(everything) == len(frame) + len(events)  # nothing lost, nothing written twice
        want = expected(v1, everything)
        assert wait_for(want, "shop", timeout_s=120) == want
        assert jobs.status("shop_v1").status == "running"
    finally:
        for j in jobs.list_jobs():
            jobs.stop(j.job)
        b.down()
        monkeypatch.undo()
        reload()
