"""Request-time features: the online value equals the offline (point-in-time) value; stable hashes."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.features.test_conformance import BASE_MS, event_streams
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import SESSION, USER, Feature
from workbench.features.expr import Expr, col, lit
from workbench.features.request import RequestFeature, request_frame
from workbench.features.session import session_features
from workbench.features.skew import same_value
from workbench.features.stream import run_stream_on_frame

LAST_MS = Feature(
    "session_last_event_ms", SESSION, win.Session(gap_ms=15, grace_ms=5), agg.Max("event_time_ms")
)
AVG_PRICE = Feature("user_avg_price", USER, win.Sliding(size_ms=40, grace_ms=8), agg.Mean("price"))
VIEWS = Feature(
    "session_views", SESSION, win.Session(gap_ms=15), agg.Count(), where=col("event_type") == "view"
)

IDLE_MS = RequestFeature("idle_ms", col("request_time_ms") - col("session_last_event_ms"), [LAST_MS])
PRICIER = RequestFeature("pricier_than_usual", col("price") > col("user_avg_price"), [AVG_PRICE])
MIXED = RequestFeature(
    "engaged_and_cheap",
    (col("session_views") >= 2) & ~(col("price") > col("user_avg_price")) | (col("promo") == lit(True)),
    [VIEWS, AVG_PRICE],
)
PRICE_RATIO = RequestFeature("price_ratio", col("price") / col("user_avg_price"), [AVG_PRICE])
ALL = [IDLE_MS, PRICIER, MIXED, PRICE_RATIO]


def online_store_values(
    outputs: dict[str, pd.DataFrame], key_by_feature: dict[str, Any], t: int
) -> dict[str, Any]:
    """What an online store holding the latest update serves at ``t``: replayed from the stream.

    An update is in the store once its record was processed; in event time
    that is the key's running max event time. Written independently of
    ``training_frame`` (no as-of join), on the real quixstreams output.
    """
    out: dict[str, Any] = {}
    for name, output in outputs.items():
        key = key_by_feature[name]
        seen_max: dict[str, int] = {}
        value = None
        for row in output.itertuples():
            seen_max[row.key] = max(seen_max.get(row.key, row.event_time_ms), row.event_time_ms)
            if row.key == key and not row.late and seen_max[row.key] < t:
                value = row.value  # later updates overwrite: last update wins
        out[name] = value
    return out


@st.composite
def requests(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    rows = []
    for _ in range(n):
        session = draw(st.sampled_from(["s0", "s1", "s2", "s9"]))  # s9 never had an event
        rows.append(
            {
                "request_id": f"r{len(rows)}",
                "session_id": session,
                "user_id": {"s0": "u0", "s1": "u1", "s2": "u0", "s9": "u9"}[session],
                "request_time_ms": BASE_MS + draw(st.integers(-10, 250)),
                "price": draw(st.integers(0, 400)) / 4,
                "promo": draw(st.booleans()),
            }
        )
    return pd.DataFrame(rows)


@settings(
    max_examples=int(os.environ.get("CONFORMANCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=event_streams(), reqs=requests())
def test_online_equals_offline(events: pd.DataFrame, reqs: pd.DataFrame) -> None:
    offline = request_frame(reqs, ALL, events)
    assert list(offline.columns) == [*reqs.columns, *(rf.name for rf in ALL)]
    outputs = {f.name: run_stream_on_frame(f, events) for f in (LAST_MS, AVG_PRICE, VIEWS)}
    for request, row in zip(reqs.to_dict("records"), offline.to_dict("records"), strict=True):
        keys = {name: key for rf in ALL for name, key in rf.keys(request).items()}
        stored = online_store_values(outputs, keys, request["request_time_ms"])
        for rf in ALL:
            online = rf.evaluate(request, stored)
            assert type(online) is type(row[rf.name]), (rf.name, online, row[rf.name])
            assert same_value(online, row[rf.name]), (rf.name, request, stored, online, row[rf.name])


def test_known_values() -> None:
    t0 = BASE_MS
    events = pd.DataFrame(
        {
            "event_type": ["view", "view", "view", "click"],
            "event_time_ms": [t0, t0 + 10, t0 + 12, t0 + 100],
            "session_id": ["s0", "s0", "s0", "s1"],
            "user_id": ["u0", "u0", "u0", "u1"],
            "price": [10.0, 20.0, 30.0, 8.0],
            "partition": [0, 0, 0, 1],
            "offset": [0, 1, 2, 0],
        }
    )
    reqs = pd.DataFrame(
        {
            "session_id": ["s0", "s0", "s0", "s1", "s9"],
            "user_id": ["u0", "u0", "u0", "u1", "u9"],
            "request_time_ms": [t0, t0 + 11, t0 + 50, t0 + 101, t0 + 101],
            "price": [25.0, 25.0, 25.0, 7.0, 1.0],
            "promo": [False, False, False, False, True],
        }
    )
    got = request_frame(reqs, ALL, events, keep_inputs=True)
    assert got["session_last_event_ms"].tolist() == [None, t0 + 10, t0 + 12, t0 + 100, None]
    assert got["idle_ms"].tolist() == [None, 1, 38, 1, None]
    # averages: t0+11 sees 10, 20 -> 15; t0+50 sees 10, 20, 30 -> 20 (window 40ms ending at t0+12)
    assert got["user_avg_price"].tolist() == [None, 15.0, 20.0, 8.0, None]
    assert got["pricier_than_usual"].tolist() == [False, True, True, False, False]  # null compares False
    assert got["price_ratio"].tolist() == [None, 25.0 / 15.0, 1.25, 0.875, None]
    # views >= 2 and not pricier, or promo
    assert got["engaged_and_cheap"].tolist() == [False, False, False, False, True]
    # inclusive: an update available exactly at the request time is served too
    assert request_frame(reqs, [IDLE_MS], events, inclusive=True)["idle_ms"].tolist()[0] == 0


def test_inputs_shadow_request_fields_on_both_paths() -> None:
    f = Feature("price", USER, win.Session(gap_ms=100), agg.Last("price"))
    rf = RequestFeature("stored_price", col("price") + 0, [f])
    request = {"user_id": "u", "price": 99.0, "request_time_ms": 50}
    assert rf.evaluate(request, {"price": 3.0}) == 3.0
    events = pd.DataFrame(
        {"user_id": ["u"], "event_time_ms": [10], "price": [3.0], "partition": 0, "offset": 0}
    )
    got = request_frame(pd.DataFrame([request]), [rf], events)
    assert got["stored_price"].tolist() == [3.0]
    assert got["price"].tolist() == [99.0]  # the request's own columns come back unchanged


def test_hash_is_structural_and_covers_inputs() -> None:
    again = RequestFeature(
        "idle_ms", Expr.from_spec((col("request_time_ms") - col(LAST_MS.name)).spec()), [LAST_MS]
    )
    assert again.hash == IDLE_MS.hash
    other_window = Feature(
        LAST_MS.name, SESSION, win.Session(gap_ms=16, grace_ms=5), agg.Max("event_time_ms")
    )
    assert RequestFeature("idle_ms", IDLE_MS.expr, [other_window]).hash != IDLE_MS.hash
    assert (
        RequestFeature("idle_ms", col("request_time_ms") - col(LAST_MS.name) + lit(0), [LAST_MS]).hash
        != IDLE_MS.hash
    )
    assert RequestFeature("idle_ms2", IDLE_MS.expr, [LAST_MS]).hash != IDLE_MS.hash
    # the order inputs are listed in does not matter (the spec is a JSON object)
    assert (
        RequestFeature("m", MIXED.expr, [AVG_PRICE, VIEWS]).hash
        == RequestFeature("m", MIXED.expr, [VIEWS, AVG_PRICE]).hash
    )


def test_pinned_hash() -> None:
    """A hash that changes by accident breaks every stored training set: pin two."""
    assert (IDLE_MS.hash, MIXED.hash) == ("d624d024664fe67c", "d6d282c49e944c03")
    assert IDLE_MS.spec()["expr"] == ["-", ["col", "request_time_ms"], ["col", "session_last_event_ms"]]
    assert IDLE_MS.request_fields == {"request_time_ms"}
    assert MIXED.request_fields == {"price", "promo"}


def test_with_the_standard_session_set() -> None:
    fs = {f.name: f for f in session_features(gap_ms=60_000)}
    idle = RequestFeature(
        "idle_ms", col("request_time_ms") - col("session_last_event_ms"), [fs["session_last_event_ms"]]
    )
    assert idle.evaluate({"session_id": "s", "request_time_ms": 1_000}, {"session_last_event_ms": 400}) == 600


def test_invalid() -> None:
    with pytest.raises(ValueError):
        RequestFeature("bad name", col("a"))
    with pytest.raises(ValueError):
        RequestFeature("dup", col("x"), [LAST_MS, LAST_MS])
    with pytest.raises(TypeError):
        RequestFeature("fn", lambda r: r)  # type: ignore[arg-type]
    clash = Feature(LAST_MS.name, USER, win.Session(gap_ms=1), agg.Count())
    with pytest.raises(ValueError, match="two different definitions"):
        request_frame(pd.DataFrame(), [IDLE_MS, RequestFeature("x", col("x"), [clash])], pd.DataFrame())
