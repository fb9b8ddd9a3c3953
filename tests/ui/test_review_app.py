"""The marimo feature review app, served headless by `workbench review`, checked in headless Chromium.

A feature set is streamed into a fresh topic, skew-checked for real (0
mismatches, stored) and given a passing evaluation record. The app must show
the skew result, the lift chart with its band and the promotion plan; the
approve button then promotes for real. Screenshots land in tests/ui/output/.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.fixtures import reviewed_set
from tests.ui.test_sidebar import CHROMIUM, CHROMIUM_ARGS, OUTPUT
from workbench import config
from workbench.config import Settings

pytestmark = [pytest.mark.ui, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))  # the app process inherits it
    config.reload()
    yield tmp_path
    monkeypatch.undo()
    config.reload()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="wb-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1300, "height": 3400},  # the whole app in one screenshot
        )  # fmt: skip
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_review_app_shows_skew_lift_and_plan_then_promotes(
    home: Path, browser_page: Any, new_topic: Callable[..., str], broker: Settings
) -> None:
    from playwright.sync_api import expect

    from workbench import jobs
    from workbench.jupyter.review_apps import ReviewApps

    OUTPUT.mkdir(exist_ok=True)
    fs = reviewed_set(broker, new_topic("review"))
    apps = ReviewApps(home / "logs")
    page = browser_page
    try:
        app = apps.open(fs.name)
        assert "access_token=" in app.url
        page.set_default_timeout(90_000)
        expect.set_options(timeout=90_000)  # the app computes its panels after the page loads
        page.goto(app.url)
        expect(page.get_by_role("heading", name=f"Review: feature set {fs.name}")).to_be_visible()
        expect(page.get_by_text(fs.hash).first).to_be_visible()
        # The stored skew record of these exact hashes: zero mismatches.
        expect(page.get_by_text(re.compile(r"0 mismatches over \d+ records")).first).to_be_visible()
        # The lift chart: plotly's title carries the verdict and the band; the band is drawn as error bars.
        lift_title = page.locator(".gtitle", has_text="evaluation lift")
        expect(lift_title).to_contain_text("better")
        expect(lift_title).to_contain_text("+3.80% [+1.20%, +6.40%]")
        expect(page.locator(".js-plotly-plot .errorbars path").first).to_be_attached()
        # Live values from the tap, and the distribution against the training window.
        expect(page.get_by_text(re.compile(r"[1-9]\d* events tapped from")).first).to_be_visible()
        expect(page.locator(".gtitle", has_text="distribution: recent vs training window")).to_be_visible()
        expect(page.get_by_text(f"{fs.name} v1: planned").first).to_be_visible()
        page.screenshot(path=str(OUTPUT / "review-app.png"))

        page.get_by_role("button", name="Approve and promote").click()
        expect(page.get_by_text(re.compile(rf"{fs.name} v1: promoted in local")).first).to_be_visible(timeout=180_000)
        page.screenshot(path=str(OUTPUT / "review-app-promoted.png"))
        from workbench.promote import versions

        assert [(v.version, v.status) for v in versions(fs.name)] == [(1, "active")]
    finally:
        expect.set_options(timeout=5_000)
        apps.stop_all()
        try:
            jobs.stop(f"{fs.name}_v1")
        except Exception:  # noqa: BLE001 - never started when the test failed earlier
            pass
    assert apps.running() == []
