"""``workbench stream``: simulate, replay and validate through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.config import Settings

WORKBENCH = str(Path(sys.executable).with_name("workbench"))


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WORKBENCH, "stream", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.broker
def test_simulate_live_produces(broker: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("cli")
    res = run("simulate", "--rate", "2000", "--duration", "2", "--topic", topic, "--no-progress")
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert line.startswith("produced ") and "\n" not in line
    assert int(line.split()[1]) >= 1


@pytest.mark.broker
def test_simulate_history_then_validate(broker: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("clihist")
    res = run("simulate", "--rate", "0", "--days", "1", "--users", "200", "--max-events", "500",
              "--topic", topic, "--shift-at", "12h", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("produced 500 events")
    res = run("validate", "--topic", topic, "--max-records", "500", "--timeout-s", "10")
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(res.stdout), dict)


@pytest.mark.broker
def test_replay_movielens_limit(broker: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("climl")
    res = run("replay", "movielens-100k", "--limit", "1000", "--topic", topic, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("produced 1000 events")


@pytest.mark.parametrize("args", [
    ["simulate", "--rate", "-1"],
    ["simulate", "--rate", "0"],
    ["simulate", "--rate", "10", "--days", "-2"],
    ["simulate", "--rate", "0", "--days", "1", "--shift-at", "tomorrowish"],
    ["replay", "nosuchdata"],
    ["replay", "movielens-100k", "--speedup", "-3"],
])
def test_bad_input_exits_non_zero_with_one_line(args: list[str]) -> None:
    res = run(*args)
    assert res.returncode != 0
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.broker
def test_ctrl_c_stops_cleanly_with_a_summary(broker: Settings, new_topic: Callable[..., str]) -> None:
    import signal
    import time

    topic = new_topic("cliint")
    proc = subprocess.Popen([WORKBENCH, "stream", "simulate", "--rate", "500", "--topic", topic, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("produced ") and out.strip().endswith("(interrupted)")
