"""The ring buffer's bounds and order (pure logic, no broker)."""

from __future__ import annotations

import random

import pytest

from workbench.taps.buffer import RingBuffer


def _rows(start: int, n: int, size: int, partitions: int = 3) -> list[tuple[object, ...]]:
    return [(f"v{i}", i % partitions, i // partitions, 0, size) for i in range(start, start + n)]


def test_row_bound_holds_under_a_flood() -> None:
    b = RingBuffer(max_rows=1_000, max_bytes=10**9)
    for start in range(0, 200_000, 5_000):
        b.extend(_rows(start, 5_000, 10), 50_000)
        assert len(b) <= 1_000
    assert [r[0] for r in b.rows()] == [f"v{i}" for i in range(199_000, 200_000)]
    assert b.appended == 200_000 and b.evicted == 199_000
    assert b.nbytes == 10_000


def test_byte_bound_holds_with_varying_sizes() -> None:
    rng = random.Random(7)
    b = RingBuffer(max_rows=10**6, max_bytes=64_000)
    for start in range(0, 50_000, 500):
        rows = [(i, 0, i, 0, rng.randint(1, 2_000)) for i in range(start, start + 500)]
        b.extend(rows, sum(r[-1] for r in rows))
        assert b.nbytes <= 64_000
        assert b.nbytes == sum(r[-1] for r in b.rows())


def test_order_within_each_partition_is_kept() -> None:
    b = RingBuffer(max_rows=700, max_bytes=10**9)
    for start in range(0, 10_000, 333):
        b.extend(_rows(start, 333, 1), 333)
    by_part: dict[int, list[int]] = {}
    for r in b.rows():
        by_part.setdefault(r[1], []).append(r[2])  # type: ignore[arg-type]
    assert all(offsets == sorted(offsets) for offsets in by_part.values())


def test_a_single_oversized_row_is_kept_alone() -> None:
    b = RingBuffer(max_rows=10, max_bytes=100)
    b.extend(_rows(0, 3, 10), 30)
    b.extend([("huge", 0, 99, 0, 500)], 500)
    assert [r[0] for r in b.rows()] == ["huge"]


def test_last_n_and_clear() -> None:
    b = RingBuffer(max_rows=10, max_bytes=1_000)
    b.extend(_rows(0, 8, 1), 8)
    assert [r[0] for r in b.rows(last=3)] == ["v5", "v6", "v7"]
    assert b.rows(last=0) == []
    b.clear()
    assert len(b) == 0 and b.nbytes == 0


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RingBuffer(max_rows=0, max_bytes=1)
