"""The sidebar's actions on a real JupyterLab: review apps and promotion, authenticated, XSRF-checked.

This module's Lab runs on its own WORKBENCH_HOME (shared with this process),
so the promotion it performs lands in a throwaway feature repo.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.fixtures import reviewed_set, shop_set
from tests.jupyter.lab import Lab, isolated_env, running_lab
from workbench import config
from workbench.config import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ACTIONS = ["workbench/api/review", "workbench/api/promote"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("wb-home")
    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(path)
    config.reload()
    yield path
    if old is None:
        os.environ.pop("WORKBENCH_HOME", None)
    else:
        os.environ["WORKBENCH_HOME"] = old
    config.reload()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, kernel_prefix: Path, broker: Settings, home: Path) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab-actions")
    (tmp / "root").mkdir()
    env = isolated_env(tmp / "jupyter", jupyter_path=kernel_prefix / "share" / "jupyter")
    with running_lab(tmp / "root", env, tmp / "jupyterlab.log") as server:
        yield server


def _post(lab: Lab, endpoint: str, body: dict[str, Any], token: bool = True) -> tuple[int, Any]:
    headers = {"Authorization": f"token {lab.token}"} if token else {}
    req = urllib.request.Request(lab.api(endpoint, token=False), data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=240) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.mark.parametrize("endpoint", ACTIONS)
def test_actions_refuse_requests_without_a_token(lab: Lab, endpoint: str) -> None:
    status, _ = _post(lab, endpoint, {"feature_set": "x"}, token=False)
    assert status in (401, 403)
    req = urllib.request.Request(lab.api(endpoint, token=False), data=b"{}", method="POST",
                                 headers={"Authorization": "token wrong"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code in (401, 403)


@pytest.mark.parametrize("endpoint", ACTIONS)
def test_actions_need_the_xsrf_token_in_a_browser_session(lab: Lab, endpoint: str) -> None:
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(lab.api("lab"), timeout=10).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")

    def post(headers: dict[str, str]) -> int:
        req = urllib.request.Request(lab.api(endpoint, token=False), data=b"{}", method="POST", headers=headers)
        try:
            return int(opener.open(req, timeout=10).status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post({}) == 403
    assert post({"X-XSRFToken": xsrf}) == 400  # through XSRF; the body lacks feature_set


def test_promote_dry_run_then_confirm(lab: Lab, home: Path, broker: Settings, new_topic: Callable[..., str]) -> None:
    from workbench import jobs
    from workbench.features.sets import save_set

    topic = new_topic("actions")
    draft = shop_set("draft_set", new_topic("draft"))  # other definitions: no evaluation covers them
    save_set(draft)
    fs = reviewed_set(broker, topic)
    status, reply = _post(lab, "workbench/api/promote", {"feature_set": draft.name})
    assert status == 200 and reply["status"] == "refused" and reply["plan"] is None
    assert reply["gate"]["ok"] is False and "no evaluation with verdict 'better'" in reply["gate"]["reasons"][0]

    status, reply = _post(lab, "workbench/api/promote", {"feature_set": fs.name, "confirm": False})
    assert status == 200, reply
    assert reply["status"] == "planned" and reply["version"] == 1 and reply["gate"]["ok"] is True
    assert f"Plan: feature set '{fs.name}'" in reply["plan"]
    status, sets = 200, json.loads(urllib.request.urlopen(lab.api("workbench/api/feature-sets"), timeout=10).read())
    stages = {s["name"]: s["stage"] for s in sets["feature_sets"]}
    assert stages == {draft.name: "draft", fs.name: "evaluated"}  # a dry run changes nothing
    try:
        status, reply = _post(lab, "workbench/api/promote", {"feature_set": fs.name, "confirm": True})
        assert status == 200 and reply["status"] == "promoted" and reply["record_id"], reply
        sets = json.loads(urllib.request.urlopen(lab.api("workbench/api/feature-sets"), timeout=10).read())
        row = next(s for s in sets["feature_sets"] if s["name"] == fs.name)
        assert row["stage"] == "promoted" and row["version"] == 1 and row["job"]
        assert row["status"] == f"promoted v1: job {row['job']}"
    finally:
        try:
            jobs.stop(f"{fs.name}_v1")
        except Exception:  # noqa: BLE001 - not started when the promotion failed
            pass
    status, reply = _post(lab, "workbench/api/promote", {"feature_set": "no_such_set"})
    assert status == 400 and "no feature set 'no_such_set'" in reply["message"]


def test_review_starts_an_app_and_reuses_it(lab: Lab, home: Path, broker: Settings,
                                            new_topic: Callable[..., str]) -> None:
    fs = reviewed_set(broker, new_topic("actions"))
    status, reply = _post(lab, "workbench/api/review", {"feature_set": fs.name})
    assert status == 200, reply
    url = reply["url"]
    assert url.startswith("http://127.0.0.1:") and "access_token=" in url
    with urllib.request.urlopen(url, timeout=30) as resp:  # the token logs in
        assert resp.status == 200 and "marimo" in resp.read().decode().lower()
    bare = url.split("?")[0]
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(bare, timeout=10)
    assert err.value.code in (302, 303, 401, 403)  # no token: marimo sends the browser to its login
    assert _post(lab, "workbench/api/review", {"feature_set": fs.name}) == (200, reply)  # same app
    status, reply = _post(lab, "workbench/api/review", {"feature_set": "no_such_set"})
    assert status == 400 and "no feature set 'no_such_set'" in reply["message"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
