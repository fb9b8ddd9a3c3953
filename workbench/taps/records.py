"""Decoded records and the typed DataFrame built from them (shared by taps and replay).

A *row* is a flat tuple: the payload, then ``partition, offset, kafka_ts_ms,
size_bytes``. For event topics the payload is the values of
:data:`workbench.streams.events.FIELDS` in order; for other topics (any JSON
object) it is the decoded dict alone. Flat tuples of plain values cost about
half the memory of dicts, the garbage collector soon stops tracking them, and a
frame is built column by column from them in one pass each.

Decoding is the hot path of a tap, so the event check is done in two steps: a
tuple of the values' types is looked up in the set of type patterns already
seen valid (one C-level hash), and only an unseen pattern goes through
:func:`workbench.streams.events.check`, which then names the reason. The
verdicts are the shared validator's exactly (``tests/taps/test_records.py``
compares them).

>>> d = Decoder("auto", events_topic="events", topic="clicks")
>>> d(b'{"a": 1}'), d.mode
((({'a': 1},), None), 'json')
>>> d(b"[1, 2]")
(None, 'not_object')
>>> to_frame([({"a": 1}, 0, 5, 1_700_000_000_000, 8)], "json").dtypes.astype(str).to_dict()
{'a': 'int64', 'partition': 'int32', 'offset': 'int64', 'kafka_ts': 'datetime64[ms, UTC]'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from workbench.streams import events
from workbench.streams.events import loads

if TYPE_CHECKING:
    import pandas as pd

Row = tuple[Any, ...]
Payload = tuple[Any, ...]
Mode = Literal["auto", "events", "json"]
Decode = Callable[[bytes | None, int], tuple[Payload | None, str | None]]
META = ("partition", "offset", "kafka_ts")
NAMES = tuple(events.FIELDS)
EVENT_TIME = NAMES.index("event_time_ms")
_EVENT_TYPE = NAMES.index("event_type")
_EVENT_TYPES = frozenset(events.EVENT_TYPES)
_valid_types: set[tuple[type, ...]] = set()  # type patterns events.check accepted


def validate_event(raw: bytes | None, max_bytes: int) -> tuple[Payload | None, str | None]:
    """:func:`workbench.streams.events.validate`, returning the field values in FIELDS order.

    >>> validate_event(b'{"price": 1}', 1024)
    (None, 'missing:event_id')
    """
    if raw and len(raw) <= max_bytes:
        try:
            event = loads(raw)
        except (ValueError, UnicodeDecodeError):
            event = None
        if type(event) is dict:
            values = tuple(map(event.get, NAMES))
            # validity depends only on the exact types of the known fields (bool is
            # its own type, so it never passes as an int) and on the event type
            if tuple(map(type, values)) in _valid_types and values[_EVENT_TYPE] in _EVENT_TYPES:
                return values, None
    # a bad record, or a type pattern not seen yet: the shared validator decides
    checked, reason = events.validate(raw, max_bytes)
    if checked is None:
        return None, reason
    values = tuple(map(checked.get, NAMES))
    _valid_types.add(tuple(map(type, values)))
    return values, None


def decode_json(raw: bytes | None, max_bytes: int) -> tuple[Payload | None, str | None]:
    """Decode any JSON object as a 1-tuple ``(dict,)``; reasons as :func:`events.validate`."""
    if not raw:
        return None, "empty"
    if len(raw) > max_bytes:
        return None, "too_large"
    try:
        rec = loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "not_json"
    return ((rec,), None) if isinstance(rec, dict) else (None, "not_object")


class Decoder:
    """Decodes record values: ``(payload, None)`` or ``(None, reason)``.

    ``mode="auto"`` treats a topic as an event topic when it is the settings'
    events topic, or when the first JSON object read has every required event
    field; otherwise records are arbitrary JSON objects.
    """

    def __init__(self, mode: Mode, *, topic: str, events_topic: str, max_bytes: int = 64 * 1024) -> None:
        self.max_bytes = max_bytes
        self.mode: Mode = "events" if mode == "auto" and topic == events_topic else mode

    def __call__(self, raw: bytes | None) -> tuple[Payload | None, str | None]:
        if self.mode == "events":
            return validate_event(raw, self.max_bytes)
        payload, reason = decode_json(raw, self.max_bytes)
        if self.mode == "auto" and payload is not None:
            self.mode = "events" if all(k in payload[0] for k in events.REQUIRED) else "json"
            if self.mode == "events":
                return validate_event(raw, self.max_bytes)
        return payload, reason

    def fast(self) -> Decode | None:
        """The plain function to call per record once the mode is known (no method overhead)."""
        return {"events": validate_event, "json": decode_json}.get(self.mode)


def event_time_ms(payload: Payload, mode: Mode, kafka_ts: int) -> int:
    """A payload's event time; the Kafka timestamp for JSON without ``event_time_ms``."""
    if mode == "events":
        return int(payload[EVENT_TIME])
    t = payload[0].get("event_time_ms")
    return t if isinstance(t, int) and not isinstance(t, bool) else kafka_ts


