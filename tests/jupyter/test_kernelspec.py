"""The kernelspec: the committed snapshot, the CLI install, uninstall."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.jupyter.kernelspec import LOGO_SVG, kernel_json

SNAPSHOT = Path(__file__).resolve().parents[2] / "kernels" / "workbench"


def test_kernel_json_snapshot() -> None:
    # kernels/workbench is what the wheel ships; regenerate it with
    # `python -c "from pathlib import Path; from workbench.jupyter.kernelspec import write_spec; write_spec(Path('kernels/workbench'))"`
    assert json.loads((SNAPSHOT / "kernel.json").read_text()) == kernel_json("python")
    assert (SNAPSHOT / "logo-svg.svg").read_text() == LOGO_SVG


def test_kernel_json_pins_the_contract() -> None:
    spec = kernel_json("python")
    assert spec == {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext=workbench.jupyter"],
        "display_name": "Workbench (Python 3)",
        "language": "python",
        "metadata": {"debugger": True},
    }


def test_cli_install_writes_spec_for_this_interpreter(kernel_prefix: Path) -> None:
    installed = kernel_prefix / "share" / "jupyter" / "kernels" / "workbench"
    assert json.loads((installed / "kernel.json").read_text()) == kernel_json(sys.executable)
    assert (installed / "logo-svg.svg").is_file()


def test_cli_install_rejects_two_targets(tmp_path: Path) -> None:
    import subprocess

    cmd = [sys.executable, "-m", "workbench.cli", "kernel", "install", "--user", "--prefix", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: choose one of --user, --sys-prefix and --prefix"


def test_cli_uninstall_removes_only_its_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["kernel", "install", "--user"]).exit_code == 0
    assert runner.invoke(app, ["kernel", "install", "--prefix", str(tmp_path / "env")]).exit_code == 0
    result = runner.invoke(app, ["kernel", "uninstall", "--user"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data" / "kernels" / "workbench").exists()
    assert (tmp_path / "env" / "share" / "jupyter" / "kernels" / "workbench" / "kernel.json").is_file()
    again = runner.invoke(app, ["kernel", "uninstall", "--user"])
    assert again.exit_code != 0
    assert "no 'workbench' kernelspec at" in str(again.exception)
