"""promote end to end on the real broker: apply, read with plain Feast, idempotence, rollback, time travel."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import pandas as pd
import pytest

from tests.features.test_live import make_events, produce
from tests.promote.conftest import online, open_gate, shop_set
from tests.promote.test_plan import _snapshot as snapshot
from workbench import jobs
from workbench.config import Settings
from workbench.features.backfill import backfill
from workbench.features.definition import FeatureSet
from workbench.promote import features_as_of, lineage, promote, rollback
from workbench.promote.naming import online_value
from workbench.promote.store import open_store, repo_path
from workbench.taps.replay import replay

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def expected(fs: FeatureSet, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per feature, the value at each key's last record, computed by the backfill path."""
    out: dict[str, dict[str, Any]] = {}
    for f in fs.features:
        values = backfill(f, frame)
        values = values[~values["late"].astype(bool)]
        out[f.name] = {k: online_value(f, v) for k, v in values.groupby("key", sort=False)["value"].last().items()}
    return out


def read(service: str) -> dict[str, dict[str, Any]]:
    rows = [{"session_id": f"s{i}", "user_id": f"u{i}"} for i in range(4)]
    got = online(service, rows)
    return {name: {rows[i]["session_id" if name.startswith("session") else "user_id"]: v
                   for i, v in enumerate(values)}
            for name, values in got.items() if name not in ("session_id", "user_id")}


def wait_for(want: dict[str, dict[str, Any]], service: str, timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    got = read(service)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.3)
        got = read(service)
    return got


def later(events: list[dict[str, Any]], by_ms: int) -> list[dict[str, Any]]:
    return [{**e, "event_id": f"late{e['event_id']}", "event_time_ms": e["event_time_ms"] + by_ms} for e in events]


def test_promote_serves_fresh_values_then_rolls_back(home: Settings, history: tuple[str, pd.DataFrame]) -> None:
    topic, frame = history
    v1 = shop_set(topic)
    open_gate(v1, frame)
    try:
        result = promote(v1, progress=False)
        assert (result.status, result.version) == ("promoted", 1)
        # materialized from the backfill: readable at once, by plain Feast, from the service `shop`
        assert read("shop") == expected(v1, frame)
        assert jobs.status("shop_v1").status == "running"

        # the job keeps it fresh: new events change the online values to the backfill's over everything
        produce(topic, later(make_events(120, seed=6), 600_000), home)
        everything = replay(topic)
        assert wait_for(expected(v1, everything), "shop") == expected(v1, everything)

        # promoting the same definitions again changes nothing
        again = promote(v1, progress=False)
        assert (again.status, again.version) == ("unchanged", 1)

        v2 = shop_set(topic, extra=True)
        open_gate(v2, everything)
        assert promote(v2, progress=False).version == 2
        want_v2 = expected(v2, everything)
        assert wait_for(want_v2, "shop") == want_v2
        assert "session_items" in read("shop")
        assert jobs.status("shop_v1").status == "stopped"

        back = rollback("shop", progress=False)
        assert back.version == 1
        assert set(read("shop")) == {"session_views", "user_price_5m"}
        assert read("shop") == expected(v1, everything)
        assert jobs.status("shop_v2").status == "stopped" and jobs.status("shop_v1").status == "running"
        statuses = {r.version: r.status for r in lineage.history("shop", "local")}
        assert statuses == {1: "active", 2: "rolled_back"}

        # time travel: values as of the end of the first batch, rebuilt from hashes and the recorded range
        cut = int(frame["event_time_ms"].max())
        past = features_as_of("shop", pd.Timestamp(cut, unit="ms", tz="UTC"))
        want = expected(v1, everything[everything["event_time_ms"] <= cut])
        for name in ("session_views", "user_price_5m"):
            rows = past[past[name].notna()]
            got = {k: online_value(next(f for f in v1.features if f.name == name), v)
                   for k, v in zip(rows["key"], rows[name], strict=True)}
            assert got == want[name]
    finally:
        for j in jobs.list_jobs():
            jobs.stop(j.job)


