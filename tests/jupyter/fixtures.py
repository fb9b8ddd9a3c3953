"""Fixtures shared by tests/jupyter and tests/ui: the installed kernelspec, events, a running Lab."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.jupyter.lab import Lab, isolated_env, running_lab
from workbench.config import Settings


@pytest.fixture(scope="session")
def kernel_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prefix holding the kernelspec written by `workbench kernel install --prefix`."""
    from typer.testing import CliRunner

    from workbench.cli import app

    prefix = tmp_path_factory.mktemp("kernel-prefix")
    result = CliRunner().invoke(app, ["kernel", "install", "--prefix", str(prefix)])
    assert result.exit_code == 0, result.output
    return prefix


def make_event(i: int, session: str = "s1") -> dict[str, object]:
    return {
        "event_id": f"e{i}-{uuid.uuid4().hex[:6]}",
        "event_type": "view",
        "event_time_ms": int(time.time() * 1000),
        "user_id": f"u{i % 7}",
        "session_id": f"{session}-{i % 5}",
        "item_id": f"i{i % 13}",
        "category": "books",
        "price": 9.5 + i % 3,
    }


def produce(s: Settings, topic: str, n: int) -> None:
    """Produce ``n`` valid events and wait until the broker has them."""
    from workbench.streams.events import encode
    from workbench.streams.kafka import producer

    p = producer(s)
    for i in range(n):
        ev = make_event(i)
        p.produce(topic, key=str(ev["session_id"]).encode(), value=encode(ev))
    assert p.flush(30) == 0


@pytest.fixture
def event_stream(broker: Settings) -> Iterator[Callable[[str, float], None]]:
    """Start a background producer into a topic at a given rate; stopped after the test."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(topic: str, rate_per_s: float = 20.0) -> None:
        def run() -> None:
            from workbench.streams.events import encode
            from workbench.streams.kafka import producer

            p = producer(broker)
            i = 0
            while not stop.wait(1.0 / rate_per_s):
                ev = make_event(i)
                p.produce(topic, key=str(ev["session_id"]).encode(), value=encode(ev))
                p.poll(0)
                i += 1
            p.flush(10)

        t = threading.Thread(target=run, name=f"producer:{topic}", daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(15)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, kernel_prefix: Path, broker: Settings) -> Iterator[Lab]:
    """JupyterLab on its own port and token, in a temp root dir, with the Workbench kernel.

    Module-scoped: a start takes seconds, and the tests of a module only read from it.
    """
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    env = isolated_env(tmp / "jupyter", jupyter_path=kernel_prefix / "share" / "jupyter")
    with running_lab(root, env, tmp / "jupyterlab.log") as server:
        yield server
