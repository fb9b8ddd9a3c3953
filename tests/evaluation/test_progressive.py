from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import numpy as np
import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing, tree

from workbench.errors import WorkbenchError
from workbench.evaluation import records
from workbench.evaluation.progressive import Columns, Example, LeakageError, Progressive


def _phishing(n: int = 600) -> list[tuple[dict[str, float], bool]]:
    return [(x, y) for (x, y), _ in zip(datasets.Phishing(), range(n), strict=False)]


@pytest.mark.parametrize("make_model", [
    lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    lambda: tree.HoeffdingTreeClassifier(grace_period=50),
])
@pytest.mark.parametrize("metric", [metrics.LogLoss(), metrics.ROCAUC(), metrics.Accuracy()])
def test_zero_delay_equals_rivers_progressive_val_score(make_model, metric) -> None:
    data = _phishing()
    river_metric = evaluate.progressive_val_score(data, make_model(), copy.deepcopy(metric))
    examples = [Example(key=str(i), t_ms=i // 3, x={"baseline": x, "candidate": x}, y=y)
                for i, (x, y) in enumerate(data)]
    loop = Progressive({"baseline": make_model(), "candidate": make_model()}, metric=copy.deepcopy(metric),
                       extra_metrics=[metrics.Accuracy()])
    result = loop.run(examples)
    name = type(metric).__name__
    assert result.metrics["baseline"][name] == river_metric.get()
    assert result.metrics["candidate"][name] == river_metric.get()
    # identical arms: every paired difference is exactly zero
    assert result.lift.mean_diff == 0 and result.verdict == "no evidence"


def test_a_value_newer_than_the_prediction_is_leakage() -> None:
    loop = Progressive({"a": linear_model.LogisticRegression()})
    ok = Example(key="1", t_ms=1_000, x={"a": {"f": 1.0}}, y=True, feature_time_ms=1_000)
    peeking = Example(key="2", t_ms=2_000, x={"a": {"f": 1.0}}, y=True, feature_time_ms=2_001)
    with pytest.raises(LeakageError, match="newer than the prediction time"):
        loop.run([ok, peeking])


def test_labels_are_learned_only_once_known_and_late_or_missing_are_counted() -> None:
    class Recorder(linear_model.LogisticRegression):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[float] = []

        def learn_one(self, x, y, w=1.0):  # type: ignore[no-untyped-def]
            self.seen.append(x["f"])
            return super().learn_one(x, y, w)

    model = Recorder()
    examples = [
        Example("a", t_ms=0, x={"m": {"f": 0.0}}, y=True, label_time_ms=5_000),
        Example("b", t_ms=1_000, x={"m": {"f": 1.0}}, y=False, label_time_ms=1_500),
        Example("c", t_ms=2_000, x={"m": {"f": 2.0}}, y=None),  # never labelled
        Example("d", t_ms=3_000, x={"m": {"f": 3.0}}, y=True, label_time_ms=3_000 + 99_000),  # too late
        Example("e", t_ms=6_000, x={"m": {"f": 6.0}}, y=True),
    ]
    loop = Progressive({"m": model}, max_label_wait_ms=60_000)
    result = loop.run(examples)
    # b's label (t=1.5s) is learned before a's (t=5s); e has no delay
    assert model.seen == [1.0, 0.0, 6.0]
    assert result.counts == {"predicted": 5, "labelled": 3, "missing": 1, "late": 1}


def test_logged_features_are_reused_not_recomputed() -> None:
    state = {"f": 1.0}

    def examples():  # a live source that keeps updating one state dict
        yield Example("a", t_ms=0, x={"m": state}, y=True, label_time_ms=10)
        state["f"] = 999.0
        yield Example("b", t_ms=20, x={"m": {"f": 0.0}}, y=None)

    model = linear_model.LogisticRegression(optimizer=__import__("river").optim.SGD(0.01))
    Progressive({"m": model}).run(examples())
    # one SGD step from zero weights: 0.01 * (1 - 0.5) * f, with f as it was at prediction time
    assert model.weights["f"] == pytest.approx(0.005)


def _paired_examples(signal: bool, n: int = 4_000, seed: int = 7) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        z = rng.gauss(0, 1)
        y = rng.random() < 1 / (1 + np.exp(-2.5 * z))
        base = {"bias": 1.0, "noise": rng.gauss(0, 1)}
        cand = {**base, "z": z if signal else rng.gauss(0, 1)}
        out.append(Example(str(i), t_ms=i * 1000, x={"baseline": base, "candidate": cand}, y=y,
                           label_time_ms=i * 1000 + 30_000))
    return out


def test_known_signal_is_better_and_noise_is_not() -> None:
    def arms() -> dict[str, linear_model.LogisticRegression]:
        return {"baseline": linear_model.LogisticRegression(), "candidate": linear_model.LogisticRegression()}

    better = Progressive(arms(), label_delay_ms=0).run(_paired_examples(signal=True))
    noise = Progressive(arms(), label_delay_ms=0).run(_paired_examples(signal=False))
    assert better.verdict == "better" and better.lift.low > 0
    assert noise.verdict != "better"


def test_snapshots_stream_while_running() -> None:
    loop = Progressive({"baseline": linear_model.LogisticRegression(),
                        "candidate": linear_model.LogisticRegression()}, every=500)
    snaps = list(loop.iterate(_paired_examples(signal=True, n=2_000)))
    assert [s.n_labelled for s in snaps][:4] == [500, 1000, 1500, 2000]
    fig = loop.result().figure()
    assert {t.name for t in fig.data} >= {"baseline", "candidate", "lift", "95% band"}


def test_records_round_trip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    rec = records.EvaluationRecord(
        model_spec={"model": "LogisticRegression"}, baseline_hashes=["h1"], candidate_hashes=["h1", "h2"],
        data_range={"topic": "events", "partitions": {"0": [0, 99]}, "event_time_ms": [0, 5]},
        label_delay_ms=1_800_000, metrics={"LogLoss": 0.4}, lift={"mean_diff": 0.01}, verdict="better",
        feature_set="shop",
    )
    records.save(rec, url)
    records.save(records.EvaluationRecord(**{**rec.__dict__, "id": "other", "verdict": "no evidence"}), url)
    assert records.get(rec.id, url) == rec
    assert [r.id for r in records.list_records(url=url)][0] == "other"
    assert records.find_passing(["h2", "h1"], url).id == rec.id  # type: ignore[union-attr]
    assert records.find_passing(["h1"], url) is None


def test_streaming_labels_equal_the_vectorised_ones() -> None:
    import pandas as pd
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from workbench.evaluation.labels import LabelJoiner, purchase_within

    event = st.tuples(st.sampled_from(["view", "purchase", "add_to_cart"]), st.sampled_from(["s1", "s2"]),
                      st.sampled_from(["a", "b"]), st.integers(0, 120_000))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(event, max_size=40))
    def check(rows: list[tuple[str, str, str, int]]) -> None:
        # disorder within the joiner's grace: each session in time order, sessions interleaved
        # with a skew below the grace; an outcome never precedes its view at the same ms
        rows = sorted(rows, key=lambda r: (r[3] + (20_000 if r[1] == "s2" else 0), r[0] != "view"))
        frame = pd.DataFrame(rows, columns=["event_type", "session_id", "item_id", "event_time_ms"])
        label = purchase_within(minutes=1)
        want = label.compute(frame)
        joiner = LabelJoiner(label, grace_ms=30_000)
        got = {k: (y, t) for k, y, t in joiner.feed_all((str(i), r) for i, r in frame.iterrows())}
        for idx, row in want.iterrows():
            if str(idx) in got:
                assert got[str(idx)] == (row["y"], row["label_time_ms"])
            else:  # still waiting: no outcome seen, and the deadline plus grace not yet passed
                assert row["y"] is not True
                assert row["event_time_ms"] + label.within_ms + joiner.grace_ms >= joiner.watermark_ms

    check()


