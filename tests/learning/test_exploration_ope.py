import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.learning.exploration import LinearThompson, fill_list
from workbench.learning.ope import LoggedFeedback, dr, ips, snips


@settings(max_examples=30, deadline=None)
@given(n_candidates=st.integers(10, 80), k=st.integers(1, 10), n_explore=st.integers(0, 4),
       epsilon=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_propensities_are_probabilities_summing_to_one_per_slot(n_candidates: int, k: int, n_explore: int,
                                                                 epsilon: float, seed: int) -> None:
    n_explore = min(n_explore, k)
    rng = np.random.default_rng(seed)
    bandit = LinearThompson(dim=4, epsilon=epsilon, draws=64, seed=seed)
    bandit.update_many(rng.normal(size=(30, 4)), rng.random(30) < 0.2)
    X = rng.normal(size=(n_candidates, 4))
    slate = fill_list(rng.normal(size=n_candidates), X, k=k, n_explore=n_explore, bandit=bandit)
    assert len(set(slate.items.tolist())) == k  # no item twice
    assert (slate.propensities[~slate.explored] == 1.0).all()
    assert len(slate.slot_distributions) == n_explore == int(slate.explored.sum())
    shown_before: set[int] = set(slate.items[~slate.explored].tolist())
    for pos, dist in zip(np.flatnonzero(slate.explored), slate.slot_distributions, strict=True):
        assert dist.shape == (n_candidates,) and (dist >= 0).all() and dist.sum() == pytest.approx(1.0)
        assert all(dist[i] == 0 for i in shown_before)  # already in the list: cannot be picked
        item = int(slate.items[pos])
        assert 0 < slate.propensities[pos] == dist[item] <= 1
        if epsilon > 0:
            free = [i for i in range(n_candidates) if i not in shown_before]
            assert dist[free].min() >= epsilon / len(free) - 1e-12
        shown_before.add(item)
    rows = slate.log_rows([f"i{i}" for i in range(n_candidates)])
    assert [r["position"] for r in rows] == list(range(1, k + 1))


def test_logged_propensities_match_the_observed_choice_frequencies() -> None:
    bandit = LinearThompson(dim=2, draws=200, epsilon=0.1, seed=0)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    counts = np.zeros(4)
    mean_p = np.zeros(4)
    runs = 4000
    for _ in range(runs):
        d = bandit.choose(X, 1)[0]
        counts[d.index] += 1
        mean_p += d.distribution
    # the logged distribution is what the choice is drawn from
    assert np.abs(counts / runs - mean_p / runs).max() < 0.03


def test_linear_thompson_learns_the_reward_direction() -> None:
    rng = np.random.default_rng(3)
    theta = np.array([1.0, -0.5, 0.0])
    X = rng.normal(size=(3000, 3))
    bandit = LinearThompson(dim=3, seed=0)
    bandit.update_many(X, X @ theta + 0.3 * rng.normal(size=3000))
    assert np.abs(bandit.mean() - theta).max() < 0.05
    with pytest.raises(WorkbenchError):
        bandit.choose(X[:2], 3)


def _synthetic(n: int, seed: int) -> tuple[LoggedFeedback, np.ndarray, np.ndarray]:
    """Logged feedback of a softmax logging policy; true reward probabilities per (row, action)."""
    rng = np.random.default_rng(seed)
    d, k = 5, 4
    ctx = rng.normal(size=(n, d))
    theta = rng.normal(size=(d, k)) * 0.8
    p_reward = 1 / (1 + np.exp(-(ctx @ theta - 1.0)))
    logits = ctx @ rng.normal(size=(d, k)) * 0.5
    logging = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    actions = (logging.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
    rewards = (rng.random(n) < p_reward[np.arange(n), actions]).astype(float)
    logged = LoggedFeedback(contexts=ctx, actions=actions, rewards=rewards,
                            propensities=logging[np.arange(n), actions], n_actions=k)
    return logged, p_reward, logging


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ips_and_dr_recover_a_known_policy_value(seed: int) -> None:
    logged, p_reward, _ = _synthetic(20_000, seed)
    # target 1: greedy on a noisy copy of the truth (deterministic); target 2: a softmax
    greedy = (p_reward + np.random.default_rng(seed + 10).normal(0, 0.05, p_reward.shape)).argmax(axis=1)
    soft = np.exp(3 * p_reward) / np.exp(3 * p_reward).sum(axis=1, keepdims=True)
    n = len(logged)
    for target, truth in ((greedy, p_reward[np.arange(n), greedy].mean()), (soft, (soft * p_reward).sum(1).mean())):
        estimates = [ips(logged, target), snips(logged, target), dr(logged, target)]
        for est in estimates:
            assert abs(est.value - truth) < max(3.5 * est.stderr, 0.005), (est, truth)
            assert abs(est.value - truth) < 0.03
        assert estimates[2].stderr <= estimates[0].stderr  # the reward model takes variance out


def test_logging_policy_value_is_the_mean_reward_and_frames_work() -> None:
    logged, _, logging = _synthetic(2_000, 5)
    assert ips(logged, logging).value == pytest.approx(logged.rewards.mean())
    df = pd.DataFrame({"x1": logged.contexts[:, 0], "x2": logged.contexts[:, 1],
                       "item": np.array(["a", "b", "c", "d"])[logged.actions],
                       "click": logged.rewards, "p": logged.propensities})
    framed = LoggedFeedback.from_frame(df, context=["x1", "x2"], action="item", reward="click", propensity="p")
    assert framed.action_labels == ["a", "b", "c", "d"] and (framed.actions == logged.actions).all()
    vectors = df.assign(ctx=list(logged.contexts)).drop(columns=["x1", "x2"])
    assert LoggedFeedback.from_frame(vectors, context="ctx", action="item", reward="click",
                                     propensity="p").contexts.shape == (2_000, 5)
    with pytest.raises(WorkbenchError, match="propensities"):
        LoggedFeedback(contexts=np.zeros((2, 1)), actions=[0, 1], rewards=[1, 0], propensities=[0.5, 0.0])
    with pytest.raises(WorkbenchError, match="sum to 1"):
        ips(logged, np.full((2_000, 4), 0.5))
