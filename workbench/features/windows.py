"""Window kinds of a feature, and the exact semantics both paths implement.

Every window groups the records of one entity key by **event time**
(``event_time_ms`` from the payload). The semantics of quixstreams 3.28's
``.current()`` windows are the specification: the stream path implements them
(session windows on quixstreams itself; tumbling, hopping and sliding as one
keyed state step per record, :mod:`workbench.features.sliding`) and the
backfill reproduces them record by record. Per record, the output is the list of windows that record updated,
each with the aggregate over the key's records that had reached that window
*at or before it in processing order* (offset order). Notation below: ``t`` is
the record's event time, ``L`` the greatest event time among the key's
*earlier* records (0 before the first), ``g`` the grace period. Lateness is
judged **per key** (quixstreams' default ``closing_strategy="key"``), never
per partition. A record that updates no window is *late*: the stream drops
it (and sends it to the DLQ with reason ``late``), the backfill marks it.

Tumbling(size_ms=d): one window ``[t - t % d, that + d)``. It is closed, so
the record is late, when ``end <= L - g``. Note that lateness is decided by the
window's *end*, not by ``t < L - g``: with d=10, g=0, records at 25 then 21
put 21 into the still-open window [20, 30).

>>> Tumbling(size_ms=10).windows_of(25)
[(20, 30)]

Hopping(size_ms=d, step_ms=s): every ``[k*s, k*s + d)`` with ``k*s <= t <
k*s + d`` and ``k*s >= 0``, in ascending start order; each one separately is
closed when ``end <= L - g``. A record can therefore update *some* of its
windows (it is late only when all are closed). d=10, s=5, g=0: records at 22
then 16 -> 16 falls in [10, 20) and [15, 25); [10, 20) is closed by 22, so
only [15, 25) is emitted.

>>> Hopping(size_ms=10, step_ms=5).windows_of(16)
[(10, 20), (15, 25)]

Sliding(size_ms=d): the window of a record is ``[t - d, t]`` (both ends
inclusive). The record is late when ``t < L - g``. An on-time record emits,
in ascending start order, its own window ``[t - d, t]`` and the window
``[u - d, u]`` of every distinct earlier event time ``u`` with
``t < u <= t + d``, because an out-of-order record belongs to those later
windows too. Each value aggregates the on-time records so far inside the
window. d=10, g=5: records at 100, 105, 103 -> the third emits [93, 103]
(count 2) and [95, 105] (count 3); a fourth at 99 is late (99 < 105 - 5).
This is a keyed stateful step on quixstreams state, not
``sdf.sliding_window()``, which loses records under out-of-order input in
3.28 (see ``workbench.features.stream.sliding_step``).

Session(gap_ms=G): records at most ``G`` ms apart (``|t1 - t2| <= G``) chain
into one session; a record between two sessions merges them. The emitted
window is ``[first, last + 1)`` of the session after the record joined it.
The record is late when ``t < L - G - g`` (one gap more lenient than the
other kinds, as quixstreams does); a session closes once its ``end <= L - 2G
- g``, and an on-time record can never reach a closed session. G=10, g=10:
records at 100, 118, 109 -> the third merges both sessions into [100, 119)
with count 3; then 97 is late (97 < 118 - 10 - 10) while 98 joins: [98, 119),
count 4.

>>> Session(gap_ms=10).spec()
{'kind': 'session', 'gap_ms': 10, 'grace_ms': 0}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Window:
    """Base of the window kinds; ``grace_ms`` is the allowed lateness."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{type(self).__name__}.{name} must be an int (milliseconds)")
            if value < 0:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 0")

    def spec(self) -> dict[str, Any]:
        """Canonical JSON form (part of the feature hash)."""
        return {"kind": self.kind, **asdict(self)}

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> Window:
        spec = dict(spec)
        cls = _KINDS[spec.pop("kind")]
        return cls(**spec)


@dataclass(frozen=True, kw_only=True)
class Tumbling(Window):
    """Fixed, non-overlapping windows of ``size_ms``."""

    kind: ClassVar[str] = "tumbling"
    size_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size_ms <= 0:
            raise ValueError("Tumbling.size_ms must be > 0")

    def windows_of(self, t: int) -> list[tuple[int, int]]:
        """The ``[start, end)`` windows an event at ``t`` falls in."""
        start = t - t % self.size_ms
        return [(start, start + self.size_ms)]


@dataclass(frozen=True, kw_only=True)
class Hopping(Window):
    """Overlapping windows of ``size_ms`` starting every ``step_ms``."""

    kind: ClassVar[str] = "hopping"
    size_ms: int
    step_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.step_ms <= self.size_ms:
            raise ValueError("Hopping needs 0 < step_ms <= size_ms")

    def windows_of(self, t: int) -> list[tuple[int, int]]:
        """The ``[start, end)`` windows an event at ``t`` falls in, ascending."""
        out = []
        start = t - t % self.step_ms
        while start > t - self.size_ms and start >= 0:
            out.append((start, start + self.size_ms))
            start -= self.step_ms
        return out[::-1]


@dataclass(frozen=True, kw_only=True)
class Sliding(Window):
    """The window ``[t - size_ms, t]`` that ends at each record."""

    kind: ClassVar[str] = "sliding"
    size_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size_ms <= 0:
            raise ValueError("Sliding.size_ms must be > 0")


@dataclass(frozen=True, kw_only=True)
class Session(Window):
    """Activity sessions separated by more than ``gap_ms`` of inactivity."""

    kind: ClassVar[str] = "session"
    gap_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gap_ms <= 0:
            raise ValueError("Session.gap_ms must be > 0")


_KINDS: dict[str, type[Window]] = {c.kind: c for c in (Tumbling, Hopping, Sliding, Session)}
