"""The online sink on real stores (SQLite and Redis): latest value per key, the seam, strictly newer timestamps."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.jobs.helpers import BASE_MS, JobHome, read_online, read_topic, shop_set
from workbench.features.definition import FeatureSet
from workbench.jobs.sink import OnlineSink, stored_times
from workbench.jobs.spec import JobSpec

_offsets = itertools.count(100)


def update(feature: str, key: str, value: Any, t_ms: int, offset: int | None = None) -> dict[str, Any]:
    return {"feature": feature, "hash": "h", "key": key, "event_time_ms": t_ms, "source_partition": 0,
            "source_offset": next(_offsets) if offset is None else offset,
            "window_start_ms": 0, "window_end_ms": 1, "value": value}


def feed(sink: OnlineSink, *updates: dict[str, Any]) -> None:
    for u in updates:
        sink.add(u, u["key"], u["event_time_ms"], [], "t", 0, u["source_offset"])
    sink.flush()


def times(sink: OnlineSink, spec: JobSpec, keys: list[str]) -> list[Any]:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    assert sink.store is not None
    view = next(iter(spec.views.values()))
    eks = [EntityKey(join_keys=["session_id"], entity_values=[Value(string_val=k)]) for k in keys]
    return stored_times(sink.store, sink.store.get_feature_view(view), eks)


def open_sink(home: JobHome, fs: FeatureSet, env: str, **spec_args: Any) -> tuple[JobSpec, OnlineSink]:
    spec = home.make_job(fs, env, **spec_args)
    sink = OnlineSink(spec, fs, store=home.store(env))
    sink.setup()
    return spec, sink


@pytest.mark.broker
@pytest.mark.parametrize("env", ["local", "production"])
def test_partial_rows_seam_and_older_event_times(job_home: JobHome, env: str) -> None:
    fs = shop_set("unused")
    spec, sink = open_sink(job_home, fs, env, seam={"0": 10})
    feed(sink,
         update("n_1h", "a", 1, BASE_MS + 100_000), update("last_item", "a", "i1", BASE_MS + 100_000),
         update("n_1h", "b", 4, BASE_MS + 150_000), update("n_1h", "b", 5, BASE_MS + 200_000),
         update("n_1h", "c", 9, BASE_MS, offset=3))  # fmt: skip
    got = read_online(spec.repo_path, fs, ["a", "b", "c"])
    assert got["n_1h"] == {"a": 1, "b": 5, "c": None}  # latest per key; c's update is before the seam
    assert got["last_item"] == {"a": '"i1"', "b": None, "c": None}
    assert sink.before_seam == 1
    first = times(sink, spec, ["a"])[0]
    assert first is not None

    # an update with an OLDER event time still lands (Redis would skip it at its own time),
    # and a partial row leaves the other features of the key as they were
    feed(sink, update("n_1h", "a", 2, BASE_MS + 50_000))
    got = read_online(spec.repo_path, fs, ["a"])
    assert got["n_1h"]["a"] == 2 and got["last_item"]["a"] == '"i1"'
    second = times(sink, spec, ["a"])[0]
    assert second is not None
    if env == "production":  # Redis keeps the written timestamp: one microsecond after the stored one
        assert (second - first).total_seconds() * 1e6 == pytest.approx(1)
    else:  # Feast's SQLite keeps whole seconds and overwrites anyway
        assert second == first


@pytest.mark.broker
def test_both_stores_take_every_write(job_home: JobHome) -> None:
    """Random batches of updates: both stores end with each key's latest values, timestamps strictly rise."""
    fs = shop_set("unused")
    (_, lite), (spec, red) = open_sink(job_home, fs, "local"), open_sink(job_home, fs, "production")
    batch = st.lists(st.tuples(st.sampled_from(["k0", "k1", "k2"]), st.sampled_from(["n_1h", "spend_1h"]),
                               st.integers(0, 1000), st.integers(-5_000, 5_000)), min_size=1, max_size=8)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(batch, min_size=1, max_size=4))
    def check(batches: list[list[tuple[str, str, int, int]]]) -> None:
        prefix = uuid.uuid4().hex[:6]  # keys of this example only
        latest: dict[tuple[str, str], Any] = {}
        last_ts: dict[str, Any] = {}
        for b in batches:
            ups = [update(f, f"{prefix}{k}", v, BASE_MS + t) for k, f, v, t in b]
            for sink in (lite, red):
                feed(sink, *ups)
            latest.update({(u["key"], u["feature"]): u["value"] for u in ups})
            keys = sorted({u["key"] for u in ups})
            for sink in (lite, red):
                for k, ts in zip(keys, times(sink, spec, keys), strict=True):
                    assert ts is not None
                    if (sink, k) in last_ts:  # strictly newer on Redis; SQLite keeps whole seconds
                        assert ts > last_ts[(sink, k)] if sink is red else ts >= last_ts[(sink, k)]
                    last_ts[(sink, k)] = ts
        keys = sorted({k for k, _ in latest})
        a = read_online(lite.spec.repo_path, fs, keys)
        b = read_online(red.spec.repo_path, fs, keys)
        assert a == b
        for (k, f), v in latest.items():
            assert a[f][k] == (float(v) if f == "spend_1h" else v)

    check()


@pytest.mark.broker
def test_unconvertible_value_is_dead_lettered(job_home: JobHome, new_topic: Callable[..., str]) -> None:
    from workbench.streams.validation import DeadLetters

    source = new_topic("sinkdlq", partitions=1)
    fs = shop_set(source)
    spec = job_home.make_job(fs, "local")
    sink = OnlineSink(spec, fs, dead_letters=DeadLetters(source), store=job_home.store("local"))
    sink.setup()
    feed(sink, update("n_1h", "a", "many", BASE_MS, offset=7), update("last_item", "a", "i3", BASE_MS, offset=7))
    got = read_online(spec.repo_path, fs, ["a"])
    assert got["n_1h"]["a"] is None and got["last_item"]["a"] == '"i3"'  # the rest of the row is written
    assert sink.unwritable == {"unwritable:n_1h": 1}
    letters = read_topic(f"{source}.dlq", job_home.settings)
    assert [(h["reason"], h["source_offset"]) for _, h in letters] == [("unwritable:n_1h", "7")]
