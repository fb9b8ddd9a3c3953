import numpy as np
from river import linear_model

from workbench.bench.exploration import run as exploration_run
from workbench.bench.retrain import run as retrain_run
from workbench.evaluation.progressive import Example
from workbench.learning.retrain import DAY_MS, retrain_stateful, retrain_stateless


def _examples(days: int, per_day: int = 200, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(days * per_day):
        t = i * DAY_MS // per_day
        x = float(rng.normal())
        out.append(Example(str(i), t, {"m": {"x": x}}, bool(rng.random() < 1 / (1 + np.exp(-2 * x))), t + 60_000))
    return out


def test_stateful_continues_its_parent_on_new_labels_only() -> None:
    exs = _examples(3)
    first = retrain_stateless(linear_model.LogisticRegression, exs, start_ms=0, end_ms=DAY_MS, arm="m", name="v1")
    before = dict(first.model.weights)
    second = retrain_stateful(first, exs, since_ms=DAY_MS, end_ms=2 * DAY_MS, arm="m", name="v2")
    assert first.model.weights == before  # the parent version is untouched
    assert second.parent == "v1" and second.kind == "stateful"
    assert second.data_range["examples"] == 200 and second.data_range["label_since_ms"] == DAY_MS
    # continuing v1 on day 2 equals one model trained on day 1 then day 2, example by example
    whole = retrain_stateless(linear_model.LogisticRegression, exs, start_ms=0, end_ms=2 * DAY_MS, arm="m")
    assert second.model.weights["x"] == whole.model.weights["x"]
    # no label known after the cut-off is used
    late = [Example("late", DAY_MS - 1, {"m": {"x": 5.0}}, True, 2 * DAY_MS + 5)]
    assert retrain_stateless(linear_model.LogisticRegression, late, start_ms=0, end_ms=2 * DAY_MS,
                             arm="m").data_range["examples"] == 0


def test_retrain_bench_json_shape_on_a_tiny_workload() -> None:
    out = retrain_run(users=120, history_days=3, update_days=2, bootstrap=50, progress=False)
    assert out["benchmark"] == "retrain" and out["ratio"] == out["detail"]["cpu_ratio"] > 0
    assert set(out["log_loss"]) == {"stateless", "stateful", "difference"}
    for arm in ("stateless", "stateful"):
        lo, hi = out["log_loss"][arm]["ci95"]
        assert lo <= out["log_loss"][arm]["value"] <= hi
    assert len(out["detail"]["days"]) == 2
    chain = {v["name"]: v for v in out["detail"]["versions"]}
    assert chain["stateful-1"]["parent"] == "stateful-0" and chain["stateful-0"]["parent"] == "initial"
    assert chain["stateless-1"]["parent"] is None
    assert len(chain["stateful-1"]["data_range"]["feature_hashes"]) == 4
    assert chain["stateless-1"]["data_range"]["examples"] > chain["stateful-1"]["data_range"]["examples"]
    assert isinstance(out["meets_target"]["quality"], bool)


def test_exploration_bench_covers_more_of_the_catalog() -> None:
    out = exploration_run(days=0.5, users=1_000, items=300, progress=False)
    exploit, explore = out["policies"]["exploit"], out["policies"]["explore-linTS"]
    assert explore["catalog_coverage_shown"] > exploit["catalog_coverage_shown"]
    assert 0 < explore["exploration_slots"]["min_propensity"] <= 1
    assert 0 < exploit["ctr"] < 1 and "exploration_slots" not in exploit
