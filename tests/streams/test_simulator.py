"""The shop simulator: determinism, schema, ground truth, and producing to the real broker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from tests.streams import read_back
from workbench.config import Settings
from workbench.streams.events import EVENT_TYPES, FIELDS, encode, validate
from workbench.streams.produce import simulate_to_kafka
from workbench.streams.simulator import DAY_MS, ShopSimulator

T0 = 1_700_000_000_000
SMALL = dict(n_users=300, n_items=400, n_categories=8, sessions_per_user_per_day=4.0)


def small(seed: int = 7, **kw: object) -> ShopSimulator:
    return ShopSimulator(seed, **{**SMALL, **kw})  # type: ignore[arg-type]


def test_same_seed_same_events_other_seed_differs() -> None:
    a = list(small(7).events(T0, 86_400))
    b = list(small(7).events(T0, 86_400))
    c = list(small(8).events(T0, 86_400))
    assert len(a) > 1000
    assert a == b
    assert a != c
    assert [(e["user_id"], e["item_id"]) for e in a[:200]] != [(e["user_id"], e["item_id"]) for e in c[:200]]


def test_events_follow_the_schema_in_event_time_order() -> None:
    events = list(small().events(T0, 86_400))
    assert {e["event_type"] for e in events} == set(EVENT_TYPES)
    assert all(validate(encode(e))[1] is None for e in events)
    times = [e["event_time_ms"] for e in events]
    assert times == sorted(times) and T0 <= times[0] and times[-1] < T0 + DAY_MS
    assert len({e["event_id"] for e in events}) == len(events)
    for e in events:
        if e["event_type"] in ("impression", "click"):
            assert e["model_version"] == "sim" and e["position"] >= 1 and e["request_id"]
        if e["event_type"] == "purchase":
            assert e["quantity"] >= 1


def test_frame_equals_events_and_is_typed_like_the_schema() -> None:
    sim = small()
    events = list(sim.events(T0, 6 * 3600))
    df = sim.frame(T0, 6 * 3600)
    assert df["event_id"].tolist() == [e["event_id"] for e in events]
    assert df["event_type"].astype(str).tolist() == [e["event_type"] for e in events]
    assert df["event_time_ms"].tolist() == [e["event_time_ms"] for e in events]
    assert df["request_id"].isna().sum() == sum("request_id" not in e for e in events)
    assert {c: str(df[c].dtype).split("[")[0] for c in FIELDS} == {c: spec[2] for c, spec in FIELDS.items()}
    assert df.empty is False and sim.frame(T0, 0).empty


def test_a_span_is_a_window_on_one_world() -> None:
    """Sessions that start inside a later window come out identical from a longer span."""
    sim = small()
    long = sim.frame(T0, 2 * 86_400)
    window = sim.frame(T0 + DAY_MS, 86_400)
    start = long.groupby("session_id")["event_time_ms"].transform("min")
    inside = long[(start >= T0 + DAY_MS) & (long["event_time_ms"] < T0 + 2 * DAY_MS)]
    assert inside["event_id"].tolist() == window["event_id"].tolist()


def test_shift_changes_ground_truth_only_after_shift_at() -> None:
    at = T0 + DAY_MS + 1_234_567  # not on an hour boundary
    plain, shifted = small(), small(shift_at_ms=at)
    assert plain.shift is None and shifted.shift is not None and shifted.shift.at_ms == at
    hot = shifted.shift.hot_category
    rng = np.random.default_rng(0)
    pairs = [(f"u{u}", f"i{i}") for u, i in zip(rng.integers(300, size=50), rng.integers(400, size=50), strict=True)]
    for t in (T0, at - 1):
        assert [plain.click_probability(u, i, t) for u, i in pairs] == \
               [shifted.click_probability(u, i, t) for u, i in pairs]
        assert shifted.taste("u1", t) == plain.taste("u1", t)
    after = [(plain.click_probability(u, i, at), shifted.click_probability(u, i, at)) for u, i in pairs]
    assert sum(abs(a - b) > 1e-9 for a, b in after) > 40
    assert shifted.taste("u1", at)[hot] > plain.taste("u1", at)[hot]
    cat = shifted.catalog["category"]
    assert shifted.popularity(at)[cat == hot].sum() > plain.popularity(at)[cat == hot].sum()
    # sessions that start before the shift are exactly the unshifted ones; later ones lean to the hot category
    a, b = plain.frame(T0, 2 * 86_400), shifted.frame(T0, 2 * 86_400)
    a_old = a.groupby("session_id")["event_time_ms"].transform("min") < at
    b_old = b.groupby("session_id")["event_time_ms"].transform("min") < at
    assert a[a_old].reset_index(drop=True).equals(b[b_old].reset_index(drop=True))
    hot_share = [(f[~old & (f["event_type"] == "view")]["category"] == hot).mean()
                 for f, old in ((a, a_old), (b, b_old))]
    assert hot_share[1] > hot_share[0] + 0.1


def test_popularity_trends_and_drives_views() -> None:
    sim = small()
    p0, p7 = sim.popularity(T0), sim.popularity(T0 + 7 * DAY_MS)
    assert p0.sum() == pytest.approx(1.0) and p7.sum() == pytest.approx(1.0)
    assert (p0 - p7).abs().sum() > 0.2  # the trend moves the shares a lot in a week
    assert sim.popularity(T0, "i3") == pytest.approx(float(p0["i3"]))
    df = sim.frame(T0, 86_400)
    views = df[df["event_type"] == "view"]["item_id"].value_counts()
    mid = sim.popularity(T0 + DAY_MS // 2)[views.index]
    assert np.corrcoef(np.log(mid.to_numpy()), np.log(views.to_numpy()))[0, 1] > 0.5


def test_click_probability_is_the_true_click_rate() -> None:
    sim = small()
    df = sim.frame(T0, 86_400)
    shown = df[df["event_type"] == "impression"]
    clicks = df[df["event_type"] == "click"]
    truth = [sim.click_probability(u, i, t, int(p)) for u, i, t, p in
             zip(shown["user_id"], shown["item_id"], shown["event_time_ms"], shown["position"], strict=True)]
    rate = len(clicks) / len(shown)
    se = (rate * (1 - rate) / len(shown)) ** 0.5
    assert abs(float(np.mean(truth)) - rate) < 4 * se
    by_pos = clicks["position"].value_counts() / shown["position"].value_counts()
    assert by_pos.loc[1] > by_pos.loc[4]  # position bias
    with pytest.raises(ValueError):
        sim.click_probability("u1", "i1", T0, position=0)


def test_catalog_and_tastes_are_readable() -> None:
    sim = small()
    cat = sim.catalog
    assert len(cat) == 400 and set(cat["category"]) == set(sim.categories) and (cat["price"] > 0).all()
    taste = sim.taste("u5")
    assert set(taste) == set(sim.categories) and sum(taste.values()) == pytest.approx(1.0)


def test_events_per_s_sets_the_rate() -> None:
    sim = small(diurnal_amplitude=0.0)
    df = sim.frame(T0, 120, events_per_s=500, warmup_s=900)
    assert 0.75 * 500 * 120 < len(df) < 1.25 * 500 * 120


@pytest.mark.broker
def test_simulate_to_kafka_keys_by_session_and_keeps_session_order(
    broker: Settings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("sim")
    out = simulate_to_kafka(0, days=3, topic=topic, max_events=5000, n_users=300, n_items=400, s=broker)
    assert out["produced"] == 5000 and out["errors"] == 0
    records = read_back(topic, broker)
    assert len(records) == 5000
    partition_of: dict[str, int] = {}
    times: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        assert validate(encode(r["value"]))[1] is None
        assert r["key"] == r["value"]["session_id"]
        assert partition_of.setdefault(r["key"], r["partition"]) == r["partition"]
        times[r["key"]].append((r["offset"], r["value"]["event_time_ms"]))
    for seq in times.values():
        in_offset_order = [t for _, t in sorted(seq)]
        assert in_offset_order == sorted(in_offset_order)


@pytest.mark.broker
def test_simulate_live_uses_wall_clock_event_times(broker: Settings, new_topic: Callable[..., str]) -> None:
    import time

    topic = new_topic("live")
    before = int(time.time() * 1000)
    out = simulate_to_kafka(1000, 1.5, topic=topic, n_users=300, n_items=400, s=broker)
    after = int(time.time() * 1000)
    assert out["produced"] > 100 and out["errors"] == 0
    assert before <= out["first_event_ms"] <= out["last_event_ms"] <= after


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        simulate_to_kafka(0)  # live mode needs a rate
    with pytest.raises(ValueError):
        simulate_to_kafka(-5, days=1)
    with pytest.raises(ValueError):
        ShopSimulator(n_items=3, n_categories=5)


def test_vectorised_click_probabilities_match_the_scalar_ones() -> None:
    sim = small(shift_at_ms=T0 + DAY_MS)
    users, items = ["u1", "u2", "u3"], ["i4", "i5", "i6"]
    times = [T0, T0 + DAY_MS, T0 + 2 * DAY_MS]
    got = sim.click_probabilities(users, items, times, [1, 2, 3])
    want = [sim.click_probability(u, i, t, p) for u, i, t, p in zip(users, items, times, [1, 2, 3], strict=True)]
    assert got.tolist() == pytest.approx(want)
