"""When a window step may reuse the state it decoded instead of reading it back (sliding._Copies)."""

from __future__ import annotations

from typing import Any

from workbench.features.sliding import _Copies


class Tx:
    """Stands in for a quixstreams partition transaction: its store partition, whether it completed, its writes."""

    def __init__(self, partition: object, completed: bool = False) -> None:
        self._partition = partition
        self.completed = completed
        self.stored: dict[tuple[Any, bytes], bytes] = {}
        self.legacy: dict[tuple[Any, str], Any] = {}  # decoded values under the old string keys
        self.reads = 0
        self.prepared = False

    def as_state(self, prefix: Any, timestamp: int | None = None) -> State:
        return State(self, prefix)

    def prepare(self, processed_offsets: Any = None) -> None:
        self.prepared = True


class State:
    def __init__(self, tx: Tx, prefix: Any) -> None:
        self.tx, self.prefix = tx, prefix

    def get_bytes(self, key: bytes) -> bytes | None:
        self.tx.reads += 1
        return self.tx.stored.get((self.prefix, key))

    def get(self, key: str, default: Any = None) -> Any:
        self.tx.reads += 1
        return self.tx.legacy.get((self.prefix, key), default)

    def set_bytes(self, key: bytes, value: bytes) -> None:
        assert not self.tx.prepared, "written after prepare: the changelog would miss it"
        self.tx.stored[(self.prefix, key)] = value


def copies_for(max_keys: int = 100) -> tuple[_Copies, list[tuple[int, Tx]]]:
    current: list[tuple[int, Tx]] = []

    def transaction() -> tuple[int, Any]:
        return current[-1]

    return _Copies(transaction, b"s", lambda v: repr(v).encode(), max_keys=max_keys), current


def test_copies_live_through_committed_transactions_only() -> None:
    store = object()
    copies, current = copies_for()
    first = Tx(store)
    current.append((0, first))
    got = copies.current()
    assert got is not None
    got[b"k"] = [1, []]
    assert copies.current() is got  # the same transaction: the same copies

    # the next transaction after a completed one, on the same store partition: still valid
    first.completed = True
    second = Tx(store)
    current.append((0, second))
    assert copies.current() == {b"k": [1, []]}

    # a transaction that did not complete (aborted checkpoint): RocksDB never saw its writes
    third = Tx(store)
    current.append((0, third))
    assert copies.current() == {}


def test_a_reassigned_partition_and_too_many_keys_drop_the_copies() -> None:
    copies, current = copies_for(max_keys=2)
    old = Tx(object(), completed=True)
    current.append((1, old))
    got = copies.current()
    assert got is not None
    got[b"a"] = [1, []]
    current.append((1, Tx(object())))  # a new store partition object: restored from the changelog
    assert copies.current() == {}

    done = Tx(current[-1][1]._partition, completed=True)
    current.append((1, done))
    got = copies.current()
    assert got is not None
    got.update({b"a": [1, []], b"b": [2, []], b"c": [3, []]})
    current.append((1, Tx(done._partition)))
    assert copies.current() == {}  # over max_keys: start again


def test_partitions_are_independent() -> None:
    store0, store1 = object(), object()
    copies, current = copies_for()
    current.append((0, Tx(store0)))
    zero = copies.current()
    assert zero is not None
    zero[b"x"] = [5, []]
    current.append((1, Tx(store1)))
    assert copies.current() == {}
    current.append((0, current[0][1]))
    assert copies.current() is zero


def test_without_a_transaction_nothing_is_kept() -> None:
    assert _Copies(None).current() is None


def test_state_is_written_once_a_key_just_before_prepare() -> None:
    copies, current = copies_for()
    tx = Tx(object())
    current.append((0, tx))
    copies.current()
    copies.write(b"k", [1, [1]])
    copies.write(b"j", [7, []])
    copies.write(b"k", [2, [1, 2]])  # the key's last value is what the transaction gets
    assert tx.stored == {}
    tx.prepare()
    assert tx.stored == {(b"k", b"s"): b"[2, [1, 2]]", (b"j", b"s"): b"[7, []]"}

    # the next transaction writes only the keys it changed
    tx.completed = True
    nxt = Tx(tx._partition)
    current.append((0, nxt))
    assert copies.current() == {b"k": [2, [1, 2]], b"j": [7, []]}
    copies.write(b"j", [8, []])
    nxt.prepare()
    assert nxt.stored == {(b"j", b"s"): b"[8, []]"}


