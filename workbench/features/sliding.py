"""The keyed stateful window steps of the stream path: sliding, tumbling and hopping.

:func:`sliding_step` is what :func:`workbench.features.stream.window` runs for
a :class:`~workbench.features.windows.Sliding` window (its docstring says why
it is not quixstreams' own sliding window), :func:`fixed_step` for
:class:`~workbench.features.windows.Tumbling` and
:class:`~workbench.features.windows.Hopping` windows; the semantics are
pinned in :mod:`workbench.features.windows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Count
from workbench.features.definition import Feature
from workbench.features.windows import Hopping, Sliding, Tumbling

if TYPE_CHECKING:
    from quixstreams.dataframe import StreamingDataFrame

__all__ = ["fixed_step", "sliding_step", "transaction_of"]


def transaction_of(sdf: StreamingDataFrame) -> Callable[[], tuple[int, Any]]:
    """(partition, state transaction) of the current record, as ``apply(stateful=True)`` looks it up."""
    from quixstreams import message_context

    context, stream_id = sdf.processing_context, sdf.stream_id
    # a checkpoint keeps one transaction per store partition until it ends: the last lookup is reused
    last: list[Any] = [None, -1, None]

    def current() -> tuple[int, Any]:
        partition = message_context().partition
        checkpoint = context.checkpoint
        if checkpoint is last[0] and partition == last[1]:
            return partition, last[2]
        tx = checkpoint.get_store_transaction(stream_id=stream_id, partition=partition)
        last[:] = [checkpoint, partition, tx]
        return partition, tx

    return current


def sliding_step(
    feature: Feature,
    on_late: Callable[..., bool],
    transaction: Callable[[], tuple[int, Any]],
) -> Callable[[Any, Any, int, Any], list[dict[str, Any]]]:
    """The sliding window as a keyed stateful step (RocksDB state, changelog like any window).

    Why not ``sdf.sliding_window()``: quixstreams 3.28 seeds a new window from
    the aggregate of an older stored window, and deletes windows that are
    expired even when their records still belong to a later window. With
    out-of-order input it then loses records: size 25 ms, grace 8 ms, event
    times 0, 7, 8, 9, 6 -> the window [-19, 6] of the last record counts 1
    instead of 2 (the record at 0 is gone). Here the step keeps the on-time
    records that any future window can still need (event time at least
    ``L - grace - size``) and folds each emitted window from them.

    A record with ``t < L - grace`` is late. An on-time record emits its own
    window ``[t - size, t]`` and the window ``[u - size, u]`` of every distinct
    buffered event time ``t < u <= t + size``, ascending.

    State per key is one JSON value ``[L, [item, ...]]`` (items in arrival
    order): at most one read per record and one write per key and checkpoint
    (:class:`_Copies`). A record at or after ``L`` (the
    common, in-order case) emits only its own window, so the step drops
    expired items from the front and folds the buffer once; an out-of-order
    record takes the general path above.

    ``transaction`` (see :func:`transaction_of`) gives the record's state
    transaction: the step is a plain ``apply`` on a registered store and opens
    the key's state only when it must read it. It keeps the decoded state of
    the keys it wrote (:class:`_Copies` says when it is valid and when it is
    written), so a key seen again is not read back and decoded.
    """
    import orjson

    w = feature.window
    assert isinstance(w, Sliding)
    size, grace = w.size_ms, w.grace_ms
    agg = feature.aggregation
    initialize, fold, result = agg.initialize, agg._update_item, agg.result
    counting = type(agg) is Count  # the fold of a count is the number of items: no calls per item
    name, fhash = feature.name, feature.hash
    state_key = f"{fhash}:sliding".encode()  # bytes: quixstreams does not re-serialize it
    legacy_latest, legacy_buffer = f"{fhash}:latest_ms", f"{fhash}:buffer"
    loads = orjson.loads
    copies_of = _Copies.json(transaction, state_key)

    def step(value: dict[str, Any], key: Any, timestamp: int, _headers: Any) -> list[dict[str, Any]]:
        item = value["i"]
        t = item[0]
        copies = copies_of.current()
        copy = copies.get(key) if copies is not None else None
        if copy is not None:
            latest, buffer = copy
        elif copies_of.holds_every_key():
            latest, buffer = None, []  # never written: the copies hold every key of the store
        else:
            state = copies_of.state(key, timestamp)
            raw = state.get_bytes(state_key)
            if raw is not None:
                latest, buffer = loads(raw)
            elif copies_of.started_empty():
                latest, buffer = None, []  # nothing was ever stored here in the old layout
            else:
                # state written before the one-key layout (same feature hash): read it once;
                # both keys were always written together, so a new key costs one extra read
                latest = state.get(legacy_latest)
                buffer = state.get(legacy_buffer, []) if latest is not None else []
        if latest is not None and t < latest - grace:
            on_late(value, None, t, latest - grace - t, t, t, "sliding", "", -1, -1)
            return []
        name_of_key = key.decode() if isinstance(key, bytes) else key
        if latest is None or t >= latest:
            # in order: only [t - size, t]; every buffered item is at or before t
            horizon = t - grace - size  # no future window reaches below this
            drop = 0
            for it in buffer:  # expired items sit at the front while input is in order
                if it[0] >= horizon:
                    break
                drop += 1
            if drop:
                # an expired item behind an unexpired one stays until it reaches the
                # front; it is below every future window, so it never counts
                del buffer[:drop]
            buffer.append(item)
            copies_of.write(key, [t, buffer], timestamp)
            lo = t - size
            if counting:
                total: Any = 0
                for it in buffer:
                    if it[0] >= lo:
                        total += 1
            else:
                acc = initialize()
                for it in buffer:  # arrival order, as the backfill folds
                    if it[0] >= lo:
                        acc = fold(acc, it)
                total = result(acc)
            return [_update(name, fhash, name_of_key, item, max(0, lo), t, total)]
        # out of order: the record also belongs to the windows of later records
        horizon = latest - grace - size
        buffer = [it for it in buffer if it[0] >= horizon]
        buffer.append(item)
        copies_of.write(key, [latest, buffer], timestamp)
        out = []
        for u in sorted({it[0] for it in buffer if t <= it[0] <= t + size}):
            acc = initialize()
            for it in buffer:  # arrival order, as the backfill folds
                if u - size <= it[0] <= u:
                    acc = fold(acc, it)
            out.append(_update(name, fhash, name_of_key, item, max(0, u - size), u, result(acc)))
        return out

    return step


def _update(name: str, fhash: str, key: Any, item: list[Any], start: int, end: int, value: Any) -> dict[str, Any]:
    """One feature update, as ``to_update`` in :func:`window` builds it for the other kinds."""
    return {
        "feature": name,
        "hash": fhash,
        "key": key,
        "event_time_ms": item[0],
        "source_partition": item[1],
        "source_offset": item[2],
        "window_start_ms": start,
        "window_end_ms": end,
        "value": value,
    }


def fixed_step(
    feature: Feature,
    on_late: Callable[..., bool],
    transaction: Callable[[], tuple[int, Any]],
) -> Callable[[Any, Any, int, Any], list[dict[str, Any]]]:
    """Tumbling and hopping windows with ``.current()`` as a keyed stateful step.

    The same decisions quixstreams 3.28's ``tumbling_window`` /
    ``hopping_window(...).current()`` with ``closing_strategy="key"`` makes, on
    one state value per key instead of its window store: that store reads the
    key's latest timestamp, the window and the expiry cursor and opens a
    RocksDB iterator for every record, and writes two changelog messages per
    key. Here it is one read (none for a key whose state this step still holds,
    as in :func:`sliding_step`) and one write per key and checkpoint.

    With ``L`` the key's greatest earlier event time (0 at first), each window
    ``[s, e)`` of the record (ascending) is late when ``e <= L - grace``, else
    it is folded and emitted. Windows with ``e <= max(L, t) - grace`` can
    never be updated again and are dropped from the state.

    State per key: ``[L, [[start, end, aggregation state], ...]]`` (ascending).
    """
    import orjson

    w = feature.window
    assert isinstance(w, (Tumbling, Hopping))
    size, grace = w.size_ms, w.grace_ms
    step_ms = w.step_ms if isinstance(w, Hopping) else size
    agg = feature.aggregation
    initialize, fold, result = agg.initialize, agg._update_item, agg.result
    counting = type(agg) is Count
    # a custom aggregation may update its state in place; the copies would then alias emitted values
    keep_copies = agg.builtin
    name, fhash = feature.name, feature.hash
    state_key = f"{fhash}:fixed".encode()
    loads = orjson.loads
    copies_of = _Copies.json(transaction, state_key, keep=keep_copies)

    def step(value: dict[str, Any], key: Any, timestamp: int, _headers: Any) -> list[dict[str, Any]]:
        item = value["i"]
        t = item[0]
        copies = copies_of.current()
        copy = copies.get(key) if copies is not None else None
        if copy is not None:
            latest, windows = copy
        elif copies_of.holds_every_key():
            latest, windows = 0, []
        else:
            raw = copies_of.state(key, timestamp).get_bytes(state_key)
            latest, windows = loads(raw) if raw is not None else (0, [])
        closed_end = max(latest, t) - grace  # a window ending at or before this is closed
        late_end = latest - grace
        name_of_key = key.decode() if isinstance(key, bytes) else key
        out = []
        first = t - t % step_ms
        start = first
        while start > t - size and start >= 0:  # the record's windows, newest first
            start -= step_ms
        start += step_ms
        i = 0
        n = len(windows)
        while start <= first:
            end = start + size
            if end <= late_end:
                on_late(value, key, t, late_end - t, start, end, "fixed", "", -1, -1)
                start += step_ms
                continue
            while i < n and windows[i][0] < start:
                i += 1
            if i < n and windows[i][0] == start:
                acc = windows[i][2] + 1 if counting else fold(windows[i][2], item)
                windows[i][2] = acc
            else:
                acc = 1 if counting else fold(initialize(), item)
                windows.insert(i, [start, end, acc])
                n += 1
            out.append(_update(name, fhash, name_of_key, item, start, end, acc if counting else result(acc)))
            start += step_ms
        if not out:
            return out  # every window of the record was closed: nothing changed
        drop = 0
        for win_ in windows:  # ascending start (so ascending end): the closed ones are in front
            if win_[1] > closed_end:
                break
            drop += 1
        if drop:
            del windows[:drop]
        latest = max(latest, t)
        copies_of.write(key, [latest, windows], timestamp)
        return out

    return step


class _Copies:
    """Per partition, the decoded state of the keys a step wrote, while RocksDB still holds exactly that.

    Within one state transaction the step is the only writer of its keys, so
    the copy equals what a read would return. It stays equal across a
    transaction that completed (flushed to RocksDB) when the next one is on
    the same store partition object. Anything else (a failed or aborted
    checkpoint, a revoked and reassigned partition, restored from the
    changelog) drops every copy of the partition. At most ``max_keys`` keys a
    partition are kept; past that the copies restart empty at the next
    transaction.

    With copies, a key's state is encoded and written to the transaction once,
    when the checkpoint prepares it (before its changelog is produced), not on
    every record: the transaction keeps only a key's last value anyway, so
    RocksDB and the changelog get the same bytes. Without copies every record
    writes through ``state``.
    """

    def __init__(
        self,
        transaction: Callable[[], tuple[int, Any]] | None,
        state_key: bytes = b"",
        encode: Callable[[list[Any]], bytes] | None = None,
        max_keys: int = 200_000,
        keep: bool = True,
    ) -> None:
        self.transaction = transaction
        self.state_key = state_key
        self.encode = encode
        self.max_keys = max_keys
        self.keep = keep  # False: no copies, every write goes to the state at once
        # partition -> (its current transaction, {message key: decoded state}, keys written in it)
        self.written: dict[int, tuple[Any, dict[Any, list[Any]], set[Any]]] = {}
        self._slot: tuple[Any, dict[Any, list[Any]], set[Any]] | None = None  # the current record's
        self._tx: Any = None  # the current record's transaction
        # partition -> [its store partition object, it held no key when first seen here,
        #               the copies still hold every key of the step in it]
        self._stores: dict[int, list[Any]] = {}
        self._partition = -1

    @classmethod
    def json(cls, transaction: Callable[[], tuple[int, Any]], state_key: bytes, keep: bool = True) -> _Copies:
        """Copies whose values are stored as JSON by quixstreams' own ``dumps`` (what its state
        serializer runs), so stored values read back the same."""
        from quixstreams.utils.json import dumps

        return cls(transaction, state_key, dumps, keep=keep)

    def current(self) -> dict[Any, list[Any]] | None:
        """The copies of the current record's transaction (None without copies)."""
        if self.transaction is None:
            return None
        partition, tx = self.transaction()
        self._tx = tx
        self._partition = partition
        if not self.keep:
            return None
        slot = self.written.get(partition)
        if slot is not None and slot[0] is tx:
            self._slot = slot
            return slot[1]
        copies: dict[Any, list[Any]] = {}
        carried = False
        if slot is not None:
            before = slot[0]
            if (getattr(before, "completed", False) and getattr(before, "_partition", None) is not None
                    and getattr(before, "_partition", None) is getattr(tx, "_partition", None)
                    and len(slot[1]) <= self.max_keys):
                copies, carried = slot[1], True
        self._note_store(partition, tx, carried)
        dirty: set[Any] = set()
        self._defer(tx, copies, dirty)
        self.written[partition] = self._slot = (tx, copies, dirty)
        return copies

    def started_empty(self) -> bool:
        """Whether the current record's store partition held no key when this process first saw it.

        A store this process started from scratch (or restored empty) cannot
        hold state in an older layout, so a key missing there needs no second look.
        """
        seen = self._seen()
        return seen is not None and seen[1]

    def holds_every_key(self) -> bool:
        """Whether a key without a copy is surely absent from the store: no read needed.

        True while the store started empty here and every transaction since
        carried the copies on (none was dropped), so every key this step ever
        wrote there has its copy.
        """
        seen = self._seen()
        return seen is not None and seen[2]

    def _seen(self) -> list[Any] | None:
        seen = self._stores.get(self._partition)
        if seen is None or seen[0] is None or seen[0] is not getattr(self._tx, "_partition", None):
            return None
        return seen

    def _note_store(self, partition: int, tx: Any, carried: bool) -> None:
        """On each new transaction: is its store partition new here (then: is it empty?), were copies dropped?"""
        store = getattr(tx, "_partition", None)
        seen = self._stores.get(partition)
        if seen is not None and seen[0] is store:
            seen[2] = seen[2] and carried
            return
        empty = store is not None and hasattr(store, "iter_items") and next(
            iter(store.iter_items(lower_bound=b"")), None) is None
        self._stores[partition] = [store, empty, empty]

    def state(self, key: Any, timestamp: int | None = None) -> Any:
        """The key's State in the current record's transaction, as ``apply(stateful=True)`` builds it."""
        return self._tx.as_state(prefix=key, timestamp=timestamp)

    def write(self, key: Any, value: list[Any], timestamp: int | None = None) -> None:
        """The key's new state: kept as its copy and written at prepare, or written now without copies."""
        if self.keep and self._slot is not None:
            self._slot[1][key] = value
            self._slot[2].add(key)
            return
        assert self.encode is not None
        self.state(key, timestamp).set_bytes(self.state_key, self.encode(value))

    def _defer(self, tx: Any, copies: dict[Any, list[Any]], dirty: set[Any]) -> None:
        """Encode and set the dirty keys on ``tx`` just before its ``prepare`` (several steps may share it)."""
        encode, state_key = self.encode, self.state_key
        assert encode is not None

        def write_dirty() -> None:
            for key in dirty:
                # the State the stateful step is given: the same key prefixing
                tx.as_state(prefix=key).set_bytes(state_key, encode(copies[key]))
            dirty.clear()

        hooks: list[Callable[[], None]] | None = getattr(tx, "_workbench_before_prepare", None)
        if hooks is None:
            hooks = tx._workbench_before_prepare = []
            prepare = tx.prepare

            def prepare_with_state(*args: Any, **kwargs: Any) -> Any:
                for hook in hooks:
                    hook()
                return prepare(*args, **kwargs)

            tx.prepare = prepare_with_state
        hooks.append(write_dirty)
