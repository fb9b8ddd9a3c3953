"""The ring buffer a tap keeps its rows in, bounded by rows and by bytes.

A row is a tuple whose last item is its size in bytes (see ``records``).

Rows go in whole batches and the oldest leave first, so the arrival order, and
with it the order within every partition (and so within every key), is kept.
The byte bound counts each record's value size as read from Kafka; the Python
objects built from it take a few times more (``workbench bench tap`` reports
the resident memory of a full buffer).

>>> b = RingBuffer(max_rows=3, max_bytes=100)
>>> b.extend([({"i": i}, 0, i, 0, 10) for i in range(5)], 50)
>>> [r[2] for r in b.rows()], b.evicted
([2, 3, 4], 2)
>>> b.extend([({"big": 1}, 1, 0, 0, 90)], 90)
>>> [(r[1], r[2]) for r in b.rows()], b.nbytes
([(0, 4), (1, 0)], 100)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from itertools import islice

from workbench.taps.records import Row


class RingBuffer:
    """Thread-safe FIFO of rows holding at most ``max_rows`` rows and ``max_bytes`` bytes.

    One row larger than ``max_bytes`` on its own is kept alone rather than
    dropped, so the latest record is always visible.
    """

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("max_rows and max_bytes must be positive")
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._rows: deque[Row] = deque()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.appended = 0  # rows ever added; a row's sequence number is its index here
        self.evicted = 0

    def extend(self, rows: Sequence[Row], nbytes: int) -> None:
        """Append a batch (``nbytes`` = the sum of its rows' sizes), evicting the oldest."""
        if not rows:
            return
        with self._lock:
            q = self._rows
            q.extend(rows)
            self.nbytes += nbytes
            self.appended += len(rows)
            # cheap common case first: trim to max_rows in one go
            extra = len(q) - self.max_rows
            if extra > 0:
                if extra >= self.max_rows:  # the batch alone overflows: rebuild from its tail
                    dropped = len(q) - self.max_rows
                    kept = list(q)[dropped:]
                    self.nbytes = sum(r[-1] for r in kept)
                    q.clear()
                    q.extend(kept)
                    self.evicted += dropped
                else:
                    pop = q.popleft
                    gone = 0
                    for _ in range(extra):
                        gone += pop()[-1]
                    self.nbytes -= gone
                    self.evicted += extra
            while self.nbytes > self.max_bytes and len(q) > 1:
                self.nbytes -= q.popleft()[-1]
                self.evicted += 1

    def rows(self, last: int | None = None) -> list[Row]:
        """A snapshot of the rows, oldest first (only the ``last`` n when given)."""
        with self._lock:
            if last is None or last >= len(self._rows):
                return list(self._rows)
            if last <= 0:
                return []
            return list(islice(reversed(self._rows), last))[::-1]

    def clear(self) -> None:
        with self._lock:
            self.evicted += len(self._rows)
            self._rows.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._rows)
