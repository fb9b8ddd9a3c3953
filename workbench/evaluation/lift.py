"""Lift of a candidate over a baseline from paired per-example losses.

The differences ``d_i = loss_baseline_i - loss_candidate_i`` are positive where
the candidate did better. Consecutive examples are correlated (same session,
same drift regime), so the interval comes from a moving-block bootstrap, which
resamples contiguous blocks and keeps that time order inside each block.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> d = 0.05 + rng.normal(0, 0.2, size=5_000)
>>> lift = paired_lift(d, baseline_loss=np.full(5_000, 0.5), seed=1)
>>> lift.verdict
'better'
>>> paired_lift(rng.normal(0, 0.2, size=5_000), baseline_loss=np.full(5_000, 0.5), seed=1).verdict
'no evidence'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

Verdict = Literal["better", "worse", "no evidence"]


@dataclass(frozen=True)
class Lift:
    """Mean loss reduction with its interval, and the same as a fraction of the baseline loss."""

    n: int
    mean_diff: float
    low: float
    high: float
    relative: float
    relative_low: float
    relative_high: float
    confidence: float
    block: int
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_size(n: int) -> int:
    """A common rule of thumb for the moving-block bootstrap: about n^(1/3)."""
    return max(1, int(round(n ** (1 / 3))))


def block_bootstrap_means(
    d: np.ndarray, block: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``n_boot`` moving-block resamples of ``d`` (vectorised with a cumulative sum)."""
    import numpy as np

    n = len(d)
    n_blocks = -(-n // block)
    csum = np.concatenate([[0.0], np.cumsum(d)])
    block_sums = csum[block:] - csum[:-block]  # the sum of every block, by its start: one gather below
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    sums = block_sums[starts].sum(axis=1)
    return np.asarray(sums / (n_blocks * block))


def paired_lift(
    diffs: ArrayLike,
    baseline_loss: ArrayLike,
    confidence: float = 0.95,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int = 0,
) -> Lift:
    """Lift with a block-bootstrap interval; the verdict needs the whole interval on one side of 0."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    base = float(np.mean(np.asarray(baseline_loss, dtype=float))) if len(d) else float("nan")
    n = len(d)
    if n < 2:
        nan = float("nan")
        return Lift(n, nan, nan, nan, nan, nan, nan, confidence, 0, "no evidence")
    b = min(block or block_size(n), n)
    means = block_bootstrap_means(d, b, n_boot, np.random.default_rng(seed))
    alpha = 1 - confidence
    low, high = (float(v) for v in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    mean = float(d.mean())
    verdict: Verdict = "better" if low > 0 else "worse" if high < 0 else "no evidence"
    scale = base if base > 0 else float("nan")
    return Lift(n, mean, low, high, mean / scale, low / scale, high / scale, confidence, b, verdict)
