"""The main job: broker, simulator and JupyterLab start together and stop together."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import psutil
import pytest

from workbench.config import Settings
from workbench.stack import lab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.broker
@pytest.mark.slow
def test_main_job_serves_tutorials_with_a_token_and_stops_its_children(broker: Settings) -> None:
    s = broker.model_copy(update={"jupyter_port": _free_port()})
    started, children = lab.start(rate=20, s=s)
    try:
        assert started.lab_url.endswith(lab.FIRST_TUTORIAL + "?token=" + started.lab_url.split("token=")[1])
        token = started.lab_url.split("token=")[1]
        base = f"http://127.0.0.1:{s.jupyter_port}"
        with urllib.request.urlopen(f"{base}/api/contents/{lab.FIRST_TUTORIAL}?token={token}", timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/contents/{lab.FIRST_TUTORIAL}", timeout=10)
        assert refused.value.code in (401, 403)
        assert psutil.pid_exists(started.simulator_pid)
    finally:
        lab.stop(children)
    for child in children:
        assert child.poll() is not None


@pytest.mark.broker
def test_a_failed_start_leaves_no_process_behind(broker: Settings) -> None:
    from workbench.errors import WorkbenchError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = broker.model_copy(update={"jupyter_port": taken.getsockname()[1]})
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        with pytest.raises(WorkbenchError, match="JupyterLab"):
            lab.start(rate=5, s=s)
    alive = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
             and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], "the simulator must not outlive a failed start"