def test_two_steps_on_one_transaction_each_write_their_own_keys() -> None:
    tx = Tx(object())
    one = _Copies(lambda: (0, tx), b"one", lambda v: b"1")
    two = _Copies(lambda: (0, tx), b"two", lambda v: b"2")
    one.current()
    two.current()
    one.write(b"k", [1, []])
    two.write(b"k", [1, []])
    tx.prepare()
    assert tx.stored == {(b"k", b"one"): b"1", (b"k", b"two"): b"2"}


def test_without_copies_every_write_goes_to_the_state_at_once() -> None:
    tx = Tx(object())
    copies = _Copies(lambda: (0, tx), b"s", lambda v: b"x", keep=False)
    assert copies.current() is None
    copies.write(b"k", [1, []])
    assert tx.stored == {(b"k", b"s"): b"x"}


def test_a_sliding_key_in_the_old_two_key_layout_carries_on() -> None:
    """State written before the one-key layout is read once; a new key costs two reads, not three."""
    import orjson

    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import ITEM, Feature
    from workbench.features.sliding import sliding_step

    f = Feature("n", ITEM, win.Sliding(size_ms=10), agg.Count())
    tx = Tx(object())
    tx.legacy[(b"old", f"{f.hash}:latest_ms")] = 100
    tx.legacy[(b"old", f"{f.hash}:buffer")] = [[89, 0, 0, None], [95, 0, 1, None], [100, 0, 2, None]]
    step = sliding_step(f, lambda *_: False, lambda: (0, tx))

    (update,) = step({"i": [103, 0, 3, None]}, b"old", 103, None)
    assert update["value"] == 3 and update["window_start_ms"] == 93  # 95, 100, 103
    assert tx.reads == 3  # the new key (absent), then the two old ones
    (update,) = step({"i": [104, 0, 4, None]}, b"old", 104, None)
    assert update["value"] == 4 and tx.reads == 3  # the decoded copy, no read
    (update,) = step({"i": [104, 0, 5, None]}, b"new", 104, None)
    assert update["value"] == 1 and tx.reads == 5

    tx.prepare()  # the checkpoint writes each changed key once, in the one-key layout
    assert orjson.loads(tx.stored[(b"old", f"{f.hash}:sliding".encode())])[0] == 104


class Store:
    """A store partition: what it held before this process wrote to it."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys

    def iter_items(self, lower_bound: bytes) -> Any:
        return iter([(k, b"") for k in self.keys if k >= lower_bound])


def test_a_store_that_started_empty_is_read_only_after_copies_were_dropped() -> None:
    """Copies that cover a store from empty answer "absent" without a read, until one is dropped."""
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import ITEM, Feature
    from workbench.features.sliding import fixed_step, sliding_step

    sliding = Feature("n", ITEM, win.Sliding(size_ms=10), agg.Count())
    tumbling = Feature("t", ITEM, win.Tumbling(size_ms=10), agg.Count())
    for make, f, held_reads in ((sliding_step, sliding, 2), (fixed_step, tumbling, 1)):
        # a store that held keys before: a missing key is looked up (and the old layout too, sliding)
        tx = Tx(Store([b"old|x"]))
        step = make(f, lambda *_: False, lambda tx=tx: (0, tx))  # type: ignore[misc]
        (update,) = step({"i": [5, 0, 0, None]}, b"k", 5, None)
        assert update["value"] == 1 and tx.reads == held_reads

        store = Store([])
        current = [Tx(store)]

        def newest(current: list[Tx] = current) -> tuple[int, Any]:
            return 0, current[-1]

        step = make(f, lambda *_: False, newest)
        step({"i": [5, 0, 0, None]}, b"a", 5, None)
        current[-1].completed = True  # committed: the copies carry on into the next transaction
        current.append(Tx(store))
        step({"i": [6, 0, 1, None]}, b"b", 6, None)
        assert current[-1].reads == 0 and current[0].reads == 0
        store.keys = [b"a|s"]  # what RocksDB holds now; this transaction fails (not completed)
        current.append(Tx(store))
        (update,) = step({"i": [7, 0, 2, None]}, b"a", 7, None)
        assert current[-1].reads == 1  # copies dropped: "a" must be read back
