"""The promotion gate: evidence that these exact definitions are better and skew-free.

Two records must exist for the set's exact definition hashes: an evaluation
whose verdict is "better" (:func:`workbench.evaluation.records.find_passing`)
and a skew check with zero mismatches (:func:`workbench.features.review.latest_skew`).
``--force`` overrides a closed gate; the override is recorded with the promotion.

>>> Gate(ok=False, reasons=["no evaluation with verdict 'better' for these definitions"]).line()
"gate closed: no evaluation with verdict 'better' for these definitions"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet


@dataclass
class Gate:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    evaluation_id: str | None = None
    skew_id: str | None = None
    lift: dict[str, Any] | None = None
    forced: bool = False

    def line(self) -> str:
        if self.ok:
            lift = ""
            if self.lift and self.lift.get("relative") is not None:
                lift = (f", lift {self.lift['relative']:+.1%} "
                        f"[{self.lift['relative_low']:+.1%}, {self.lift['relative_high']:+.1%}]")
            return f"gate open: evaluation {self.evaluation_id} says better{lift}; skew check {self.skew_id}: 0 mismatches"
        return "gate closed: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": self.reasons, "evaluation_id": self.evaluation_id,
                "skew_id": self.skew_id, "lift": self.lift, "forced": self.forced}


def check_gate(feature_set: FeatureSet) -> Gate:
    """Read the evaluation and skew records for exactly the set's definition hashes."""
    from workbench.evaluation.records import find_passing
    from workbench.features.review import latest_skew

    hashes = sorted(f.hash for f in feature_set.features)
    reasons: list[str] = []
    evaluation = find_passing(hashes)
    if evaluation is None:
        reasons.append(f"no evaluation with verdict 'better' for these {len(hashes)} definitions "
                       f"({', '.join(hashes)}); run wb.evaluate(..., candidate=<the set's features>)")
    skew = latest_skew(hashes)
    if skew is None:
        reasons.append("no skew check for these definitions; run feature_set.check_skew(history)")
    elif skew.mismatch_count:
        reasons.append(f"skew check {skew.id} found {skew.mismatch_count} mismatches")
    return Gate(
        ok=not reasons,
        reasons=reasons,
        evaluation_id=evaluation.id if evaluation else None,
        skew_id=skew.id if skew else None,
        lift=evaluation.lift if evaluation else None,
    )