def test_default_metrics_match_rivers_own() -> None:
    data = _phishing()
    examples = [Example(key=str(i), t_ms=i, x={"a": x}, y=y) for i, (x, y) in enumerate(data)]
    native = Progressive({"a": linear_model.LogisticRegression()}).run(examples)
    explicit = {}
    for metric in (metrics.LogLoss(), metrics.Accuracy(), metrics.ROCAUC(n_thresholds=200)):
        res = Progressive({"a": linear_model.LogisticRegression()}, metric=metric,
                          extra_metrics=[metrics.Accuracy()]).run(examples)
        explicit[type(metric).__name__] = res.metrics["a"][type(metric).__name__]
    assert native.metric_names == ["LogLoss", "Accuracy", "ROCAUC"]
    assert native.metrics["a"]["LogLoss"] == pytest.approx(explicit["LogLoss"], rel=1e-12)
    assert native.metrics["a"]["Accuracy"] == pytest.approx(explicit["Accuracy"], rel=1e-12)
    # River's AUC is a thresholded approximation of the exact one
    assert native.metrics["a"]["ROCAUC"] == pytest.approx(explicit["ROCAUC"], abs=0.01)


def _columns(examples: list[Example], arms: list[str]) -> Columns:
    return Columns(keys=[e.key for e in examples], t_ms=[e.t_ms for e in examples],
                   vectors={a: [dict(e.x[a]) for e in examples] for a in arms}, y=[e.y for e in examples],
                   label_time_ms=[e.label_time_ms for e in examples],
                   feature_time_ms=[e.feature_time_ms for e in examples])


