"""The fast online reader returns exactly what Feast's get_online_features returns, on SQLite and Redis."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.config import reload
from workbench.features import aggregations as agg
from workbench.features import windows as win
from workbench.features.definition import ITEM, USER, Feature, FeatureSet
from workbench.promote.reader import OnlineReader, OnlineReadError, decode_value, entity_key_bytes, key_prefix

W = win.Tumbling(size_ms=60_000)
# every online type promote generates: Int64, Float64, String (JSON), Array(String); two entities
FEATURES = [
    Feature("views", USER, W, agg.Count()),
    Feature("spend", USER, W, agg.Sum("price")),
    Feature("top", USER, W, agg.TopK("item_id", k=2)),
    Feature("recent", USER, W, agg.LastN("item_id", n=3)),
    Feature("buys", ITEM, W, agg.Count()),
    Feature("price", ITEM, W, agg.Mean("price")),
]
_fresh = itertools.count()


@pytest.fixture(params=["local", "production"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A private Feast repo with ``shop_v1`` applied and the FeatureService ``shop`` pointing at it."""
    from workbench.promote.store import open_store, set_service, version_objects

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_ENV", request.param)
    monkeypatch.setenv("WORKBENCH_FEAST_PROJECT", f"r{uuid.uuid4().hex[:10]}")
    if request.param == "production":
        monkeypatch.setenv("WORKBENCH_REDIS_URL", request.getfixturevalue("redis_url"))
    reload()
    store = open_store()
    objs = version_objects(FeatureSet("shop", FEATURES), 1)
    store.apply([*objs.all, set_service("shop", objs.views, 1)])
    yield store
    monkeypatch.undo()
    reload()


def _write(store: Any, view: str, key: str, rows: list[dict[str, Any]]) -> None:
    """Write rows through Feast; an all-null frame is skipped (Feast skips it too, with a warning)."""
    if any(v is not None for row in rows for k, v in row.items() if k != key):
        frame = pd.DataFrame(rows, dtype=object)
        frame["event_timestamp"] = pd.Timestamp.now(tz="UTC")
        store.write_to_online_store(view, frame, allow_registry_cache=False)


def _feast_rows(store: Any, entities: list[dict[str, str]]) -> list[dict[str, Any]]:
    service = store.registry.get_feature_service("shop", store.project, allow_cache=False)
    cols = store.get_online_features(features=service, entity_rows=entities).to_dict()
    return [{k: v[i] for k, v in cols.items()} for i in range(len(entities))]


text = st.text(max_size=12)
user_row = st.fixed_dictionaries({
    "views": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "spend": st.one_of(st.none(), st.floats(allow_nan=False)),
    "top": st.one_of(st.none(), text),
    "recent": st.one_of(st.none(), st.lists(text, max_size=4)),
})  # fmt: skip
item_row = st.fixed_dictionaries({"buys": st.one_of(st.none(), st.integers(0, 10**12)),
                                  "price": st.one_of(st.none(), st.floats(-1e9, 1e9))})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(st.one_of(st.none(), user_row), min_size=1, max_size=4),
       items=st.lists(st.one_of(st.none(), item_row), min_size=1, max_size=4))
def test_reads_equal_feast(repo: Any, users: list[dict[str, Any] | None], items: list[dict[str, Any] | None]) -> None:
    """Random values of every type, missing entities (None) and nulls: the same dict as Feast's."""
    n = next(_fresh)
    user_ids = [f"u{n}-{i}-é" for i in range(len(users))]
    item_ids = [f"i{n}-{i}" for i in range(len(items))]
    _write(repo, "shop_user_v1", "user_id",
           [{"user_id": u, **row} for u, row in zip(user_ids, users, strict=True) if row is not None])
    _write(repo, "shop_item_v1", "item_id",
           [{"item_id": i, **row} for i, row in zip(item_ids, items, strict=True) if row is not None])
    entities = [{"user_id": u, "item_id": i} for u, i in zip(user_ids, itertools.cycle(item_ids))]
    entities += [{"user_id": u, "item_id": i} for u, i in zip(itertools.cycle(user_ids), item_ids)]
    expected = _feast_rows(repo, entities)
    reader = OnlineReader("shop", store=repo)
    try:
        assert [reader.get(e) for e in entities] == expected
        assert reader.get_many(entities) == expected
    finally:
        reader.close()


