import numpy as np
import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.learning.triggers import DriftTrigger, PerformanceTrigger, TimeTrigger
from workbench.streams.simulator import DAY_MS, ShopSimulator

T0 = 1_750_000_000_000
HOUR_MS = 3_600_000


def _session_intents(seed: int, shift: bool) -> tuple[ShopSimulator, pd.DataFrame]:
    """Four simulated days; the first view of each session (its intent category), one row per session."""
    sim = ShopSimulator(seed=seed, n_users=1500, n_items=400, n_categories=8,
                        shift_at_ms=T0 + 2 * DAY_MS if shift else None)
    views = sim.frame(start_ms=T0, duration_s=4 * 86_400).query("event_type == 'view'")
    return sim, views.drop_duplicates("session_id")


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_drift_trigger_fires_on_the_scheduled_shift_and_not_without(seed: int) -> None:
    sim, sessions = _session_intents(seed, shift=True)
    assert sim.shift is not None
    fired = DriftTrigger.on_categories(sim.categories).scan(sessions, value="category", time="event_time_ms")
    assert fired, "no firing after the shift"
    first = fired[0].t_ms
    assert first is not None and sim.shift.at_ms <= first < sim.shift.at_ms + 6 * HOUR_MS
    assert repr(sim.shift.hot_category) in fired[0].reason  # the hot category's share moved

    sim, sessions = _session_intents(seed, shift=False)
    assert DriftTrigger.on_categories(sim.categories).scan(sessions, value="category", time="event_time_ms") == []


def test_loss_drift_direction() -> None:
    rng = np.random.default_rng(1)
    worse = np.concatenate([rng.exponential(0.3, 3000), rng.exponential(0.5, 3000)])
    better = worse[::-1]
    up = DriftTrigger(direction="up")
    assert up.scan(worse) and 3000 <= up.scan(worse)[0].position < 3600
    assert DriftTrigger(direction="up").scan(better) == []
    assert DriftTrigger(direction="down").scan(better)
    assert DriftTrigger().scan(rng.exponential(0.3, 20_000)) == []
    with pytest.raises(WorkbenchError):
        DriftTrigger(direction="sideways")  # type: ignore[arg-type]


def test_performance_trigger_needs_a_real_drop() -> None:
    rng = np.random.default_rng(2)
    clicks = np.concatenate([rng.random(10_000) < 0.10, rng.random(10_000) < 0.07]).astype(float)
    t = PerformanceTrigger(reference_size=4000, window_size=2000, min_drop=0.1, higher_is_better=True)
    fired = t.scan(clicks)
    assert len(fired) == 1 and 10_000 <= fired[0].position < 13_000
    assert "worse" in fired[0].reason
    # the same noise with no drop, and a drop smaller than min_drop, never fire
    steady = (rng.random(20_000) < 0.10).astype(float)
    assert PerformanceTrigger(reference_size=4000, window_size=2000, higher_is_better=True).scan(steady) == []
    # a fixed reference (e.g. the champion's offline metric) instead of a collected one
    fixed = PerformanceTrigger(reference=0.5, window_size=100, min_drop=0.2, z=2.0)
    assert [f.position for f in fixed.scan([0.5] * 100 + [0.7, 0.65] * 100)][:1] == [156]


def test_time_trigger_on_event_time_of_the_simulator() -> None:
    events = ShopSimulator(seed=1, n_users=200, n_items=100, n_categories=4).frame(T0, duration_s=6 * 3600)
    fired = TimeTrigger(every_minutes=60).scan(events, time="event_time_ms")
    assert len(fired) in (5, 6)  # one per hour after the first event (the last hour may be short)
    times = [f.t_ms for f in fired]
    assert all(b - a >= HOUR_MS for a, b in zip(times, times[1:], strict=False))
    live = TimeTrigger(every_minutes=1)
    assert live.due() is False  # starts the clock on the wall


def test_scan_accepts_records_and_objects() -> None:
    rows = [{"loss": 0.1, "t": i} for i in range(2000)] + [{"loss": 0.9, "t": 2000 + i} for i in range(2000)]
    fired = DriftTrigger().scan(rows, value="loss", time="t")
    assert fired and fired[0].t_ms == fired[0].position
