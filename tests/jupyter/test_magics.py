"""The magics through a real kernel (the installed "workbench" kernelspec) on the real broker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jupyter.fixtures import produce
from workbench.config import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]


class Kernel:
    """A started kernel and a helper that runs code and collects its outputs."""

    def __init__(self, km: Any, kc: Any) -> None:
        self.km, self.kc = km, kc

    def run(self, code: str, timeout_s: float = 60) -> tuple[str, list[dict[str, Any]]]:
        outputs: list[dict[str, Any]] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"type": msg["msg_type"], **msg["content"]})

        reply = self.kc.execute_interactive(code, timeout=timeout_s, output_hook=hook)
        return reply["content"]["status"], outputs

    def value(self, expr: str) -> str:
        status, outputs = self.run(expr)
        assert status == "ok", "\n".join(_plain(o) for o in outputs)
        results = [o["data"]["text/plain"] for o in outputs if o["type"] == "execute_result"]
        assert results, outputs
        return str(results[-1])


def _plain(output: dict[str, Any]) -> str:
    import re

    text = "\n".join(output.get("traceback", [])) or output.get("text", "") or str(output.get("data", ""))
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # tracebacks arrive with ANSI colours


def _start(name: str, env: dict[str, str]) -> Kernel:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    # KernelSpecManager reads JUPYTER_PATH when built; the kernel gets env at launch.
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    try:
        km = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
        km.start_kernel(env=env)
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return Kernel(km, kc)


def _stop(k: Kernel) -> None:
    k.kc.stop_channels()
    k.km.shutdown_kernel(now=False)


@pytest.fixture
def kernel_env(kernel_prefix: Path, broker: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(kernel_prefix / "share" / "jupyter")
    return env


@pytest.fixture
def workbench_kernel(kernel_env: dict[str, str]) -> Iterator[Kernel]:
    k = _start("workbench", kernel_env)
    assert k.km.kernel_spec.resource_dir.startswith(kernel_env["JUPYTER_PATH"])
    yield k
    _stop(k)


def test_tap_magic_binds_a_live_tap(
    workbench_kernel: Kernel, new_topic: Callable[..., str], broker: Settings
) -> None:
    topic = new_topic("magic")
    produce(broker, topic, 25)
    status, outputs = workbench_kernel.run(f"%tap {topic} --since earliest")
    assert status == "ok", outputs
    # The live view is displayed (an ipywidgets model in a kernel with a comm manager).
    assert any(o["type"] == "display_data" for o in outputs), outputs
    assert workbench_kernel.value("_tap.wait(25, timeout=30)") == "True"
    assert workbench_kernel.value("len(_tap.df())") == "25"
    assert workbench_kernel.value("sorted(set(_tap.df()['event_type']))") == "['view']"
    workbench_kernel.run("_tap.stop()")


def test_tap_magic_name_and_rebinding_stops_the_old_tap(
    workbench_kernel: Kernel, new_topic: Callable[..., str], broker: Settings
) -> None:
    topic = new_topic("magic")
    produce(broker, topic, 5)
    assert workbench_kernel.run(f"%tap {topic} --since earliest --name clicks --quiet") == ("ok", [])
    assert workbench_kernel.value("clicks.wait(5, timeout=30), len(clicks.df())") == "(True, 5)"
    assert workbench_kernel.run("first = clicks")[0] == "ok"
    assert workbench_kernel.run(f"%tap {topic} --since earliest --name clicks --quiet")[0] == "ok"
    assert workbench_kernel.value("first.running, clicks.running, first is clicks") == "(False, True, False)"
    workbench_kernel.run("clicks.stop()")


def test_tap_magic_errors_are_one_line(workbench_kernel: Kernel) -> None:
    status, outputs = workbench_kernel.run("%tap no.such.topic.for.workbench --since earliest")
    assert status == "error"
    text = "".join(o.get("text", "") for o in outputs)
    assert text.startswith("UsageError: %tap: topic 'no.such.topic.for.workbench' does not exist")
    assert text.count("\n") == 1  # one line, no traceback
    status, outputs = workbench_kernel.run("%tap events --name 2x")
    assert status == "error"
    assert "is not a Python identifier" in "".join(o.get("text", "") for o in outputs)


def test_load_ext_in_a_plain_kernel(
    kernel_env: dict[str, str], new_topic: Callable[..., str], broker: Settings
) -> None:
    topic = new_topic("plain")
    produce(broker, topic, 3)
    k = _start("python3", kernel_env)
    try:
        assert "%tap" not in k.value("%lsmagic")
        assert k.run("%load_ext workbench.jupyter")[0] == "ok"
        assert "%tap" in k.value("%lsmagic")
        assert k.run(f"%tap {topic} --since earliest --quiet")[0] == "ok"
        assert k.value("_tap.wait(3, timeout=30), len(_tap.df())") == "(True, 3)"
        k.run("_tap.stop()")
    finally:
        _stop(k)