def test_view_names_and_refresh_to_a_new_version(repo: Any) -> None:
    """A reader of the service follows a re-pointed service; a reader of named views reads just them."""
    from workbench.promote.store import set_service, version_objects

    _write(repo, "shop_user_v1", "user_id", [{"user_id": "a", "views": 1, "spend": 1.0, "top": "x", "recent": ["p"]}])
    reader = OnlineReader("shop", store=repo, refresh_s=0.0)
    views = OnlineReader(["shop_user_v1"], store=repo)
    try:
        assert reader.version == "1"
        assert views.get({"user_id": "a"}) == {"user_id": "a", "views": 1, "spend": 1.0, "top": "x", "recent": ["p"]}
        v2 = version_objects(FeatureSet("shop", FEATURES[:2]), 2)
        repo.apply([*v2.all, set_service("shop", v2.views, 2)])
        _write(repo, "shop_v2", "user_id", [{"user_id": "a", "views": 7, "spend": 2.5}])
        # refresh_s=0: every read checks the service entry, so this one already sees v2
        assert reader.get({"user_id": "a"}) == {"user_id": "a", "views": 7, "spend": 2.5}
        assert reader.version == "2"
        assert reader.refresh() is False
        assert reader.get({"user_id": "a"}) == _feast_rows(repo, [{"user_id": "a"}])[0]
    finally:
        reader.close()
        views.close()


def test_clear_errors(repo: Any) -> None:
    with pytest.raises(OnlineReadError, match="no FeatureService 'nope'"):
        OnlineReader("nope", store=repo)
    reader = OnlineReader("shop", store=repo)
    with pytest.raises(OnlineReadError, match="lacks join key 'item_id'"):
        reader.get({"user_id": "a"})
    reader.close()


@given(st.text(max_size=40), st.sampled_from(["user_id", "item_id", "sess"]))
def test_entity_keys_match_feasts_serialization(value: str, join_key: str) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    ours = entity_key_bytes(key_prefix(join_key), value)
    key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    assert ours == serialize_entity_key(key, entity_key_serialization_version=3)


values = st.one_of(
    st.builds(lambda v: {"int64_val": v}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: {"int32_val": v}, st.integers(-(2**31), 2**31 - 1)),
    st.builds(lambda v: {"double_val": v}, st.floats(allow_nan=False)),
    st.builds(lambda v: {"float_val": v}, st.floats(allow_nan=False, width=32)),
    st.builds(lambda v: {"bool_val": v}, st.booleans()),
    st.builds(lambda v: {"string_val": v}, st.text()),
    st.builds(lambda v: {"string_list_val": {"val": v}}, st.lists(st.text(max_size=200), max_size=5)),
    st.builds(lambda v: {"int64_list_val": {"val": v}}, st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5)),
    st.builds(lambda v: {"unix_timestamp_val": v}, st.integers(0, 2**34)),  # Feast fails past year 9999
    st.just({}),
)


@given(values)
def test_decoder_matches_feasts_conversion(fields: dict[str, Any]) -> None:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    proto = Value(**fields)
    assert decode_value(proto.SerializeToString()) == feast_value_type_to_python_type(proto)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=50), st.integers(1, 5))
def test_resp_reads_what_redis_py_wrote(redis_url: str, values: list[bytes], repeat: int) -> None:
    """Binary values (CR/LF inside), missing fields and big pipelined replies, in another db."""
    from urllib.parse import urlparse

    import redis

    from workbench.promote.resp import RespConnection, hmget_command, pack_fields

    u = urlparse(redis_url)
    client = redis.Redis(host=u.hostname, port=u.port, db=3)
    key = f"resp-test-{uuid.uuid4().hex}".encode()
    fields = [b"f%d" % i for i in range(len(values))] + [b"missing"]
    client.hset(key, mapping=dict(zip(fields, values, strict=False)))
    conn = RespConnection(u.hostname or "127.0.0.1", u.port or 6379, db=3)
    try:
        cmds = [hmget_command(key, pack_fields(fields), len(fields))] * repeat * 40
        assert conn.hmget(cmds) == [client.hmget(key, fields)] * len(cmds)
    finally:
        conn.close()
        client.delete(key)
        client.close()
