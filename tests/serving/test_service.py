"""The service end to end on the real broker and a real (private) Redis feature store."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.serving.conftest import Served, wait_for


def _session_with_history(served: Served) -> tuple[str, list[str]]:
    """A session of the history with at least 3 interactions, and its items in order."""
    h = served.history
    acted = h[h["event_type"] != "impression"].sort_values("event_time_ms")
    sizes = acted.groupby("session_id").size()
    sid = str(sizes[sizes >= 3].index[-1])
    return sid, acted[acted["session_id"] == sid]["item_id"].tolist()


def test_recommendations_for_a_streamed_session(served: Served) -> None:
    state = served.state(consume=False)
    with TestClient(_app(state)) as client:
        sid, items = _session_with_history(served)
        r = client.get("/recommendations", params={"session_id": sid, "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["degraded"] is False and body["reason"] is None, body
        assert len(body["items"]) == 5 and items[-1] not in body["items"]
        assert body["model_version"] == served.model_version.ref
        assert body["scores"] == sorted(body["scores"], reverse=True)
        assert len(body["request_id"]) == 32


def _app(state: Any) -> Any:
    from workbench.serving.app import create_app

    return create_app(state)


def test_unknown_session_gets_trending(served: Served) -> None:
    with TestClient(_app(served.state(consume=False))) as client:
        body = client.get("/recommendations", params={"session_id": f"nobody-{uuid.uuid4().hex}", "k": 4}).json()
        assert body["reason"] == "unknown_session" and body["degraded"] is False
        assert len(body["items"]) == 4


def _read_topic(topic: str, s: Any, want: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from workbench.streams import kafka

    c = kafka.consumer(s)
    out: list[dict[str, Any]] = []
    try:
        parts = kafka.partitions(c, topic)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.5):
                if m.error() is None:
                    out.append(json.loads(m.value()))
    finally:
        c.close()
    return out


def test_impressions_and_feedback_reach_kafka_and_train_the_ranker(served: Served) -> None:
    from workbench.recommender.ranking import FEATURES, ITEM_COLUMNS

    state = served.state(consume=True)
    with TestClient(_app(state)) as client:
        assert state.consumer_ready.wait(30)
        sid, _ = _session_with_history(served)
        body = client.get("/recommendations", params={"session_id": sid, "k": 6}).json()
        rid = body["request_id"]
        r = client.post("/feedback", json={"request_id": rid, "item_id": body["items"][2], "session_id": sid})
        assert r.status_code == 202, r.text
        before = state.rec.ranker.examples
        # the worker consumed its own impression and the click, and learned from them
        assert wait_for(lambda: state.rec.ranker.examples > before), "no update from feedback"
        assert state.rec.ranker.examples - before == 6  # one positive, five shown-and-skipped
    records = {(r["type"], r["request_id"]): r for r in _read_topic(served.feedback_topic, served.settings, 2)}
    imp = records[("impression", rid)]
    assert imp["items"] == body["items"] and imp["model_version"] == body["model_version"]
    assert imp["feature_names"] == list(FEATURES)
    assert len(imp["features"]) == 6 and all(len(row) == len(FEATURES) for row in imp["features"])
    assert imp["propensities"] == [1.0] * 6 and imp["positions"] == [1, 2, 3, 4, 5, 6]
    assert set(imp["items"]) <= set(imp["candidates"]) and len(imp["candidates"]) == 60
    tables = {t["set"]: t for t in imp["served"]}
    assert set(tables) == {served.session_set.name, served.item_set.name}
    items = tables[served.item_set.name]
    assert items["keys"] == body["items"] and items["columns"] == list(ITEM_COLUMNS)
    assert len(items["rows"]) == 6 and all(len(r) == len(ITEM_COLUMNS) for r in items["rows"])
    session = tables[served.session_set.name]
    assert session["keys"] == [sid] and "session_items" in session["columns"]
    click = records[("click", rid)]
    assert click["item_id"] == body["items"][2] and click["session_id"] == sid


def test_posted_events_become_the_session_the_service_reads(served: Served) -> None:
    state = served.state(consume=False, item_cache_ttl_s=0.0)
    sid = f"api-{uuid.uuid4().hex[:8]}"
    items = [str(i) for i in served.rec.embeddings.ids[:3]]
    with TestClient(_app(state)) as client:
        for item in items:
            r = client.post("/events", json={"session_id": sid, "item_id": item, "category": "books", "price": 3.5})
            assert r.status_code == 202, r.text
        # until the feature job has written the session, only this process's fallback knows it
        def from_store() -> dict[str, Any] | None:
            b = client.get("/recommendations", params={"session_id": sid, "k": 3}).json()
            return b if b["reason"] is None else None

        body = wait_for(from_store, timeout_s=60)
        assert body, "the session feature never reached the online store"
        assert items[-1] not in body["items"]
    rows = [e for e in _read_topic(served.topic, served.settings, len(served.history) + 3)
            if e.get("session_id") == sid]
    assert [e["item_id"] for e in rows] == items and all(e["event_id"].startswith("api-") for e in rows)


def test_bad_requests_get_clear_4xx(served: Served) -> None:
    with TestClient(_app(served.state(consume=False, max_body_bytes=2_000))) as client:
        r = client.get("/recommendations", params={"session_id": "s", "k": 0})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
        assert client.get("/recommendations").status_code == 422
        assert client.get("/recommendations", params={"session_id": "bad id!"}).status_code == 422
        r = client.post("/events", json={"session_id": "s", "item_id": "i", "event_type": "impression"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "event_type"]
        assert client.post("/events", json={"session_id": "s", "item_id": "i", "extra": 1}).status_code == 422
        assert client.post("/feedback", content=b"not json", headers={"content-type": "application/json"}
                           ).status_code == 422
        big = {"request_id": "r", "item_id": "i", "session_id": "s" * 100, "pad": "x" * 5_000}
        r = client.post("/feedback", json=big)
        assert r.status_code == 413 and "larger than 2000 bytes" in r.json()["detail"]


def test_health_and_metrics(served: Served) -> None:
    with TestClient(_app(served.state(consume=False))) as client:
        h = client.get("/health").json()
        assert h["status"] == "ok" and h["model_version"] == served.model_version.ref
        assert h["embedding_version"].startswith("item_embeddings/")
        client.get("/recommendations", params={"session_id": "nobody", "k": 2})
        text = client.get("/metrics").text
        assert 'wb_requests_total{endpoint="/recommendations",status="200"} 1.0' in text
        assert 'wb_fallback_total{reason="unknown_session"} 1.0' in text
        assert "wb_impressions_logged_total 1.0" in text


def test_feature_store_down_means_trending_marked_degraded_never_5xx(served: Served) -> None:
    state = served.state(consume=False)
    with TestClient(_app(state)) as client:
        sid, _ = _session_with_history(served)
        assert client.get("/recommendations", params={"session_id": sid}).json()["degraded"] is False
        served.redis.stop()
        try:
            for _ in range(3):
                r = client.get("/recommendations", params={"session_id": sid, "k": 7})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["degraded"] is True and body["reason"] == "feature_store_unreachable"
                assert len(body["items"]) == 7
            h = client.get("/health").json()
            assert h["status"] == "degraded" and h["feature_store"] == "unreachable"
        finally:
            served.redis.start()