def production_state() -> dict[str, Any]:
    """Everything a failed promotion must leave as it was: registry, online rows, files, jobs, records."""
    store = open_store()
    registry = {
        kind: sorted((o.name, o.to_proto().SerializeToString(deterministic=True)) for o in objects)
        for kind, objects in {
            "entities": store.list_entities(), "sources": store.list_data_sources(),
            "views": store.list_feature_views(), "services": store.list_feature_services(),
        }.items()
    }  # fmt: skip
    with sqlite3.connect(repo_path() / "online.db") as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table' order by name")]
        rows = {t: sorted(db.execute(f'select * from "{t}"').fetchall()) for t in tables}
    files = {p.relative_to(repo_path()).as_posix(): p.read_bytes()
             for p in sorted(repo_path().rglob("*")) if p.is_file() and p.suffix in (".py", ".parquet")}
    return {
        "registry": registry, "online": rows, "files": files,
        "jobs": [(j.job, j.status) for j in jobs.list_jobs()],
        "records": [(r.version, r.status) for r in lineage.history("shop", "local")],
    }  # fmt: skip


def test_a_failure_at_any_step_leaves_production_unchanged(
    home: Settings, history: tuple[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import FeatureService, FeatureStore

    from workbench.promote import PromotionFailed, offline

    topic, frame = history
    v1, v2 = shop_set(topic), shop_set(topic, extra=True)
    open_gate(v1, frame)
    open_gate(v2, frame)
    real_apply, real_start, real_materialize = FeatureStore.apply, jobs.start, offline.materialize

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    def apply_then_fail(self: FeatureStore, objects: Any, *a: Any, **k: Any) -> Any:
        real_apply(self, objects, *a, **k)
        if any(getattr(o, "name", "") == "shop_v2" for o in objects):
            raise RuntimeError("injected after the registry write")

    def switch_fails(self: FeatureStore, objects: Any, *a: Any, **k: Any) -> Any:
        if any(isinstance(o, FeatureService) and o.name == "shop" for o in objects):
            raise RuntimeError("injected at the switch")
        return real_apply(self, objects, *a, **k)

    def start_then_fail(job: str, *a: Any, **k: Any) -> Any:
        real_start(job, *a, **k)
        raise RuntimeError("injected after the job started")

    injections = {
        "apply": lambda: monkeypatch.setattr(FeatureStore, "apply", apply_then_fail),
        "backfill": lambda: monkeypatch.setattr(offline, "materialize", boom),
        "start job": lambda: monkeypatch.setattr(jobs, "start", start_then_fail),
        "switch": lambda: monkeypatch.setattr(FeatureStore, "apply", switch_fails),
    }
    try:
        assert promote(v1, progress=False).status == "promoted"
        before = production_state()
        planned = promote(v2, dry_run=True, progress=False)
        assert planned.plan is not None and planned.status == "planned"
        text = re.sub(r"\b[0-9a-f]{16}\b", "<hash>", planned.plan.text)
        snapshot("plan_second_version.txt", text.replace(home.feast_project, "<project>").replace(topic, "<topic>"))
        assert "Deleted" not in text  # a new version only adds; the switch is an update
        assert production_state() == before
        for step, inject in injections.items():
            inject()
            with pytest.raises(PromotionFailed, match=f"failed at {step}"):
                promote(v2, progress=False)
            monkeypatch.setattr(FeatureStore, "apply", real_apply)
            monkeypatch.setattr(offline, "materialize", real_materialize)
            monkeypatch.setattr(jobs, "start", real_start)
            assert production_state() == before, step
        assert read("shop") == expected(v1, frame)
        assert promote(v2, progress=False).status == "promoted"  # and a clean retry succeeds
    finally:
        for j in jobs.list_jobs():
            jobs.stop(j.job)
