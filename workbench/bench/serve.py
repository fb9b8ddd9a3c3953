"""``workbench bench serve``: recommendation latency and throughput, with the Redis feature store in the path.

Set-up, all private to the run (a temporary ``WORKBENCH_HOME`` and Feast
project, fresh topics): a few simulated hours are produced to Kafka, a
recommender is fitted and saved to the model store, the item and session
feature sets are promoted to the production profile (Redis; the configured
one when it answers, else a private ``redis-server``), and ``workbench serve
--workers N`` starts. A load generator in a separate process
(:mod:`workbench.bench.loadgen`) then measures, open loop:

* ``GET /recommendations`` (k=20, sessions from the history) at a fixed rate
  for ``seconds``: p50 / p95 / p99 and errors;
* the same for ``GET /noop`` of the same server (the HTTP stack's floor), and the ratio;
* the highest rate of a ladder at which p99 <= 50 ms with 0 errors, for both.

Every impression is logged to Kafka as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

P99_BUDGET_MS = 50.0


@contextmanager
def _private_env(values: dict[str, str]) -> Iterator[None]:
    from workbench.config import reload

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reload()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload()


def prepare(topic: str, hours: float, seed: int) -> tuple[list[str], dict[str, Any]]:
    """History to Kafka, a saved model, promoted feature sets; returns sessions to ask for and facts."""
    from workbench.promote import promote
    from workbench.recommender.artifacts import save
    from workbench.recommender.feature_sets import item_features, session_features
    from workbench.recommender.recommender import Recommender
    from workbench.streams.kafka import ensure_topic
    from workbench.streams.produce import produce_events
    from workbench.streams.simulator import ShopSimulator
    from workbench.taps.replay import replay

    ensure_topic(topic)
    sim = ShopSimulator(seed=seed)
    now_ms = int(time.time() * 1000)
    produce_events(sim.events(start_ms=now_ms - int(hours * 3_600_000), duration_s=hours * 3600 - 60), topic)
    history = replay(topic)
    rec = Recommender(max_train_prefixes=10_000).fit(history, topic=topic)
    version = save(rec)
    for fs in (item_features(source=topic), session_features(source=topic)):
        promote(fs, force=True, progress=False)
    acted = history[history["event_type"] != "impression"]
    sizes = acted.groupby("session_id").size()
    sessions = [str(s) for s in sizes[sizes >= 2].index[-2000:]]
    return sessions, {"events": len(history), "items": len(rec.embeddings), "model": version.ref,
                      "sessions_asked": len(sessions)}  # fmt: skip


def _load(port: int, paths: list[str], rate: float, seconds: float) -> dict[str, Any]:
    spec = {"host": "127.0.0.1", "port": port, "paths": paths, "rate": rate, "duration_s": seconds}
    out = subprocess.run([sys.executable, "-m", "workbench.bench.loadgen", json.dumps(spec)], capture_output=True,
                         text=True, timeout=seconds + 120, check=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ok(r: dict[str, Any]) -> bool:
    return bool(r["errors"] == 0) and r["p99_ms"] <= P99_BUDGET_MS and r["completed"] == r["sent"]


def _ladder(port: int, paths: list[str], rates: list[float], step_s: float) -> dict[str, Any]:
    steps, best = [], 0.0
    for rate in rates:
        r = _load(port, paths, rate, step_s)
        steps.append({k: r[k] for k in ("rate", "achieved_rps", "p50_ms", "p99_ms", "errors")})
        if not _ok(r):
            break
        best = rate
    return {"max_rps_p99_le_50ms": best, "steps": steps}


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    import httpx

    from workbench.errors import WorkbenchError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WorkbenchError(f"workbench serve exited with {proc.returncode} before answering")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise WorkbenchError("workbench serve did not answer /health in time")


def run(seconds: float = 60.0, rate: float = 200.0, workers: int = 2, step_s: float = 15.0,
        rates: tuple[float, ...] = (300, 400, 500, 600, 700, 800, 1000, 1200), hours: float = 6.0,
        seed: int = 3) -> dict[str, Any]:  # fmt: skip
    from workbench import jobs
    from workbench.config import settings
    from workbench.stack.redis import free_port, redis_for
    from workbench.streams.kafka import delete_topics

    home = tempfile.mkdtemp(prefix="wb-bench-serve-")
    topic = f"bench.serve.{uuid.uuid4().hex[:8]}"
    feedback = f"{topic}.feedback"
    result: dict[str, Any] = {"workers": workers, "cores": os.cpu_count(), "p99_budget_ms": P99_BUDGET_MS}
    with redis_for(settings().redis_url) as url, _private_env({
        "WORKBENCH_HOME": home, "WORKBENCH_ENV": "production", "WORKBENCH_REDIS_URL": url,
        "WORKBENCH_FEAST_PROJECT": f"bench{uuid.uuid4().hex[:8]}",
    }):  # fmt: skip
        proc = None
        try:
            sessions, facts = prepare(topic, hours, seed)
            result["setup"] = facts
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port),
                                     "--workers", str(workers), "--env", "production", "--events-topic", topic,
                                     "--feedback-topic", feedback],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            _wait_healthy(port, proc)
            recs = [f"/recommendations?session_id={s}&k=20" for s in sessions]
            # warm-up at the steady rate over every session: readers open, every item row is cached once,
            # the first collections run; reported, not part of the steady figure
            warm = _load(port, recs, rate, 15)
            result["warmup"] = {k: warm[k] for k in ("rate", "duration_s", "p50_ms", "p99_ms", "errors")}
            result["recommendations"] = _load(port, recs, rate, seconds)
            result["noop"] = _load(port, ["/noop"], rate, min(seconds, 20.0))
            result["ratio_p50_recommendations_over_noop"] = round(
                result["recommendations"]["p50_ms"] / max(result["noop"]["p50_ms"], 1e-9), 2)
            result["recommendations_max"] = _ladder(port, recs, list(rates), step_s)
            result["noop_max"] = _ladder(port, ["/noop"], list(rates) + [1500, 2000, 3000], step_s)
            best = result["recommendations_max"]["max_rps_p99_le_50ms"]
            result["ratio_max_rps_noop_over_recommendations"] = (
                round(result["noop_max"]["max_rps_p99_le_50ms"] / best, 2) if best else None)
            result["target_met"] = result["recommendations_max"]["max_rps_p99_le_50ms"] >= 500
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for j in jobs.list_jobs():
                jobs.stop(j.job)
            try:
                delete_topics([topic, feedback])
            except Exception:  # best effort: the topics are private to this run
                pass
    shutil.rmtree(home, ignore_errors=True)
    return result
