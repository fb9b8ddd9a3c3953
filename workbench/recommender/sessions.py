"""Session sequences from an events frame: the items a visitor interacted with, in order.

>>> import pandas as pd
>>> ev = pd.DataFrame({"session_id": ["s", "s", "s", "t"], "item_id": ["a", "a", "b", "c"],
...                    "event_type": ["view", "add_to_cart", "view", "view"], "event_time_ms": [1, 2, 3, 1]})
>>> [list(s) for s in to_sessions(ev).items]
[['a', 'b'], ['c']]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# what a visitor chose; impressions are what we showed, not what they did
INTERACTIONS = ("view", "add_to_cart", "purchase", "click")


@dataclass
class Sessions:
    ids: list[str]
    items: list[np.ndarray]  # item ids (strings), consecutive repeats collapsed
    start_ms: np.ndarray
    end_ms: np.ndarray
    times: list[np.ndarray] = field(default_factory=list)  # event times (ms) of ``items``, per session

    def __len__(self) -> int:
        return len(self.ids)


def to_sessions(events: pd.DataFrame, min_length: int = 1) -> Sessions:
    """Group interactions by session in event-time (then offset) order; collapse repeats."""
    import numpy as np

    ev = events[events["event_type"].isin(INTERACTIONS)] if "event_type" in events else events
    order = ["session_id", "event_time_ms"] + (["offset"] if "offset" in ev.columns else [])
    ev = ev.sort_values(order, kind="stable")
    sid = ev["session_id"].to_numpy()
    items = ev["item_id"].astype(str).to_numpy()
    t = ev["event_time_ms"].to_numpy(dtype="int64")
    if len(ev) == 0:
        return Sessions([], [], np.zeros(0, "int64"), np.zeros(0, "int64"))
    new_session = np.r_[True, sid[1:] != sid[:-1]]
    repeat = np.r_[False, (items[1:] == items[:-1]) & ~new_session[1:]]
    keep = ~repeat
    sid, items, t, new_session = sid[keep], items[keep], t[keep], new_session[keep]
    starts = np.flatnonzero(new_session)
    bounds = np.r_[starts, len(sid)]
    out = Sessions([], [], np.zeros(len(starts), "int64"), np.zeros(len(starts), "int64"))
    for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        out.ids.append(str(sid[a]))
        out.items.append(items[a:b])
        out.times.append(t[a:b])
        out.start_ms[j], out.end_ms[j] = t[a], t[b - 1]
    if min_length > 1:
        mask = np.array([len(s) >= min_length for s in out.items], dtype=bool)
        out = Sessions([i for i, m in zip(out.ids, mask, strict=True) if m],
                       [s for s, m in zip(out.items, mask, strict=True) if m], out.start_ms[mask], out.end_ms[mask],
                       [s for s, m in zip(out.times, mask, strict=True) if m])
    return out


def time_split(sessions: Sessions, test_fraction: float = 0.2) -> tuple[Sessions, Sessions]:
    """Train on sessions that ended before the cut, test on those that started after it."""
    import numpy as np

    cut = float(np.quantile(sessions.start_ms, 1 - test_fraction))
    train = sessions.end_ms < cut
    test = sessions.start_ms >= cut

    def pick(mask: np.ndarray) -> Sessions:
        idx = np.flatnonzero(mask)
        return Sessions([sessions.ids[i] for i in idx], [sessions.items[i] for i in idx],
                        sessions.start_ms[idx], sessions.end_ms[idx],
                        [sessions.times[i] for i in idx] if sessions.times else [])

    return pick(train), pick(test)
