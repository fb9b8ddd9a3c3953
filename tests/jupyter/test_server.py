"""The server extension in a real JupyterLab: authentication, the streams API, the labextension."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.jupyter.fixtures import produce
from tests.jupyter.lab import Lab
from workbench.config import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ENDPOINTS = ["workbench/api/streams", "workbench/api/feature-sets", "workbench/api/evaluations"]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_refuses_requests_without_a_token(lab: Lab, endpoint: str) -> None:
    status, _ = _get(lab.api(endpoint, token=False))
    assert status in (401, 403)
    status, _ = _get(lab.api(endpoint, token=False), {"Authorization": "token wrong"})
    assert status in (401, 403)


def test_refuses_a_post_without_a_token(lab: Lab) -> None:
    req = urllib.request.Request(lab.api("workbench/api/streams", token=False), data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code in (401, 403)


def test_cookie_session_post_needs_the_xsrf_token(lab: Lab) -> None:
    """A browser session (login cookie) is refused on a POST without the _xsrf token."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(lab.api("lab"), timeout=10).read()  # ?token= logs in and sets the cookies
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    url = lab.api("workbench/api/streams", token=False)
    assert json.loads(opener.open(url, timeout=10).read())["broker"]  # the cookie alone authenticates a GET

    def post(headers: dict[str, str]) -> int:
        try:
            return int(
                opener.open(
                    urllib.request.Request(url, data=b"{}", method="POST", headers=headers), timeout=10
                ).status
            )
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post({}) == 403  # XSRF check fails before any handler runs
    assert post({"X-XSRFToken": xsrf}) == 405  # XSRF passes; the endpoint is read-only


def test_streams_with_a_token(lab: Lab, broker: Settings, new_topic: Callable[..., str]) -> None:
    topic = new_topic("server")
    produce(broker, topic, 7)
    deadline = time.monotonic() + 30
    body: Any = None
    while time.monotonic() < deadline:
        status, body = _get(
            lab.api("workbench/api/streams", token=False), {"Authorization": f"token {lab.token}"}
        )
        assert status == 200
        # the topic may be sampled between its creation and the last write; wait for a fresh tick
        if any(t["name"] == topic and t["messages"] == 7 for t in body["topics"]):
            break
        time.sleep(0.5)  # the sampler starts on the first request and ticks every few seconds
    assert body["ok"] is True and body["broker"] == broker.bootstrap
    row = next(t for t in body["topics"] if t["name"] == topic)
    assert row["messages"] == 7
    assert set(row) == {"name", "internal", "partitions", "messages", "rate_per_s", "history", "lag", "lag_total", "dlq"}


def test_evaluations_and_feature_sets_come_from_the_records(lab: Lab, broker: Settings) -> None:
    import uuid

    from workbench.evaluation import records

    name = f"set_{uuid.uuid4().hex[:8]}"
    rec = records.EvaluationRecord(
        model_spec={"class": "m"}, baseline_hashes=["a"], candidate_hashes=["a", "b"], data_range={},
        label_delay_ms=0, metrics={}, lift={"relative": 0.038}, verdict="better", feature_set=name)
    records.save(rec)  # the server reads the same settings (WORKBENCH_HOME) as this process
    status, evals = _get(lab.api("workbench/api/evaluations"))
    assert status == 200 and evals["available"] is True
    mine = next(e for e in evals["evaluations"] if e["id"] == rec.id)
    assert mine["feature_set"] == name and mine["verdict"] == "better (+3.8%)"
    status, sets = _get(lab.api("workbench/api/feature-sets"))
    row = next(s for s in sets["feature_sets"] if s["name"] == name)
    assert row == {"name": name, "features": 2, "stage": "evaluated", "status": "evaluated: better (+3.8%)",
                   "verdict": "better", "lift": 0.038, "version": None, "job": None}


def test_labextension_is_installed_and_served(lab: Lab) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=60
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert re.search(r"workbench-lab v0\.1\.0 enabled\s+OK \(python, workbench\)", plain), plain
    with urllib.request.urlopen(lab.api("lab"), timeout=10) as resp:
        page = resp.read().decode()
    assert '"name": "workbench-lab"' in page or '"name":"workbench-lab"' in page
