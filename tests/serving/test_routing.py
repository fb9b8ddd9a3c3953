"""Model routing in the running service: the admin token, hot swaps under load, shadow scores, bandit
posteriors, exploration slots with their propensities, and the continual-learning loop end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import Served, wait_for
from tests.serving.test_service import _read_topic, _session_with_history


def _service() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _second_version(served: Served) -> str:
    """Another ranking version: the served model continued on a few clicks, registered with its parent."""
    import numpy as np

    from workbench.recommender.artifacts import load, save
    from workbench.recommender.ranking import FEATURES

    rec = load(served.model_version.version)
    rng = np.random.default_rng(0)
    rec.learn(rng.normal(size=(64, len(FEATURES))), rng.random(64) < 0.3)
    return save(rec, parent=served.model_version.ref).ref


def test_admin_endpoints_refuse_calls_without_the_token(served: Served, tmp_path: Any) -> None:
    from workbench.serving.app import create_app
    from workbench.serving.auth import admin_token

    token_file = tmp_path / "serve.token"
    state = served.state(consume=False, service=_service(), token_file=str(token_file))
    token = admin_token(token_file)
    calls = [("GET", "/admin/routing", None),
             ("POST", "/admin/routing", {"ref": served.model_version.ref, "stage": "champion"}),
             ("POST", "/admin/explore", {"slots": 2})]  # fmt: skip
    with TestClient(create_app(state)) as client:
        for method, path, body in calls:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                r = client.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
            assert state.pool.current[0].explore_slots == 0  # nothing changed
            r = client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        assert state.pool.current[0].explore_slots == 2
        unknown = client.post("/admin/routing", json={"ref": "session_ranker/999", "stage": "shadow"},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert unknown.status_code == 404 and "999" in unknown.json()["detail"]
        champion_retired = client.post("/admin/routing", json={"ref": served.model_version.ref, "stage": "retired"},
                                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert champion_retired.status_code == 409


def test_bandit_posteriors_follow_clicks_and_survive_a_restart(served: Served) -> None:
    service = _service()
    v2 = _second_version(served)
    state = served.state(consume=False, service=service, attribution_s=0.2, model=str(served.model_version.version))
    state.pool.store.change(service, v2, "arm", reason="test")
    assert state.pool.sync()
    sid, _ = _session_with_history(served)
    served_by: Counter[str] = Counter()
    for _ in range(60):
        rid = uuid.uuid4().hex
        out, _ctx = state.recommend(sid, 5, rid)
        served_by[out.model_version] += 1
        if out.model_version == v2:  # only v2's lists get clicks
            state.pool.on_click(rid, out.items[0])
    assert set(served_by) == {served.model_version.ref, v2}
    time.sleep(0.3)
    assert state.pool.settle() == 60
    a1, b1 = state.pool.router.posterior(served.model_version.ref)
    a2, b2 = state.pool.router.posterior(v2)
    assert (a1, b1) == (1.0, 1.0 + served_by[served.model_version.ref])
    assert (a2, b2) == (1.0 + served_by[v2], 1.0)
    state.pool.close()  # what stop() does: the posteriors are written
    again = served.state(consume=False, service=service, model=str(served.model_version.version))
    assert again.pool.current[0].arms == (served.model_version.ref, v2)
    assert again.pool.router.posterior(v2) == (a2, b2)
    assert again.pool.router.posterior(served.model_version.ref) == (a1, b1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str, str]]:
    """`workbench serve` with 2 workers on its own routing name, not learning online; (client, service, token).

    The tests below share it in order: hot swap to v2, exploration slots, then the loop on top.
    """
    from workbench.serving.auth import admin_token

    port, service = _free_port(), _service()
    token_file = tmp_path_factory.mktemp("token") / "serve.token"
    token = admin_token(token_file)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), "--workers", "2", "--env", "production",
         "--session-set", served.session_set.name, "--item-set", served.item_set.name, "--events-topic", served.topic,
         "--feedback-topic", served.feedback_topic, "--service", service, "--token-file", str(token_file),
         "--attribution-s", "1", "--no-learn-online", "--model", str(served.model_version.version)],
        env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        assert wait_for(lambda: _healthy(client), timeout_s=120, every_s=0.5), "server did not start"
        yield client, service, token
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def _all_workers_at(client: httpx.Client, generation: int) -> bool:
    """Both workers (new connections, so the kernel spreads them) report ``generation``."""
    pids = {}
    for _ in range(30):
        h = client.get("/health", headers={"Connection": "close"}).json()
        pids[h["pid"]] = h["routing_generation"]
    return len(pids) == 2 and all(g == generation for g in pids.values())


def test_hot_swap_under_load_fails_no_request(served: Served, server: tuple[httpx.Client, str, str]) -> None:
    client, service, token = server
    admin = {"Authorization": f"Bearer {token}"}
    v1, v2 = served.model_version.ref, _second_version(served)
    sessions = served.history[served.history["event_type"] == "view"]["session_id"].unique()[-50:].tolist()
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as c:
            j = 0
            while not stop.is_set():
                try:
                    r = c.get("/recommendations", params={"session_id": sessions[j % len(sessions)], "k": 6})
                    results.append((r.status_code, r.json().get("model_version", "") if r.status_code == 200 else ""))
                except httpx.HTTPError as exc:
                    results.append((-1, type(exc).__name__))
                j += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        steps = [(v2, "shadow", None), (v2, "canary", 0.5), (v2, "arm", None), (v2, "champion", None),
                 (v1, "retired", None)]  # fmt: skip
        for ref, stage, share in steps:
            body = {"ref": ref, "stage": stage, "reason": "test", **({"share": share} if share else {})}
            r = client.post("/admin/routing", json=body, headers=admin)
            assert r.status_code == 200, r.text
            generation = r.json()["generation"]
            assert wait_for(lambda g=generation: _all_workers_at(client, g), timeout_s=30), f"{stage} not everywhere"
            time.sleep(1.0)  # requests served in this generation
        mark = len(results)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    failures = [r for r in results if r[0] != 200]
    assert len(results) > 100 and failures == [], failures[:5]
    versions = Counter(v for _, v in results)
    assert versions[v1] > 0 and versions[v2] > 0, versions
    # v1 retired: every worker serves v2 alone (a session with no known item gets v2's "popular" list)
    assert {v.split(":")[0] for _, v in results[mark:]} == {v2}
    routing = client.get("/admin/routing", headers=admin).json()
    assert routing["champion"] == v2 and routing["arms"] == [v2] and routing["shadows"] == []
    # while v2 was in shadow, the served lists carried its scores of the very items shown
    logged = _read_topic(served.feedback_topic, served.settings, want=10**6, timeout_s=8)
    shadowed = [r for r in logged if r.get("type") == "impression" and v2 in (r.get("shadow") or {})]
    assert shadowed and all(r["model_version"] == v1 and len(r["shadow"][v2]["scores"]) == len(r["items"])
                            for r in shadowed)  # fmt: skip
    roles = Counter(r.get("role") for r in logged if r.get("type") == "impression" and r.get("model_version") == v2)
    assert roles["canary"] > 0 and roles["champion"] > 0


def test_exploration_slots_log_their_propensities(served: Served, server: tuple[httpx.Client, str, str]) -> None:
    client, _, token = server
    r = client.post("/admin/explore", json={"slots": 2}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["explore_slots"] == 2
    assert wait_for(lambda: _all_workers_at(client, r.json()["generation"]), timeout_s=30)
    sid, _ = _session_with_history(served)
    rids = {client.get("/recommendations", params={"session_id": sid, "k": 8}).json()["request_id"] for _ in range(20)}
    logged = _read_topic(served.feedback_topic, served.settings, want=10**6, timeout_s=8)
    mine = [r for r in logged if r.get("type") == "impression" and r["request_id"] in rids]
    assert len(mine) == 20
    for imp in mine:
        assert imp["explored"] == [False] * 6 + [True] * 2
        assert imp["propensities"][:6] == [1.0] * 6
        assert all(0.0 < p <= 1.0 for p in imp["propensities"][6:])
        assert len(set(imp["items"])) == 8


def test_the_loop_walks_a_triggered_candidate_through_shadow_and_canary(
        served: Served, server: tuple[httpx.Client, str, str]) -> None:  # fmt: skip
    from workbench import models
    from workbench.learning.loop import Loop, LoopConfig
    from workbench.learning.traffic import Shoppers
    from workbench.learning.triggers import TimeTrigger
    from workbench.serving.routing import RoutingStore
    from workbench.streams.simulator import ShopSimulator

    client, service, token = server
    config = LoopConfig(service_url=str(client.base_url), feedback_topic=served.feedback_topic,
                        events_topic=served.topic, train_examples=40, shadow_examples=40, canary_share=0.3,
                        canary_lists=15, crown_at=0.9, attribution_s=1.0, warmup_lists=0)  # fmt: skip
    # fires at the second list it sees: the test is about the stages, tests/learning about when triggers fire
    loop = Loop(config, token=token, trigger=TimeTrigger(every_minutes=1e-4))
    champion = loop.champion
    shoppers = Shoppers(ShopSimulator(seed=5, n_users=300, n_items=150, n_categories=5), client, k=8)
    stop, visits = threading.Event(), Counter[str]()

    def shop() -> None:
        while not stop.is_set() and visits["all"] < 3000:
            v = shoppers.visit()
            visits["all"] += 1
            visits["failed"] += v.failed

    walker = threading.Thread(target=shop)
    walker.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any(e.kind in ("arm", "retired") for e in loop.events):
            loop.step(timeout_s=0.2)
    finally:
        stop.set()
        walker.join(timeout=60)
        loop.close()
    kinds = [e.kind for e in loop.events]
    assert kinds[:4] == ["trigger", "trained", "shadow", "canary"] or kinds[:4] == ["trigger", "trained", "shadow",
                                                                                     "retired"], kinds
    assert kinds[-1] in ("arm", "retired") and visits["failed"] == 0, (kinds, visits)
    candidate = loop.events[1].ref
    # lineage: the candidate continued the champion on logged lists of the feedback topic, after the firing
    v = models.get(*models.parse_ref(candidate))
    assert v.parent == champion and v.depends_on == models.get(*models.parse_ref(champion)).depends_on
    assert v.data_range is not None and v.data_range["topic"] == served.feedback_topic
    assert v.data_range["lists"] >= 40 and v.metrics["retrain"] == "stateful" and v.metrics["lists"] == v.data_range["lists"]
    assert v.data_range["event_time_ms"][0] >= loop.events[0].at * 1000 - 60_000
    stages = [(c.stage, c.reason) for c in RoutingStore().history(service, candidate)]
    assert [st for st, _ in stages] == kinds[2:], stages
    assert all(reason for _, reason in stages)


def test_promote_to_model_puts_a_candidate_reading_the_set_in_shadow(
        served: Served, server: tuple[httpx.Client, str, str], tmp_path: Any) -> None:  # fmt: skip
    from workbench import models
    from workbench.errors import WorkbenchError
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import ITEM, SESSION, Feature, FeatureSet
    from workbench.features.expr import col
    from workbench.promote.to_model import promote_to_model

    client, service, token = server
    token_file = tmp_path / "serve.token"
    token_file.write_text(token)
    carts = FeatureSet("item_carts", [Feature("item_carts_1d", ITEM, win.Sliding(size_ms=86_400_000), agg.Count(),
                                              where=col("event_type") == "add_to_cart", source=served.topic)])
    by_session = FeatureSet("session_carts", [Feature("session_carts", SESSION, win.Session(gap_ms=1_800_000),
                                                      agg.Count(), source=served.topic)])  # fmt: skip
    kw: dict[str, Any] = {"force": True, "service": service, "service_url": str(client.base_url),
                          "token_file": str(token_file), "hours": 8, "max_prefixes": 1500, "progress": False}
    with pytest.raises(WorkbenchError, match="keyed by session_id, not item_id"):
        promote_to_model(by_session, **kw)
    result = promote_to_model(carts, **kw)
    assert result.promotion.status == "promoted" and result.stage == "shadow", result.summary()
    v = models.get(*models.parse_ref(result.candidate))
    assert v.parent == result.parent and v.metrics["added_feature_set"] == "item_carts"
    assert {f.hash for f in carts.features} <= set(v.feature_hashes)
    assert v.data_range is not None and v.data_range["topic"] == served.topic
    routing = client.get("/admin/routing", headers={"Authorization": f"Bearer {token}"}).json()
    assert result.candidate in routing["shadows"]
    # every worker loads it and scores the served candidates with the new column read online
    assert wait_for(lambda: _all_workers_at(client, routing["generation"]), timeout_s=60)
    sid, _ = _session_with_history(served)
    rids = {client.get("/recommendations", params={"session_id": sid, "k": 6}).json()["request_id"] for _ in range(6)}
    logged = _read_topic(served.feedback_topic, served.settings, want=10**6, timeout_s=8)
    mine = [r for r in logged if r.get("type") == "impression" and r["request_id"] in rids]
    assert len(mine) == 6 and all(len(r["shadow"][result.candidate]["scores"]) == 6 for r in mine)
