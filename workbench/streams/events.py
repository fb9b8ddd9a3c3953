"""The shop clickstream event schema, and the one validator every consumer shares.

An event is a flat JSON object. Its event time is ``event_time_ms`` (epoch
milliseconds, UTC) inside the payload; Kafka record timestamps are send times
and never stand in for it. Records are keyed by ``session_id`` so order within
a session is kept.

=================  ========  ========  ===============================================
field              type      required  meaning
=================  ========  ========  ===============================================
event_id           str       yes       unique id of the event
event_type         str       yes       view, add_to_cart, purchase, impression, click
event_time_ms      int       yes       event time, epoch milliseconds UTC
user_id            str       yes       the visitor
session_id         str       yes       the visit; also the Kafka key
item_id            str       yes       the item viewed, bought, shown or clicked
category           str       yes       item category
price              float     yes       item price
request_id         str       no        recommendation request (impression, click)
position           int       no        rank of the item in the shown list
model_version      str       no        model that produced the impression
quantity           int       no        units bought (purchase)
=================  ========  ========  ===============================================

>>> e = {"event_id": "e1", "event_type": "view", "event_time_ms": 1_700_000_000_000,
...      "user_id": "u1", "session_id": "s1", "item_id": "i1", "category": "books", "price": 9.5}
>>> validate(encode(e))[1] is None
True
>>> validate(b"not json")[1]
'not_json'
>>> validate(encode({**e, "price": "cheap"}))[1]
'wrong_type:price'
"""

from __future__ import annotations

import itertools
import json
import operator
from typing import Any

import orjson

EVENT_TYPES = ("view", "add_to_cart", "purchase", "impression", "click")
_EVENT_TYPES = frozenset(EVENT_TYPES)

# name -> (accepted python types, required, pandas dtype)
FIELDS: dict[str, tuple[tuple[type, ...], bool, str]] = {
    "event_id": ((str,), True, "string"),
    "event_type": ((str,), True, "category"),
    "event_time_ms": ((int,), True, "int64"),
    "user_id": ((str,), True, "string"),
    "session_id": ((str,), True, "string"),
    "item_id": ((str,), True, "string"),
    "category": ((str,), True, "category"),
    "price": ((float, int), True, "float64"),
    "request_id": ((str,), False, "string"),
    "position": ((int,), False, "Int64"),
    "model_version": ((str,), False, "string"),
    "quantity": ((int,), False, "Int64"),
}
REQUIRED = tuple(name for name, (_, req, _) in FIELDS.items() if req)
DEFAULT_MAX_EVENT_BYTES = 64 * 1024

Event = dict[str, Any]


def encode(event: Event) -> bytes:
    """Serialise an event as compact JSON bytes."""
    return json.dumps(event, separators=(",", ":")).encode()


# The fast path of check: the required fields' exact types (what a JSON decoder gives; bool is
# not int here) compared as one tuple, then only the other fields looked at one by one.
_GET_REQUIRED = operator.itemgetter(*REQUIRED)
_REQUIRED_TYPES = tuple(itertools.product(*(FIELDS[name][0] for name in REQUIRED)))  # two: price float or int
_TYPE_INDEX = REQUIRED.index("event_type")
_OTHER_TYPES = {name: frozenset(types) for name, (types, required, _) in FIELDS.items() if not required}


def check(event: Any) -> str | None:
    """Return the reason a decoded payload is not a valid event, or None.

    >>> check({"event_type": "view"})
    'missing:event_id'
    """
    if type(event) is dict:
        try:
            values = _GET_REQUIRED(event)
        except KeyError:
            return _check(event)
        if tuple(map(type, values)) in _REQUIRED_TYPES and values[_TYPE_INDEX] in _EVENT_TYPES:
            if len(event) == len(REQUIRED):
                return None
            for name, value in event.items():
                types = _OTHER_TYPES.get(name)  # None for a required field and for an unknown one
                if types is not None and value is not None and type(value) not in types:
                    return _check(event)  # names the reason
            return None
    return _check(event)


def _check(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "not_object"
    for name in REQUIRED:
        if name not in event or event[name] is None:
            return f"missing:{name}"
    for name, value in event.items():
        spec = FIELDS.get(name)
        if spec is None or value is None:
            continue  # unknown fields are carried, not rejected
        types = spec[0]
        # bool is an int subclass; it is never a valid number here
        if not isinstance(value, types) or isinstance(value, bool):
            return f"wrong_type:{name}"
    if event["event_type"] not in _EVENT_TYPES:
        return "bad_value:event_type"
    return None


def validate(raw: bytes | None, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> tuple[Event | None, str | None]:
    """Decode and check one record value: ``(event, None)`` or ``(None, reason)``.

    Reasons are short machine-readable strings: ``empty``, ``too_large``,
    ``not_json``, ``not_object``, ``missing:<field>``, ``wrong_type:<field>``,
    ``bad_value:<field>``.
    """
    if not raw:
        return None, "empty"
    if len(raw) > max_bytes:
        return None, "too_large"
    try:
        event = loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "not_json"
    reason = check(event)
    if reason and reason.startswith("wrong_type"):
        # orjson reads integers beyond 64 bits as floats where json keeps ints
        event = json.loads(raw)
        reason = check(event)
    return (None, reason) if reason else (event, None)


def loads(raw: bytes) -> Any:
    """``json.loads`` semantics at orjson speed (several times faster per record).

    orjson is stricter (no NaN, no integers beyond 64 bits), so on its error we
    ask json: a record is malformed exactly when ``json`` cannot read it.

    >>> loads(b'{"a": NaN}')
    {'a': nan}
    """
    try:
        return orjson.loads(raw)
    except ValueError:
        return json.loads(raw)