def _trace(loop: Progressive, source: list[Example] | Columns) -> tuple[object, ...]:
    snaps, error = [], None
    try:
        for s in loop.iterate(source):
            snaps.append((s.n_predicted, s.n_labelled, s.t_ms, s.metrics, s.rolling, s.drift))
    except WorkbenchError as e:
        error = (type(e), str(e))
    return snaps, error, dict(loop.counts), loop.curve, loop.losses, loop.drift_points, loop.t_bounds


def test_columns_run_exactly_as_the_same_examples() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    row = st.tuples(st.integers(0, 3), st.floats(-2, 2), st.sampled_from([True, False, None]),
                    st.integers(-5, 40), st.integers(-3, 3), st.booleans())

    @settings(max_examples=60, deadline=None)
    @given(st.lists(row, max_size=60), st.sampled_from([1, 3, 10]), st.sampled_from([None, 20]))
    def check(rows: list[tuple[int, float, bool | None, int, int, bool]], every: int, wait: int | None) -> None:
        examples, t = [], 0
        for i, (dt, z, y, delay, peek, gap) in enumerate(rows):
            t += dt
            base = {"z": z} if not gap else {}
            examples.append(Example(str(i), t, {"a": base, "b": {**base, "w": float(i % 4)}}, y,
                                    t + delay if delay % 3 else None, t + peek if peek > 2 else None))
        if len(rows) > 5 and rows[5][0] == 3:  # now and then, one out of time order
            examples[5].t_ms = -1

        def loop() -> Progressive:
            return Progressive({"a": linear_model.LogisticRegression(), "b": linear_model.LogisticRegression()},
                               every=every, rolling_window=4, label_delay_ms=2, max_label_wait_ms=wait)

        assert _trace(loop(), _columns(examples, ["a", "b"])) == _trace(loop(), examples)

    check()


def test_batched_scores_equal_scoring_each_label_as_it_comes() -> None:
    """The default classifier metrics are scored in batches: the curve's rolling values and the
    drift points are those of feeding the losses one at a time."""
    from river import drift

    w = 7
    loop = Progressive({"baseline": linear_model.LogisticRegression(),
                        "candidate": linear_model.LogisticRegression()}, every=50, rolling_window=w)
    examples = _paired_examples(signal=True, n=3_000)
    for ex in examples[1_500:]:  # a regime change, so ADWIN has drift to find
        ex.y = not ex.y
    result = loop.run(examples)
    want_drift = []
    for arm in loop.arms:
        losses, truths = loop.losses[arm], loop.truths
        assert losses == [-math.log(min(max(p if y else 1.0 - p, 1e-15), 1.0 - 1e-15))
                          for p, y in zip(loop.scores[arm], truths, strict=True)]
        roll, adwin = 0.0, drift.ADWIN()
        rolled = []
        for k, loss in enumerate(losses):
            roll += loss
            if k + 1 > w:
                roll -= losses[k - w]
            rolled.append(roll / min(k + 1, w))
            adwin.update(loss)
            if adwin.drift_detected:
                want_drift.append((k, loop.arms.index(arm), (arm, k + 1, loop.label_times[k])))
        assert [row[f"{arm}.LogLoss.rolling"] for row in result.curve] == [rolled[row["n"] - 1] for row in result.curve]
    assert want_drift and result.drift == [d for _, _, d in sorted(want_drift)]
