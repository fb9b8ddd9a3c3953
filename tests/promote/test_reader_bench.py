"""``workbench bench promote`` on a tiny workload: every figure is there and sane (no timings asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import Settings, reload

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_bench_promote_returns_every_figure(broker: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.bench.promote import run

    monkeypatch.setenv("WORKBENCH_REDIS_URL", redis_url)
    home = reload().home
    try:
        result = run(rates=[500], seconds=2, features=6, reads=200)
    finally:
        monkeypatch.undo()
        reload()
    json.dumps(result)  # printable as the CLI prints it
    assert set(result) == {"benchmark", "redis", "bootstrap", "machine", "read_latency", "freshness"}
    assert reload().home == home  # the private home is gone again

    latency = result["read_latency"]
    assert latency["values_equal"] is True  # the fast reader returned exactly Feast's values
    assert latency["features"] == 6 and latency["reads_each"] == 200
    for who in ("workbench", "feast"):
        assert 0 < latency[f"{who}_p50_us"] <= latency[f"{who}_p99_us"]
    assert latency["ratio_p99"] > 0 and latency["target_ratio_p99"] == 0.5

    fresh = result["freshness"]
    assert fresh["commit_interval_s"] == reload().job_commit_interval_s and fresh["exactly_once"] is True
    (one,) = fresh["runs"]
    assert one["rate"] == 500
    for who in ("job", "baseline"):
        r = one[who]
        # every sampled running count became readable: the job and the baseline counted every event
        assert r["unseen"] == 0 and r["samples"] >= 2 * 500 // max(1, 500 // 200)
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["achieved_events_per_s"] > 0
        assert r["consumer_cpu_s"] is None or r["consumer_cpu_s"] >= 0
    assert math.isfinite(one["ratio_p99"]) and fresh["target_met"] is None  # no 5k run here


def test_bad_rates_are_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([str(Path(sys.executable).with_name("workbench")), "bench", "promote", "--rates", "5000,fast"],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "--rates takes integers" in res.stderr, res.stderr


def test_an_unreachable_redis_is_replaced_by_a_private_one() -> None:
    """The benches run on the configured Redis when it answers, else on their own redis-server, stopped after."""
    from workbench.stack.redis import answers, redis_for

    with redis_for("redis://127.0.0.1:1/0") as url:
        assert url != "redis://127.0.0.1:1/0" and answers(url)
    assert not answers(url)
