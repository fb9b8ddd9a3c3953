import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import config
from workbench.bench.bandit import run as bench_run
from workbench.errors import WorkbenchError
from workbench.learning.bandits import (
    PosteriorStore,
    ThompsonRouter,
    UnknownArmError,
    probability_best,
)


@pytest.fixture
def store(tmp_path: Path) -> PosteriorStore:
    return PosteriorStore(f"sqlite:///{tmp_path / 'records.db'}")


def test_posterior_updates_are_beta_bernoulli_counts() -> None:
    r = ThompsonRouter("r", ["a", "b"], prior=(2.0, 3.0), store=None, seed=1)
    for reward in (1, 0, 0, 1, 1):
        r.update("a", reward)
    r.update_many("b", 7, 100)
    assert r.posterior("a") == (5.0, 5.0)
    assert r.posterior("b") == (9.0, 96.0)
    with pytest.raises(UnknownArmError):
        r.update("c", 1)
    with pytest.raises(WorkbenchError):
        r.update_many("a", 3, 2)


def test_posteriors_survive_a_restart(store: PosteriorStore) -> None:
    with ThompsonRouter("ranking", ["v1", "v2"], store=store, flush_every_s=3600) as r:
        r.update_many("v1", 10, 200)
        r.update_many("v2", 30, 200)
        r.remove("v1")
        r.add("v3")
    # a new process: only the store is shared
    again = ThompsonRouter("ranking", store=store)
    assert again.arms == ["v2", "v3"]
    assert again.posterior("v1") == (11.0, 191.0)  # retired, kept
    assert again.posterior("v2") == (31.0, 171.0)
    assert again.posterior("v3") == (1.0, 1.0)
    again.add("v1")  # back in service with what it had learned
    assert again.posterior("v1") == (11.0, 191.0) and "v1" in again.arms


def test_settings_store_follows_workbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    config.reload()
    try:
        with ThompsonRouter("home", ["a"]) as r:
            r.update("a", 1)
        assert ThompsonRouter("home").posterior("a") == (2.0, 1.0)
        assert (tmp_path / "workbench.db").exists()
    finally:
        monkeypatch.undo()
        config.reload()


def test_two_workers_sharing_a_store_add_up(store: PosteriorStore) -> None:
    w1 = ThompsonRouter("shared", ["a"], store=store, flush_every_s=3600)
    w2 = ThompsonRouter("shared", ["a"], store=store, flush_every_s=3600)
    w1.update_many("a", 5, 50)
    w2.update_many("a", 7, 70)
    w1.flush()
    w2.flush()
    w1.flush()  # reads w2's increments back
    assert w1.posterior("a") == w2.posterior("a") == (13.0, 109.0)


def test_concurrent_updates_are_all_counted(store: PosteriorStore) -> None:
    r = ThompsonRouter("threads", ["a", "b"], store=store, flush_every_s=0.0, seed=3)

    def work(k: int) -> None:
        for i in range(300):
            arm = r.choose()
            r.update(arm, float((i + k) % 4 == 0))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    total = sum(a + b - 2 for a, b in r.posteriors().values())
    assert total == 4 * 300
    stored = ThompsonRouter("threads", store=store).posteriors()
    assert stored == r.posteriors()


def test_routing_converges_to_the_better_arm() -> None:
    rng = np.random.default_rng(0)
    ctr = {"old": 0.04, "new": 0.08}
    r = ThompsonRouter("sim", list(ctr), store=None, seed=0)
    served = {k: 0 for k in ctr}
    for i in range(20_000):
        arm = r.choose()
        r.update(arm, float(rng.random() < ctr[arm]))
        if i >= 15_000:
            served[arm] += 1
    assert served["new"] / 5_000 > 0.9
    assert r.probability_best()["new"] > 0.99


def test_arms_added_and_removed_at_runtime() -> None:
    r = ThompsonRouter("rt", ["a"], store=None, seed=0)
    assert {r.choose() for _ in range(20)} == {"a"}
    r.add("b", prior=(1, 1000))  # a pessimistic prior: b barely gets traffic at first
    r.remove("a")
    assert {r.choose() for _ in range(20)} == {"b"}
    r.remove("b")
    with pytest.raises(WorkbenchError, match="no live arms"):
        r.choose()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 4000)), min_size=2, max_size=5))
def test_probability_best_is_a_distribution_matching_monte_carlo(counts: list[tuple[int, int]]) -> None:
    a = np.array([1 + min(c, n) for c, n in counts], dtype=float)
    b = np.array([1 + n - min(c, n) for c, n in counts], dtype=float)
    exact = probability_best(a, b)
    assert abs(exact.sum() - 1) < 1e-3
    mc = probability_best(a, b, draws=100_000, seed=0)
    assert np.abs(exact - mc).max() < 0.01


def test_bandit_bench_json_shape() -> None:
    out = bench_run(seeds=12, arm_counts=(2, 3), check_every=200, progress=False)
    assert set(out["scenarios"]) == {"2_arms", "3_arms"}
    two = out["scenarios"]["2_arms"]
    assert two["ab_test"]["samples_per_arm"] == 31234  # alpha 0.05 two-sided, power 0.8, 5% vs 5.5%
    assert out["scenarios"]["3_arms"]["ab_test"]["alpha_per_comparison"] == pytest.approx(0.025)
    assert out["baseline"] == 2 * 31234 and out["ratio"] == two["ratio"] > 0
    assert 0 <= two["thompson"]["correct_decisions"] <= 1
    assert two["thompson"]["mean_cumulative_regret_clicks"] > 0


def test_bench_cli_rejects_bad_arms_in_one_line() -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("workbench"))
    proc = subprocess.run([exe, "bench", "bandit", "--arms", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: --arms needs arm counts of at least 2"]
