"""Decoding verdicts, typed frames and start positions (pure logic, no broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from workbench.streams import events
from workbench.taps.positions import duration_ms, is_offset, to_epoch_ms
from workbench.taps.records import Decoder, decode_json, to_frame, validate_event

GOOD = {
    "event_id": "e1", "event_type": "view", "event_time_ms": 1_700_000_000_000, "user_id": "u1",
    "session_id": "s1", "item_id": "i1", "category": "books", "price": 9.5,
}


def _cases() -> list[bytes | None]:
    variants: list[object] = [
        GOOD, {**GOOD, "price": 3}, {**GOOD, "price": True}, {**GOOD, "price": "x"}, {**GOOD, "price": None},
        {**GOOD, "quantity": 2}, {**GOOD, "quantity": 2.5}, {**GOOD, "quantity": False}, {**GOOD, "extra": [1]},
        {**GOOD, "event_type": "teleport"}, {**GOOD, "event_time_ms": "now"}, {**GOOD, "event_time_ms": 1.5},
        {k: v for k, v in GOOD.items() if k != "user_id"}, {**GOOD, "position": 3, "request_id": "r"},
        {**GOOD, "model_version": 7}, {**GOOD, "price": 10**30}, {**GOOD, "event_time_ms": 10**30}, [GOOD], "text", 5, None,
    ]
    raws: list[bytes | None] = [json.dumps(v).encode() for v in variants]
    raws += [None, b"", b"not json", b"\xff\xfe", b'{"a": NaN}', b"{" * 3, b"x" * 70_000,
             json.dumps({**GOOD, "price": float("nan")}).encode()]
    return raws


@pytest.mark.parametrize("raw", _cases())
def test_fast_event_check_agrees_with_the_shared_validator(raw: bytes | None) -> None:
    # twice: the second call goes through the learned type-pattern fast path
    for _ in range(2):
        payload, reason = validate_event(raw, events.DEFAULT_MAX_EVENT_BYTES)
        event, expected = events.validate(raw)
        assert reason == expected
        if event is not None:
            assert payload is not None
            for got, want in zip(payload, (event.get(name) for name in events.FIELDS), strict=True):
                # 10**30 may come back as 1e30; NaN is never equal to itself
                assert got == want or float(got) == float(want) or (got != got and want != want)


def test_auto_mode_detects_events_and_plain_json() -> None:
    d = Decoder("auto", topic="clicks", events_topic="events")
    assert d(events.encode(GOOD))[1] is None and d.mode == "events"
    assert d(b'{"a": 1}')[1] == "missing:event_id"
    j = Decoder("auto", topic="clicks", events_topic="events")
    assert j(b"[]") == (None, "not_object") and j.mode == "auto"
    assert j(b'{"a": 1}')[0] == ({"a": 1},) and j.mode == "json"
    assert decode_json(b"x" * 10, 5) == (None, "too_large")


def test_event_frame_has_the_schema_dtypes() -> None:
    p1, _ = validate_event(events.encode(GOOD), 10_000)
    p2, _ = validate_event(events.encode({**GOOD, "event_type": "purchase", "quantity": 2, "price": 3}), 10_000)
    assert p1 is not None and p2 is not None
    df = to_frame([p1 + (0, 4, 1_700_000_000_500, 100), p2 + (2, 9, 1_700_000_001_000, 120)], "events")
    for name, (_, _, dtype) in events.FIELDS.items():
        assert str(df[name].dtype) == dtype, name
    assert str(df["event_time"].dtype) == "datetime64[ms, UTC]"
    assert str(df["kafka_ts"].dtype) == "datetime64[ms, UTC]"
    assert df["event_time"].iloc[0] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")
    assert df["quantity"].tolist() == [pd.NA, 2] or df["quantity"].isna().tolist() == [True, False]
    assert df["price"].tolist() == [9.5, 3.0]
    assert list(df["category"].cat.categories) == ["books"]
    assert df[["partition", "offset"]].values.tolist() == [[0, 4], [2, 9]]


def test_empty_frames_keep_their_columns() -> None:
    df = to_frame([], "events")
    assert len(df) == 0 and "event_time" in df.columns and str(df["price"].dtype) == "float64"
    assert list(to_frame([], "json").columns) == ["partition", "offset", "kafka_ts"]


def test_json_frame_infers_columns() -> None:
    rows = [({"a": 1, "b": "x"}, 0, 0, 1, 5), ({"a": 2, "c": 1.5}, 0, 1, 2, 5)]
    df = to_frame(rows, "json")
    assert df["a"].tolist() == [1, 2] and df["b"].isna().tolist() == [False, True]
    assert str(df["c"].dtype) == "float64"


def test_times_and_offsets() -> None:
    assert to_epoch_ms(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)) == 1_700_000_000_000
    assert to_epoch_ms(datetime(2023, 11, 14, 22, 13, 20)) == 1_700_000_000_000  # naive is UTC
    assert to_epoch_ms(pd.Timestamp("2023-11-14T22:13:20Z")) == 1_700_000_000_000
    assert to_epoch_ms("2023-11-14 23:13:20+01:00") == 1_700_000_000_000
    assert duration_ms("90s") == 90_000 and duration_ms("10 m") == 600_000
    assert is_offset(5) and is_offset({0: 3}) and not is_offset(1_700_000_000_000) and not is_offset("5")
    assert not is_offset(timedelta(1))
