"""Lifecycle of the embedded broker, on a second broker with its own ports and state."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import Settings, settings
from workbench.stack.broker import Broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", cache_dir=settings().cache_dir,
                    kafka_port=_free_port(), controller_port=_free_port())


@pytest.mark.broker
def test_up_down_up_keeps_data_and_second_up_is_noop(private_settings: Settings) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    from workbench.streams.kafka import ensure_topic, list_topics

    broker = Broker(private_settings)
    try:
        status = broker.up()
        assert status.running and status.pid
        assert "events" in status.topics
        first_pid = status.pid

        again = broker.up()
        assert again.pid == first_pid, "a second up must reuse the running broker"

        ensure_topic("kept", partitions=1, s=private_settings)
        prod = Producer(private_settings.kafka_config())
        prod.produce("kept", key=b"k", value=b"survives a restart")
        assert prod.flush(10) == 0

        assert broker.down()
        assert broker.status().running is False
        assert not broker.down(), "down on a stopped broker reports that nothing ran"

        restarted = broker.up()
        assert restarted.pid != first_pid
        assert "kept" in list_topics(s=private_settings)
        cons = Consumer({**private_settings.kafka_config(), "group.id": "unused", "enable.auto.commit": False})
        cons.assign([TopicPartition("kept", 0, 0)])
        msg = cons.poll(15)
        cons.close()
        assert msg is not None and msg.value() == b"survives a restart"
    finally:
        broker.down()


def _cli(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    res = _cli({"PATH": str(empty), "WORKBENCH_HOME": str(tmp_path / "h"),
                "WORKBENCH_KAFKA_PORT": str(_free_port()), "WORKBENCH_CONTROLLER_PORT": str(_free_port())},
               "stack", "up")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "java not found" in lines[0] and "apt-get install" in lines[0]


def test_missing_maven_is_one_clear_line(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(os.path.realpath(java))
    res = _cli({"PATH": str(only_java), "WORKBENCH_HOME": str(tmp_path / "h"),
                "WORKBENCH_CACHE_DIR": str(tmp_path / "empty-cache"),
                "WORKBENCH_KAFKA_PORT": str(_free_port()), "WORKBENCH_CONTROLLER_PORT": str(_free_port())},
               "stack", "up")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "mvn not found" in lines[0]


def test_status_of_a_stopped_stack_exits_non_zero(private_settings: Settings) -> None:
    res = _cli({"WORKBENCH_HOME": str(private_settings.home),
                "WORKBENCH_KAFKA_PORT": str(private_settings.kafka_port),
                "WORKBENCH_CONTROLLER_PORT": str(private_settings.controller_port)}, "stack", "status")
    assert res.returncode == 3
    assert "stopped" in res.stdout


def test_bad_setting_is_one_clear_line() -> None:
    res = _cli({"WORKBENCH_KAFKA_HEAP_MB": "4096"}, "stack", "status")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "kafka_heap_mb" in lines[0]


@pytest.mark.broker
def test_external_cluster_starts_nothing(broker: Settings, tmp_path: Path) -> None:
    home = tmp_path / "ext"
    res = _cli({"WORKBENCH_BOOTSTRAP_SERVERS": broker.bootstrap, "WORKBENCH_HOME": str(home)}, "stack", "up")
    assert res.returncode == 0, res.stderr
    assert "external" in res.stdout and "events" in res.stdout
    assert not (home / "kafka").exists(), "an external cluster must not get a local broker"
    down = _cli({"WORKBENCH_BOOTSTRAP_SERVERS": broker.bootstrap, "WORKBENCH_HOME": str(home)}, "stack", "down")
    assert down.returncode == 0 and "not running" in down.stdout


def test_unreachable_external_cluster_is_one_clear_line(tmp_path: Path) -> None:
    res = _cli({"WORKBENCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}", "WORKBENCH_HOME": str(tmp_path)},
               "stack", "up")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: no Kafka broker at")


def test_cluster_ids_never_start_with_a_dash(tmp_path: Path) -> None:
    """A leading '-' made Kafka's StorageTool read the id as an option (1 format in 64 failed)."""
    from workbench.stack.broker import _cluster_id

    ids = [_cluster_id(tmp_path / f"{i}.id") for i in range(2000)]
    assert all(not cid.startswith("-") and len(cid) == 22 for cid in ids)
    assert _cluster_id(tmp_path / "0.id") == ids[0]  # stable once written
