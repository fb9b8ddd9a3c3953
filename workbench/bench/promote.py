"""``workbench bench promote``: online read latency and freshness on the Redis profile, each with a baseline.

Everything runs in a private Workbench home and Feast project under a temp
dir (its own definitions, job state and Redis keys, all removed at the end),
against the configured Redis and the real broker (started, and then
stopped, only if it was not running).

* **read latency**: one entity x ``features`` features (Int64, Float64,
  String and Array(String) values, ``read_entities`` entities written through
  Feast). :class:`workbench.promote.reader.OnlineReader` and Feast's own
  ``get_online_features(features=<FeatureService>, ...).to_dict()`` read the
  same rows of the same Redis, in alternating rounds after a warm-up; p50 and
  p99 per read. Both are checked to return equal values.
* **freshness**: a paced producer sends ``rate`` events/s for ``seconds``;
  each event's ``event_time_ms`` is its wall-clock send time and its key a
  session out of :data:`SESSIONS`. The real feature job (a JobSpec, started by
  :func:`workbench.jobs.start`: a supervised worker process, exactly-once,
  checkpoint and online write every ``job_commit_interval_s``, no
  ``features.<set>`` output: ``feature_topic=False``) keeps a running
  count per session (:data:`COUNT_WINDOW_MS`: one tumbling window for the
  whole run). The baseline is a plain confluent-kafka consumer in its own
  process that ``HINCRBY``\\ s each event's session count in Redis, pipelined
  per poll batch. A poller samples :data:`SAMPLES_PER_S` events/s with their
  expected running count and reads them back (the fast reader for the job,
  ``HMGET`` for the baseline) until the count reaches it: send-to-readable
  latency. Samples still unseen when the drain deadline passes count as the
  time waited so far (``unseen`` says how many).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from workbench.config import reload, settings

COUNT_WINDOW_MS = 2**40  # a tumbling window of ~35 years: the count is a running count for the whole run
SESSIONS = 2_000
SAMPLES_PER_S = 200
READ_ENTITIES = 1_000
ROUNDS = 10
# how long samples may stay unseen after the producer stops: a consumer that fell behind drains
# its backlog here (and not during the next measurement)
DRAIN_S = 120.0


def _say(msg: str) -> None:
    print(f"[bench promote] {msg}", file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


# -- the private environment ----------------------------------------------------------


@contextlib.contextmanager
def broker_running() -> Iterator[None]:
    """The real broker: the running one, or one started here and stopped at the end."""
    from workbench.stack.broker import Broker

    b = Broker(settings())
    started = settings().embedded and not b.status().running
    b.up()
    try:
        yield
    finally:
        if started:
            b.down()


@contextlib.contextmanager
def private_home(redis_url: str, commit_interval_s: float | None = None) -> Iterator[str]:
    """A temp WORKBENCH_HOME on the production profile with its own Feast project; yields the project."""
    home = tempfile.mkdtemp(prefix="wb-bench-promote-")
    project = f"bench_{uuid.uuid4().hex[:10]}"
    env = {"WORKBENCH_HOME": home, "WORKBENCH_ENV": "production", "WORKBENCH_FEAST_PROJECT": project,
           "WORKBENCH_REDIS_URL": redis_url}  # fmt: skip
    if commit_interval_s is not None:
        env["WORKBENCH_JOB_COMMIT_INTERVAL_S"] = str(commit_interval_s)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the job's supervisor and worker processes inherit it
    reload()
    try:
        yield project
    finally:
        _drop_redis_keys(redis_url, project)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload()
        shutil.rmtree(home, ignore_errors=True)


def _drop_redis_keys(url: str, project: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{project}", count=1000)) + [f"bench:{project}:baseline".encode()]
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()


def _apply(fs: Any) -> Any:
    """Version 1 of ``fs`` and the service ``<set>`` in the private production repo; the store."""
    from workbench.promote.store import open_store, set_service, version_objects

    store = open_store("production")
    objs = version_objects(fs, 1)
    store.apply([*objs.all, set_service(fs.name, objs.views, 1)])
    return store


# -- read latency -------------------------------------------------------------------


def read_frame(features: list[Any], n: int, seed: int = 0) -> Any:
    """``n`` users' rows with random values of each feature's online type."""
    import pandas as pd

    from workbench.promote.naming import feast_type

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"user_id": [f"u{i}" for i in range(n)]}
    for f in features:
        kind = feast_type(f)
        if kind == "Int64":
            cols[f.name] = rng.integers(0, 10**6, n).tolist()
        elif kind == "Float64":
            cols[f.name] = rng.normal(50, 20, n).round(4).tolist()
        elif kind == "Array(String)":
            cols[f.name] = [[f"i{j}" for j in rng.integers(0, 5000, 5)] for _ in range(n)]
        else:
            cols[f.name] = [f'[["i{a}",{b}]]' for a, b in zip(rng.integers(0, 5000, n), rng.integers(1, 9, n), strict=True)]
    frame = pd.DataFrame(cols)
    frame["event_timestamp"] = pd.Timestamp.now(tz="UTC")
    return frame


def read_latency(features: int, reads: int, entities: int = READ_ENTITIES) -> dict[str, Any]:
    """Workbench's reader vs Feast's get_online_features: one entity x ``features`` features."""
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import USER, Feature, FeatureSet
    from workbench.promote.reader import OnlineReader

    kinds = [agg.Count(), agg.Sum("price"), agg.Mean("price"), agg.LastN("item_id", n=5), agg.TopK("item_id", k=3)]
    fs = FeatureSet("benchread", [Feature(f"f{i:02d}", USER, win.Tumbling(size_ms=3_600_000), kinds[i % len(kinds)])
                                  for i in range(features)])  # fmt: skip
    store = _apply(fs)
    store.write_to_online_store("benchread_v1", read_frame(fs.features, entities), allow_registry_cache=False)
    service = store.get_feature_service("benchread")  # as production code does: fetched once
    reader = OnlineReader.for_service("benchread")

    def feast_read(user: str) -> dict[str, Any]:
        return dict(store.get_online_features(features=service, entity_rows=[{"user_id": user}]).to_dict())

    rng = np.random.default_rng(1)
    users = [f"u{i}" for i in rng.integers(0, entities, reads + 400)]
    equal = all({k: v[0] for k, v in feast_read(u).items()} == reader.get({"user_id": u}) for u in users[:50])
    for u in users[:200]:  # warm-up: connections, caches, registry
        feast_read(u)
        reader.get({"user_id": u})
    times: dict[str, list[float]] = {"workbench": [], "feast": []}
    calls: dict[str, Callable[[str], Any]] = {"workbench": lambda u: reader.get({"user_id": u}), "feast": feast_read}
    per_round = max(1, reads // ROUNDS)
    for r in range(ROUNDS):
        batch = users[200 + r * per_round : 200 + (r + 1) * per_round]
        for name in ("workbench", "feast") if r % 2 == 0 else ("feast", "workbench"):
            call, out = calls[name], times[name]
            gc.collect()
            for u in batch:
                t0 = time.perf_counter_ns()
                call(u)
                out.append((time.perf_counter_ns() - t0) / 1000)
    reader.close()
    wb, fe = times["workbench"], times["feast"]
    return {
        "features": features,
        "entities": entities,
        "reads_each": len(wb),
        "values_equal": equal,
        "workbench_p50_us": _ms(wb, 50),
        "workbench_p99_us": _ms(wb, 99),
        "feast_p50_us": _ms(fe, 50),
        "feast_p99_us": _ms(fe, 99),
        "ratio_p99": round(_ms(wb, 99) / _ms(fe, 99), 3),
        "ratio_p50": round(_ms(wb, 50) / _ms(fe, 50), 3),
        "target_ratio_p99": 0.5,
    }


# -- freshness ------------------------------------------------------------------------


def baseline_consumer(topic: str, redis_url: str, hash_name: str, group: str) -> None:
    """The baseline: consume, ``HINCRBY`` each event's session count, pipelined per poll batch; until SIGTERM.

    It runs in its own process (``python -m workbench.bench.promote TOPIC REDIS_URL HASH GROUP``), as the
    job does.
    """
    import signal

    import orjson
    import redis
    from confluent_kafka import Consumer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    c = Consumer({**settings().kafka_config(), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "fetch.wait.max.ms": 10})  # fmt: skip
    c.subscribe([topic])
    r = redis.Redis.from_url(redis_url)
    try:
        while not stop.is_set():
            msgs = c.consume(1000, timeout=0.05)
            if not msgs:
                continue
            pipe = r.pipeline(transaction=False)
            for m in msgs:
                if m.error() is None:
                    pipe.hincrby(hash_name, orjson.loads(m.value())["session_id"], 1)
            pipe.execute()
    finally:
        c.close()
        r.close()


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process used so far; None when it cannot be read (not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def paced_run(topic: str, rate: int, seconds: float, prefix: str, lookup: Callable[[list[str]], list[int]],
              consumer_pid: int | None = None, trace: list[tuple[float, float]] | None = None,
              ) -> dict[str, Any]:  # fmt: skip
    """Send ``rate`` events/s for ``seconds``; the send-to-readable latency of sampled events.

    With ``consumer_pid``, the consumer process's CPU seconds over the run (until
    every sample was seen) are reported too: a consumer near one CPU second per
    second cannot keep up, and its latency grows with the backlog. ``trace``
    collects (send time ms, latency ms) of every seen sample, for a timeline.
    """
    cpu_before = cpu_s(consumer_pid)
    import orjson

    from workbench.streams import kafka

    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    total = int(rate * seconds)
    choice = rng.integers(0, SESSIONS, total)
    keys = [f"{prefix}-s{i}" for i in range(SESSIONS)]
    counts = [0] * SESSIONS
    every = max(1, rate // SAMPLES_PER_S)
    samples: deque[tuple[str, int, float]] = deque()
    latencies: list[float] = []
    done = threading.Event()
    deadline = [float("inf")]
    unseen = [0]
    last_seen = [0.0]

    def poll() -> None:
        pending: list[tuple[str, int, float]] = []
        while True:
            while samples:
                pending.append(samples.popleft())
            if pending:
                values = lookup([k for k, _, _ in pending])
                now = time.time() * 1000
                still = []
                for (k, want, sent), got in zip(pending, values, strict=True):
                    if (got or 0) >= want:
                        latencies.append(now - sent)
                        last_seen[0] = time.monotonic()
                        if trace is not None:
                            trace.append((sent, now - sent))
                    else:
                        still.append((k, want, sent))
                pending = still
            if done.is_set() and not samples and (not pending or time.monotonic() > deadline[0]):
                now = time.time() * 1000
                latencies.extend(now - sent for _, _, sent in pending)  # censored: waited this long so far
                unseen[0] = len(pending)
                return
            time.sleep(0.005)

    poller = threading.Thread(target=poll, name="freshness-poller", daemon=True)
    poller.start()
    p = kafka.producer(None, **{"queue.buffering.max.messages": 1_000_000})
    started = time.perf_counter()
    i = 0
    while i < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while i < due:
            s = int(choice[i])
            counts[s] += 1
            sent = time.time() * 1000
            event = {"event_id": f"{prefix}-{i}", "event_type": "view", "event_time_ms": int(sent),
                     "user_id": "u", "session_id": keys[s], "item_id": "i1", "category": "c", "price": 1.0}
            p.produce(topic, orjson.dumps(event), keys[s].encode())
            if i % every == 0:
                samples.append((keys[s], counts[s], sent))
            i += 1
        p.poll(0)
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    p.flush(30)
    stopped = time.monotonic()
    deadline[0] = stopped + DRAIN_S
    done.set()
    poller.join()
    cpu_after = cpu_s(consumer_pid)
    used = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return {
        "achieved_events_per_s": round(total / elapsed),
        "samples": len(latencies),
        "unseen": unseen[0],
        "p50_ms": _ms(latencies, 50),
        "p99_ms": _ms(latencies, 99),
        "max_ms": round(max(latencies), 1) if latencies else None,
        # from the producer's last send until the last sample was readable: the backlog left behind
        "drain_s": round(max(0.0, last_seen[0] - stopped), 2),
        "consumer_cpu_s": used,
        "consumer_cpu_ms_per_1k_events": None if used is None else round(used * 1e6 / total, 1),
    }


def _wait_visible(topic: str, key: str, lookup: Callable[[list[str]], list[int]], timeout_s: float) -> float:
    """Send one event a second until its count is readable (the consumer is up); seconds waited."""
    import orjson

    from workbench.errors import WorkbenchError
    from workbench.streams import kafka

    p = kafka.producer(None)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < timeout_s:
        event = {"event_id": f"{key}-{sent}", "event_type": "view", "event_time_ms": int(time.time() * 1000),
                 "user_id": "u", "session_id": key, "item_id": "i1", "category": "c", "price": 1.0}
        p.produce(topic, orjson.dumps(event), key.encode())
        p.flush(10)
        sent += 1
        for _ in range(20):
            if (lookup([key])[0] or 0) >= 1:
                return time.monotonic() - started
            time.sleep(0.05)
    raise WorkbenchError(f"nothing consumed from {topic} within {timeout_s:.0f} s; see `workbench jobs logs`")


def freshness(rates: list[int], seconds: float, redis_url: str, warmup_s: float = 3.0) -> dict[str, Any]:
    """The real feature job vs a plain consumer, each rate in turn (job first, then baseline)."""
    import subprocess

    import redis

    from workbench import jobs
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import SESSION, Feature, FeatureSet, save
    from workbench.jobs import spec as job_spec
    from workbench.promote.reader import OnlineReader
    from workbench.promote.store import repo_path
    from workbench.streams import kafka

    s = settings()
    run_id = uuid.uuid4().hex[:8]
    topic_job, topic_base = f"bench.promote.job.{run_id}", f"bench.promote.baseline.{run_id}"
    for t in (topic_job, topic_base):
        kafka.ensure_topic(t, partitions=s.partitions)
    name = f"fresh_{run_id}"  # unique: its job, views and features.<set> topic are this run's alone
    fs = FeatureSet(name, [Feature("n", SESSION, win.Tumbling(size_ms=COUNT_WINDOW_MS), agg.Count(),
                                           source=topic_job)])  # fmt: skip
    _apply(fs)
    save(fs.features)
    view = f"{name}_v1"
    spec = job_spec.JobSpec(job=view, feature_set=name, version=1, feature_hashes=[f.hash for f in fs.features],
                            env="production", repo_path=str(repo_path("production")), views={"n": view},
                            join_keys={view: "session_id"}, exactly_once=True,
                            feature_topic=False)  # fmt: skip  # the online store is what is measured
    job_spec.write(spec)
    hash_name = f"bench:{s.feast_project}:baseline"
    base_group = f"bench-baseline-{run_id}"
    base_proc: subprocess.Popen[bytes] | None = None
    reader = OnlineReader.for_service(name, refresh_s=None)
    client = redis.Redis.from_url(redis_url)

    def job_lookup(keys: list[str]) -> list[int]:
        return [row["n"] for row in reader.get_many([{"session_id": k} for k in keys])]

    def base_lookup(keys: list[str]) -> list[int]:
        return [int(v) if v else 0 for v in client.hmget(hash_name, keys)]

    runs = []
    try:
        _say(f"starting job {spec.job} (commit interval {s.job_commit_interval_s} s)")
        jobs.start(spec.job)
        waited = _wait_visible(topic_job, "warm-job", job_lookup, timeout_s=180)
        _say(f"job consuming after {waited:.1f} s")
        base_proc = subprocess.Popen([sys.executable, "-m", "workbench.bench.promote", topic_base, redis_url,
                                      hash_name, base_group], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
        _wait_visible(topic_base, "warm-base", base_lookup, timeout_s=120)
        replicas = jobs.status(spec.job).replicas
        consumers = (("job", topic_job, job_lookup, replicas[0].pid if replicas else None),
                     ("baseline", topic_base, base_lookup, base_proc.pid))  # fmt: skip
        for name, topic, lookup, _ in consumers:
            paced_run(topic, min(rates), warmup_s, f"warm-{name}", lookup)
        for rate in rates:
            run: dict[str, Any] = {"rate": rate}
            for name, topic, lookup, pid in consumers:
                _say(f"{rate} events/s for {seconds:g} s: {name}")
                run[name] = paced_run(topic, rate, seconds, f"r{rate}-{name}", lookup, pid)
                _say(f"  p50 {run[name]['p50_ms']} ms, p99 {run[name]['p99_ms']} ms, unseen {run[name]['unseen']}")
            run["ratio_p99"] = round(run["job"]["p99_ms"] / max(run["baseline"]["p99_ms"], 1e-9), 2)
            runs.append(run)
    finally:
        jobs.stop(spec.job)
        if base_proc is not None:
            base_proc.terminate()
            try:
                base_proc.wait(15)
            except subprocess.TimeoutExpired:
                base_proc.kill()
                base_proc.wait()
        reader.close()
        client.close()
        _drop_topics([topic_job, topic_base, fs.topic], [spec.consumer_group, base_group])
    at_5k = [r for r in runs if r["rate"] == 5000]
    return {
        "feature": "running count per session (one tumbling window), Int64 in Feast's Redis format",
        "commit_interval_s": s.job_commit_interval_s,
        "exactly_once": True,
        "sessions": SESSIONS,
        "samples_per_s": SAMPLES_PER_S,
        "seconds_per_rate": seconds,
        "runs": runs,
        "target": "job p99 <= 1000 ms at 5000 events/s",
        "target_met": (at_5k[0]["job"]["p99_ms"] <= 1000 and at_5k[0]["job"]["unseen"] == 0) if at_5k else None,
    }


def _drop_topics(topics: list[str], groups: list[str]) -> None:
    """Cleanup of a bench run; a failure here never masks the run's own result or error."""
    from workbench.streams import kafka

    for group in groups:
        with contextlib.suppress(Exception):
            kafka.delete_consumer_group_and_topics(group)
    with contextlib.suppress(Exception):
        present = set(kafka.list_topics())
        gone = [t for name in topics for t in (name, f"{name}.dlq") if t in present]
        if gone:
            kafka.delete_topics(gone)


# -- the whole benchmark --------------------------------------------------------------


def run(rates: list[int], seconds: float, features: int, reads: int,
        commit_interval_s: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Both benchmarks on the configured Redis (a private redis-server when none answers) and the real broker."""
    from workbench.stack.redis import redis_for

    load = os.getloadavg()
    with broker_running(), redis_for(settings().redis_url) as redis_url:
        bootstrap = settings().bootstrap
        with private_home(redis_url, commit_interval_s):
            _say(f"read latency: one entity x {features} features, {reads} reads each")
            latency = read_latency(features, reads)
            _say(f"  workbench p99 {latency['workbench_p99_us']} us, feast p99 {latency['feast_p99_us']} us")
            fresh = freshness(rates, seconds, redis_url)
    return {
        "benchmark": "promote",
        "redis": redis_url,
        "bootstrap": bootstrap,
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "read_latency": latency,
        "freshness": fresh,
    }


if __name__ == "__main__":
    baseline_consumer(*sys.argv[1:5])