def _ms_to_utc(values: Any) -> Any:
    import numpy as np
    import pandas as pd

    arr = np.asarray(values, dtype="int64").astype("datetime64[ms]")
    return pd.DatetimeIndex(arr).tz_localize("UTC")


def _column(values: list[Any], dtype: str, required: bool) -> Any:
    import numpy as np
    import pandas as pd

    n = len(values)
    if dtype == "int64" and required:
        return np.array(values, dtype="int64")
    if dtype == "float64":
        return np.array(values, dtype="float64")
    if not required and values.count(None) == n:  # an optional field nobody sent: skip per-value checks
        if dtype == "Int64":
            return pd.arrays.IntegerArray(np.zeros(n, dtype="int64"), np.ones(n, dtype=bool))
        if dtype == "category":
            return pd.Categorical.from_codes(np.full(n, -1), categories=pd.Index([], dtype=object))
    objs = np.array(values, dtype=object)
    if dtype == "category":
        # factorize, then sort the (few) categories: much faster than Categorical(values)
        codes, uniques = pd.factorize(objs)
        order = np.argsort(uniques.astype(str))
        remap = np.empty(len(order) + 1, dtype=codes.dtype)
        remap[order] = np.arange(len(order))
        remap[-1] = -1  # code -1 (missing) indexes the last slot
        return pd.Categorical.from_codes(remap[codes], categories=pd.Index(uniques[order], dtype=object))
    if dtype == "string":
        return pd.arrays.StringArray._from_sequence(objs)
    return pd.array(objs, dtype=dtype)


def to_frame(rows: Sequence[Row], mode: Mode) -> pd.DataFrame:
    """Build the typed DataFrame of ``rows``, one pass per column."""
    import pandas as pd

    n_meta = len(META) + 1
    width = len(NAMES) + n_meta if mode == "events" else 1 + n_meta
    cols_raw = [[r[i] for r in rows] for i in range(width - 1)] if rows else [[] for _ in range(width - 1)]
    payload, (partition, offset, kafka_ts) = cols_raw[: width - n_meta], cols_raw[width - n_meta :]
    cols: dict[str, Any] = {}
    if mode == "events":
        for (name, (_, required, dtype)), values in zip(events.FIELDS.items(), payload, strict=True):
            cols[name] = _column(values, dtype, required)
        cols["event_time"] = _ms_to_utc(cols["event_time_ms"])
    else:
        # a JSON field named like a metadata column is shadowed by the metadata
        data = pd.DataFrame.from_records(payload[0]) if rows else pd.DataFrame()
        cols = {str(c): data[c].to_numpy() for c in data.columns}
    cols["partition"] = _column(partition, "int64", True).astype("int32")
    cols["offset"] = _column(offset, "int64", True)
    cols["kafka_ts"] = _ms_to_utc(kafka_ts)
    return pd.DataFrame(cols, copy=False)


def schema_summary(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-column dtype, null rate, distinct count and min/max (numbers and times).

    >>> import pandas as pd
    >>> schema_summary(pd.DataFrame({"x": [1.0, None, 3.0]}))[0]
    {'column': 'x', 'dtype': 'float64', 'null_rate': 0.333, 'distinct': 2, 'min': 1.0, 'max': 3.0}
    """
    import pandas as pd

    out: list[dict[str, Any]] = []
    n = len(df)
    for name in df.columns:
        col = df[name]
        nulls = int(col.isna().sum())
        try:
            distinct: int | None = int(col.nunique(dropna=True))
        except TypeError:  # unhashable values (nested JSON)
            distinct = None
        info: dict[str, Any] = {
            "column": str(name),
            "dtype": str(col.dtype),
            "null_rate": round(nulls / n, 3) if n else 0.0,
            "distinct": distinct,
        }
        numeric = pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
        if (numeric or pd.api.types.is_datetime64_any_dtype(col.dtype)) and nulls < n:
            lo, hi = col.min(), col.max()
            info["min"] = lo.item() if hasattr(lo, "item") else lo
            info["max"] = hi.item() if hasattr(hi, "item") else hi
        out.append(info)
    return out
