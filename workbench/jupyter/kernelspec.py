"""The "Workbench (Python 3)" kernelspec: an IPython kernel with the Workbench magics loaded.

``kernels/workbench/`` in the repository holds the generated spec (the wheel
ships it as ``share/jupyter/kernels/workbench``); a snapshot test keeps it equal
to :func:`kernel_json`. ``workbench kernel install`` writes the same spec with
the absolute interpreter path, so Jupyter installations outside this
environment start the right Python.

>>> kernel_json("python")["argv"][:3]
['python', '-m', 'ipykernel_launcher']
>>> kernel_json("python")["display_name"]
'Workbench (Python 3)'
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

KERNEL_NAME = "workbench"
DISPLAY_NAME = "Workbench (Python 3)"
EXTENSION = "workbench.jupyter"

# A 64x64 mark for the launcher; JupyterLab prefers logo-svg.svg when present.
LOGO_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <rect width="64" height="64" rx="12" fill="#1f4e79"/>
  <path d="M8 44h9l7-19 9 29 8-21 4 11h11v5H51l-2-5-7 19-9-29-5 14H8z" fill="#fff"/>
</svg>
"""


def kernel_json(executable: str = "python") -> dict[str, Any]:
    """The kernel.json content; ``"python"`` is resolved by jupyter_client to its own interpreter."""
    return {
        "argv": [executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", f"--ext={EXTENSION}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }


def write_spec(directory: Path, executable: str = "python") -> Path:
    """Write kernel.json and the logo into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernel.json").write_text(json.dumps(kernel_json(executable), indent=1) + "\n")
    (directory / "logo-svg.svg").write_text(LOGO_SVG)
    return directory


def destination(user: bool = False, prefix: str | None = None) -> Path:
    """Where install/uninstall act: the user data dir, ``<prefix>/share/jupyter`` or the system dir.

    The same rule as jupyter_client's ``install_kernel_spec``, so uninstall removes
    exactly what install wrote and never a spec found elsewhere on the search path.
    """
    from jupyter_core.paths import SYSTEM_JUPYTER_PATH, jupyter_data_dir

    if user:
        return Path(jupyter_data_dir()) / "kernels" / KERNEL_NAME
    if prefix:
        return Path(prefix).absolute() / "share" / "jupyter" / "kernels" / KERNEL_NAME
    return Path(SYSTEM_JUPYTER_PATH[0]) / "kernels" / KERNEL_NAME


def install(user: bool = False, prefix: str | None = None, executable: str | None = None) -> Path:
    """Install the kernelspec (``user``: the user data dir; ``prefix``: <prefix>/share/jupyter)."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        src = write_spec(Path(tmp) / KERNEL_NAME, executable or sys.executable)
        dest = KernelSpecManager().install_kernel_spec(str(src), KERNEL_NAME, user=user, prefix=prefix)
    return Path(dest)


def uninstall(user: bool = False, prefix: str | None = None) -> Path | None:
    """Remove the spec at :func:`destination`; its path, or None when nothing was there."""
    path = destination(user, prefix)
    if not (path / "kernel.json").is_file():
        return None
    shutil.rmtree(path)
    return path
