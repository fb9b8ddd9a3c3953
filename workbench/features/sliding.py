"""The sliding window of the stream path: a keyed stateful step on quixstreams state.

:func:`sliding_step` is what :func:`workbench.features.stream.window` runs for
a :class:`~workbench.features.windows.Sliding` window (its docstring says why
it is not quixstreams' own sliding window); the semantics are pinned in
:mod:`workbench.features.windows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.features.aggregations import Count
from workbench.features.definition import Feature
from workbench.features.windows import Sliding

if TYPE_CHECKING:
    from quixstreams.dataframe import StreamingDataFrame

__all__ = ["sliding_step", "transaction_of"]


def transaction_of(sdf: StreamingDataFrame) -> Callable[[], tuple[int, Any]]:
    """(partition, state transaction) of the current record, as ``apply(stateful=True)`` looks it up."""
    from quixstreams import message_context

    context, stream_id = sdf.processing_context, sdf.stream_id

    def current() -> tuple[int, Any]:
        partition = message_context().partition
        return partition, context.checkpoint.get_store_transaction(stream_id=stream_id, partition=partition)

    return current


def sliding_step(
    feature: Feature,
    on_late: Callable[..., bool],
    transaction: Callable[[], tuple[int, Any]] | None = None,
) -> Callable[[Any, Any, int, Any, Any], list[dict[str, Any]]]:
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
    order): one read and one write per record. A record at or after ``L`` (the
    common, in-order case) emits only its own window, so the step drops
    expired items from the front and folds the buffer once; an out-of-order
    record takes the general path above.

    With ``transaction`` (see :func:`transaction_of`) the step also keeps the
    decoded state of the keys it wrote in the current state transaction, so
    a key seen again before the next checkpoint is not read back and decoded.
    Within one transaction this step is the only writer of its keys, so the
    copy equals what a read would return; a new transaction (a commit, an
    aborted checkpoint, a reassigned partition) starts with no copies, and
    every record is still written to the state (changelog, recovery).
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
    # the options quixstreams' own state serializer uses, so stored values read back the same
    options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    dumps, loads = orjson.dumps, orjson.loads
    # partition -> (its transaction, {message key: [L, buffer] as last written in it})
    written: dict[int, tuple[Any, dict[Any, list[Any]]]] = {}
    no_copies: dict[Any, list[Any]] = {}  # without a transaction: never filled

    def step(value: dict[str, Any], key: Any, _timestamp: int, _headers: Any, state: Any) -> list[dict[str, Any]]:
        item = value["i"]
        t = item[0]
        copies = no_copies
        if transaction is not None:
            partition, tx = transaction()
            slot = written.get(partition)
            if slot is None or slot[0] is not tx:
                slot = written[partition] = (tx, {})
            copies = slot[1]
        copy = copies.get(key)
        if copy is not None:
            latest, buffer = copy
        else:
            raw = state.get_bytes(state_key)
            if raw is not None:
                latest, buffer = loads(raw)
            else:
                # state written before the one-key layout (same feature hash): read it once
                latest, buffer = state.get(legacy_latest), state.get(legacy_buffer, [])
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
            state.set_bytes(state_key, dumps([t, buffer], option=options))
            if copies is not no_copies:
                copies[key] = [t, buffer]
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
        state.set_bytes(state_key, dumps([latest, buffer], option=options))
        if copies is not no_copies:
            copies[key] = [latest, buffer]
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
