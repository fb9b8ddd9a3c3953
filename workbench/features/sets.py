"""Named feature sets in the registry, so ``workbench promote NAME`` can find what a notebook evaluated.

Every evaluation, skew check or job of a set stores it: its name, its
definition hashes, and where it came from (the notebook, or the script)::

    <home>/definitions/sets/<name>/<set hash>.json

>>> import tempfile
>>> from pathlib import Path
>>> from workbench.features import aggregations as agg, windows as win
>>> from workbench.features.definition import SESSION, Feature, FeatureSet
>>> fs = FeatureSet("shop", [Feature("n", SESSION, win.Session(gap_ms=1_800_000), agg.Count())])
>>> root = Path(tempfile.mkdtemp())
>>> save_set(fs, root=root)["feature_hashes"] == [fs.features[0].hash]
True
>>> load_set("shop", root=root).hash == fs.hash
True
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet


def _root(root: Path | None) -> Path:
    from workbench.features.definition import registry_dir

    return root or registry_dir()


def origin() -> str:
    """The notebook (Jupyter tells its kernels) or the script this process runs."""
    notebook = os.environ.get("JPY_SESSION_NAME")
    if notebook:
        return notebook
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return str(Path(path).resolve()) if path else "python"


def save_set(feature_set: FeatureSet, root: Path | None = None) -> dict[str, Any]:
    """Store the set (and its definitions under their hashes); returns the stored entry."""
    from workbench.features.definition import save

    base = _root(root)
    save(feature_set.features, base)
    folder = base / "sets" / feature_set.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{feature_set.hash}.json"
    entry: dict[str, Any] = {
        "name": feature_set.name,
        "hash": feature_set.hash,
        "feature_hashes": [f.hash for f in feature_set.features],
        "origin": origin(),
        "saved_at": time.time(),
    }
    if path.exists():  # keep the first origin; refresh the time, which orders candidates
        entry["origin"] = json.loads(path.read_text()).get("origin", entry["origin"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, indent=2, sort_keys=True))
    tmp.replace(path)
    return entry


def set_entries(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Every stored version of the set ``name``, newest first."""
    folder = _root(root) / "sets" / name
    entries = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(entries, key=lambda e: e["saved_at"], reverse=True)


def set_names(root: Path | None = None) -> list[str]:
    folder = _root(root) / "sets"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def build_set(entry: dict[str, Any], root: Path | None = None) -> FeatureSet:
    from workbench.features.definition import FeatureSet, load

    return FeatureSet(entry["name"], [load(h, _root(root)) for h in entry["feature_hashes"]])


def load_set(name: str, set_hash: str | None = None, root: Path | None = None) -> FeatureSet:
    """The set ``name``: the version with ``set_hash``, else the newest one stored."""
    entries = set_entries(name, root)
    if set_hash is not None:
        entries = [e for e in entries if e["hash"] == set_hash]
    if not entries:
        known = ", ".join(set_names(root)) or "none yet"
        raise LookupError(f"no feature set {name!r}{' ' + set_hash if set_hash else ''} in the registry "
                          f"(known: {known}); evaluate or skew-check it first")
    return build_set(entries[0], root)
