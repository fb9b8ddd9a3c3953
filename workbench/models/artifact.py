"""A model version's artifact: a Python object (cloudpickled) or a file or directory (copied as is).

Only a :class:`pathlib.Path` is taken as a file or directory; anything else,
including a ``str``, is pickled. Each artifact records its format and a SHA-256
digest, checked again when it is loaded.

>>> import tempfile
>>> work = Path(tempfile.mkdtemp())
>>> info = pack({"w": [1.0, 2.0]}, work / "out")
>>> info["format"], info["python_type"]
('cloudpickle', 'builtins.dict')
>>> unpack(work / "out", info)
{'w': [1.0, 2.0]}
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from workbench.models.errors import ModelStoreError

PICKLE_FILE = "model.pkl"


def pack(artifact: Any, out: Path) -> dict[str, Any]:
    """Write ``artifact`` into the empty folder ``out`` (what gets logged) and describe it."""
    out.mkdir(parents=True, exist_ok=False)
    if isinstance(artifact, Path):
        if artifact.is_dir():
            if not any(p.is_file() for p in artifact.rglob("*")):
                raise ModelStoreError(f"artifact directory {artifact} has no files")
            shutil.copytree(artifact, out, dirs_exist_ok=True)
            return {"format": "directory", "sha256": tree_digest(out), "bytes": _size(out),
                    "files": sum(1 for p in out.rglob("*") if p.is_file())}
        if artifact.is_file():
            shutil.copy2(artifact, out / artifact.name)
            return {"format": "file", "file": artifact.name, "sha256": _digest(artifact.read_bytes()),
                    "bytes": artifact.stat().st_size}
        raise ModelStoreError(f"artifact path {artifact} does not exist")
    import cloudpickle

    try:
        data = cloudpickle.dumps(artifact)
    except Exception as exc:  # pickling errors come in many types
        raise ModelStoreError(f"cannot pickle the artifact ({type(artifact).__name__}): {exc}") from None
    (out / PICKLE_FILE).write_bytes(data)
    kind = type(artifact)
    return {"format": "cloudpickle", "python_type": f"{kind.__module__}.{kind.__qualname__}",
            "sha256": _digest(data), "bytes": len(data)}


def unpack(folder: Path, info: dict[str, Any]) -> Any:
    """The artifact in a downloaded ``folder``: the object, or the Path of the file or directory.

    Unpickling runs code from the store: load only from a store you trust.
    """
    fmt = info.get("format")
    if fmt == "cloudpickle":
        import cloudpickle

        data = (folder / PICKLE_FILE).read_bytes()
        _check(_digest(data), info)
        return cloudpickle.loads(data)
    if fmt == "file":
        path = folder / str(info["file"])
        _check(_digest(path.read_bytes()), info)
        return path
    if fmt == "directory":
        _check(tree_digest(folder), info)
        return folder
    raise ModelStoreError(f"unknown artifact format {fmt!r}")


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _check(digest: str, info: dict[str, Any]) -> None:
    if info.get("sha256") and digest != info["sha256"]:
        raise ModelStoreError(f"artifact digest {digest[:12]} != recorded {str(info['sha256'])[:12]}: "
                              "the stored artifact changed")
