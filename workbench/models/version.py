"""One model version and its lineage document; references like ``ranker/3`` or ``ranker@champion``.

A version's lineage is a small JSON document (kept as a registry tag and as the
run artifact ``lineage.json``): kind, parent, data range, feature definition
hashes, metrics, dependencies and the artifact's format and digest.

>>> v = ModelVersion("ranker", 3, "ranking", parent="ranker/2", depends_on={"embedding": 2})
>>> v.ref
'ranker/3'
>>> ModelVersion.from_document("ranker", 3, v.document()) == v
True
>>> parse_ref("ranker/3"), parse_ref("ranker@champion"), parse_ref("ranker")
(('ranker', 3), ('ranker', 'champion'), ('ranker', 'latest'))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.models.errors import ModelStoreError

SCHEMA = 1
LATEST = "latest"
# No "/" or "@": they separate a name from its version or alias in a reference.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)  # MLflow reserves these

Selector = int | str  # a version number, "latest" or an alias


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version as Workbench records it. ``stale`` is computed when read:
    some ``depends_on`` entry points at an older version than the newest of that model."""

    name: str
    version: int
    kind: str
    parent: str | None = None
    data_range: dict[str, Any] | None = None
    feature_hashes: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    depends_on: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0
    run_id: str = ""
    stale: bool = False
    # the newer dependency versions that make it stale, e.g. ("embedding/3",)
    stale_because: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    artifact: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __hash__(self) -> int:  # the dict fields are not hashable; a version is its identity
        return hash((self.name, self.version, self.run_id))

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def document(self) -> dict[str, Any]:
        """The lineage document: everything recorded at registration (not the read-time flags)."""
        return {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "parent": self.parent,
            "data_range": self.data_range,
            "feature_hashes": list(self.feature_hashes),
            "metrics": self.metrics,
            "depends_on": dict(self.depends_on),
            "artifact": self.artifact,
            "description": self.description,
        }

    @classmethod
    def from_document(cls, name: str, version: int, doc: Mapping[str, Any], **read: Any) -> ModelVersion:
        """Rebuild from a lineage document; ``read`` sets created_at, run_id, aliases, stale flags."""
        mv = cls(
            name=name,
            version=int(version),
            kind=str(doc.get("kind", "other")),
            parent=doc.get("parent"),
            data_range=doc.get("data_range"),
            feature_hashes=tuple(doc.get("feature_hashes", ())),
            metrics=dict(doc.get("metrics") or {}),
            depends_on={str(k): int(v) for k, v in (doc.get("depends_on") or {}).items()},
            artifact=dict(doc.get("artifact") or {}),
            description=str(doc.get("description", "")),
        )
        return replace(mv, **read) if read else mv


def check_name(name: str) -> str:
    """A model name: a letter, then letters, digits, ``_``, ``.`` or ``-``.

    >>> check_name("ranker")
    'ranker'
    >>> check_name("ranker/2")
    Traceback (most recent call last):
    ...
    workbench.models.errors.ModelStoreError: bad model name 'ranker/2': use a letter, then letters, digits, _ . -
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelStoreError(f"bad model name {name!r}: use a letter, then letters, digits, _ . -")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
        raise ModelStoreError(f"bad alias {alias!r}: use a letter, then letters, digits, _ -; "
                              "not 'latest' or 'v<N>'")
    return alias


def selector(version: Selector) -> Selector:
    """Normalise a version argument: an int, digits, ``"latest"`` or an alias."""
    if isinstance(version, bool):
        raise ModelStoreError(f"bad version {version!r}")
    if isinstance(version, int):
        if version < 1:
            raise ModelStoreError(f"bad version {version}: versions start at 1")
        return version
    if isinstance(version, str) and version.isdigit():
        return selector(int(version))
    if version == LATEST:
        return LATEST
    return check_alias(version)


def parse_ref(ref: str) -> tuple[str, Selector]:
    """``NAME``, ``NAME/VERSION``, ``NAME/latest`` or ``NAME@ALIAS`` -> (name, selector)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return check_name(name), check_alias(alias)
    name, _, version = ref.partition("/")
    if version and not (version.isdigit() or version == LATEST):
        raise ModelStoreError(f"bad model reference {ref!r}: use NAME, NAME/VERSION or NAME@ALIAS")
    return check_name(name), selector(version or LATEST)


def check_json(value: Any, what: str) -> Any:
    """Round-trip through JSON so what is stored is exactly what is read back."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise ModelStoreError(f"{what} must be JSON-serializable: {exc}") from None


def check_data_range(data_range: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The shape of :func:`workbench.evaluation.evaluate.data_range`, checked where it matters.

    >>> check_data_range({"topic": "events", "partitions": {"0": [0, 9]}, "event_time_ms": [1, 2]})
    {'topic': 'events', 'partitions': {'0': [0, 9]}, 'event_time_ms': [1, 2]}
    >>> check_data_range({"topic": "events", "partitions": {"0": [9, 0]}})
    Traceback (most recent call last):
    ...
    workbench.models.errors.ModelStoreError: data range partition '0': want [first, last] offsets with first <= last, got [9, 0]
    """
    if data_range is None:
        return None
    if not isinstance(data_range, Mapping):
        raise ModelStoreError(f"data range must be a mapping like evaluate.data_range(), got {type(data_range).__name__}")
    out: dict[str, Any] = check_json(dict(data_range), "data range")
    for p, pair in (out.get("partitions") or {}).items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(o, int) for o in pair)
                and pair[0] <= pair[1]):
            raise ModelStoreError(f"data range partition {p!r}: want [first, last] offsets with "
                                  f"first <= last, got {pair}")
    bounds = out.get("event_time_ms")
    if bounds is not None and not (isinstance(bounds, list) and len(bounds) == 2 and bounds[0] <= bounds[1]):
        raise ModelStoreError(f"data range event_time_ms: want [min, max], got {bounds}")
    return out


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics, flattened with ``.`` (what MLflow's run metrics hold).

    >>> numeric_metrics({"auc": 0.7, "arms": {"candidate": {"logloss": 0.4}}, "verdict": "better"})
    {'auc': 0.7, 'arms.candidate.logloss': 0.4}
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and not math.isinf(value):
            out[name] = float(value)
    return out
