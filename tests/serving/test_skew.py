"""The served-value skew check: no mismatch on what the service really served, and a planted one is found."""

from __future__ import annotations

import copy
import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.serving.conftest import Served
from tests.serving.test_service import _app, _read_topic, _session_with_history


def test_served_values_match_the_backfill_and_a_planted_mismatch_is_found(served: Served) -> None:
    from workbench.cli import app
    from workbench.serving.skew import served_skew
    from workbench.streams import kafka

    with TestClient(_app(served.state(consume=False))) as client:
        sid, _ = _session_with_history(served)
        ids = [client.get("/recommendations", params={"session_id": sid, "k": 5}).json()["request_id"]
               for _ in range(3)]  # fmt: skip
    history = served.history
    for fs, per_impression in ((served.item_set, 5 * 7), (served.session_set, 3)):
        report = served_skew(fs.name, feedback_topic=served.feedback_topic, history=history)
        assert report.mismatches == [], report.mismatches
        assert report.compared >= 3 * per_impression, report.summary()

    # plant one wrong value in a copy of a real impression
    impressions = [r for r in _read_topic(served.feedback_topic, served.settings, 1) if r["type"] == "impression"]
    fake = copy.deepcopy(next(r for r in impressions if r["request_id"] in ids))
    fake["request_id"] = "planted"
    table = next(t for t in fake["served"] if t["set"] == served.item_set.name)
    col = table["columns"].index("item_views_1d")
    table["rows"][1][col] = (table["rows"][1][col] or 0) + 1000
    p = kafka.producer(served.settings)
    p.produce(served.feedback_topic, key=b"planted", value=json.dumps(fake).encode())
    assert p.flush(10) == 0
    report = served_skew(served.item_set.name, feedback_topic=served.feedback_topic, history=history)
    assert len(report.mismatches) == 1 and "item_views_1d" in report.mismatches[0]
    assert "request planted" in report.mismatches[0]

    # the command line: one line, exit 1 on a mismatch; the session set is still clean
    result = CliRunner().invoke(app, ["features", "skew", "--served", served.item_set.name,
                                      "--feedback-topic", served.feedback_topic])  # fmt: skip
    assert result.exit_code == 1 and "1 mismatches" in str(result.exception)
    result = CliRunner().invoke(app, ["features", "skew", "--served", served.session_set.name,
                                      "--feedback-topic", served.feedback_topic])  # fmt: skip
    assert result.exit_code == 0 and "0 mismatches" in result.output, result.output
