"""Every tutorial runs top to bottom against the real broker, with the simulator streaming."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.config import Settings

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
BUDGET_S = 120


@pytest.fixture(scope="module")
def simulator(broker: Settings) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "stream", "simulate", "--rate", "50", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(2)
    yield
    proc.terminate()
    proc.wait(timeout=30)


def test_tutorials_exist() -> None:
    assert [p.name for p in TUTORIALS][:1] == ["01_tap_a_stream.ipynb"]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path: Path, simulator: None) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    NotebookClient(nb, timeout=BUDGET_S, kernel_name=kernel, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
