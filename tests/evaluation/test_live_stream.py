"""The live phase's as-of lookup over stream updates, against a brute-force reading of its rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.evaluation.live_stream import UpdateHistory

# one key's updates in processing order: (source partition, event time), offsets grow per partition
updates = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 50)), min_size=1, max_size=30)


def _history(rows: list[tuple[int, int]]) -> tuple[UpdateHistory, list[tuple[int, int, int]]]:
    h, offsets, out = UpdateHistory(), {0: 0, 1: 0, 2: 0}, []
    for value, (p, t) in enumerate(rows):
        h.add({"feature": "f", "key": "k", "source_partition": p, "source_offset": offsets[p],
               "event_time_ms": t, "value": value})
        out.append((p, offsets[p], t))
        offsets[p] += 1
    return h, out


def _brute(rows: list[tuple[int, int, int]], cut: int, t_ms: int) -> int | None:
    """The last of the first ``cut`` updates whose key had seen no event at or after ``t_ms``."""
    best = None
    for i in range(cut):
        if max(t for _, _, t in rows[: i + 1]) < t_ms:
            best = i
    return best


@settings(max_examples=200, deadline=None)
@given(updates, st.data())
def test_before_is_the_last_update_processed_earlier_and_available(rows: list[tuple[int, int]],
                                                                   data: st.DataObject) -> None:
    h, placed = _history(rows)
    cut = data.draw(st.integers(0, len(rows)), label="processed before the prediction")
    t_ms = data.draw(st.integers(0, 60), label="prediction time")
    processed = {p: 0 for p in range(3)}
    for p, o, _ in placed[:cut]:
        processed[p] = o + 1
    hit = h.before("f", "k", t_ms, processed)
    want = _brute(placed, cut, t_ms)
    assert (None if hit is None else hit[3]) == want


@settings(max_examples=100, deadline=None)
@given(updates, st.integers(0, 60))
def test_pruning_keeps_every_answer_from_the_cutoff_on(rows: list[tuple[int, int]], cutoff: int) -> None:
    h, placed = _history(rows)
    everything = {p: 10**6 for p in range(3)}
    before = [h.before("f", "k", t, everything) for t in range(cutoff, 62)]
    h.prune(cutoff)
    assert [h.before("f", "k", t, everything) for t in range(cutoff, 62)] == before
    assert h.n <= len(rows)
