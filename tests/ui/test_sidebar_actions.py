"""The sidebar's feature-set actions in headless Chromium: stage badge, preview cell, review app, promote dialog.

Lab and this process share a throwaway WORKBENCH_HOME; the dialog is
confirmed, so the set is promoted for real and its job stopped afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.fixtures import reviewed_set
from tests.jupyter.lab import Lab
from tests.jupyter.test_server_actions import home, lab  # noqa: F401 - module fixtures: own home, own Lab
from tests.ui.test_sidebar import NOTEBOOK, OUTPUT, _notebook, page  # noqa: F401
from workbench.config import Settings

pytestmark = [pytest.mark.ui, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def feature_set(home: Path, broker: Settings, new_topic: Callable[..., str]) -> Iterator[Any]:  # noqa: F811
    from workbench import jobs

    fs = reviewed_set(broker, new_topic("sidebar"))
    yield fs
    try:
        jobs.stop(f"{fs.name}_v1")
    except Exception:  # noqa: BLE001 - never promoted when the test failed earlier
        pass


def test_feature_set_actions(lab: Lab, page: Any, feature_set: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    OUTPUT.mkdir(exist_ok=True)
    name = feature_set.name
    (lab.root_dir / NOTEBOOK).write_text(json.dumps(_notebook()))
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
    page.locator(".jp-Notebook").wait_for()
    page.locator(".jp-SideBar.jp-mod-left [data-id='workbench-sidebar']").click()
    row = page.locator(f"#workbench-sidebar li.wb-feature-set[data-feature-set='{name}']")
    expect(row.locator(".wb-stage")).to_have_text("evaluated +3.8%", timeout=60_000)

    row.get_by_role("button", name=f"Insert feature preview cell for {name}").click()
    editor = page.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-editor")
    expect(editor).to_contain_text(f'{name} = load_set("{name}")')
    expect(editor).to_contain_text(f"{name}.preview(wb.tap(")

    with page.context.expect_page(timeout=120_000) as popup:
        row.get_by_role("button", name=f"Open review app for {name}").click()
    review = popup.value
    # The app logs in with the token in the URL, then marimo drops it from the address bar.
    review.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/"), timeout=120_000)
    expect(review.get_by_role("heading", name=f"Review: feature set {name}")).to_be_visible(timeout=90_000)
    review.close()

    row.get_by_role("button", name=f"Promote {name}").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Promote {name} v1?", timeout=60_000)
    expect(dialog.locator(".wb-gate")).to_contain_text("Gate open")
    expect(dialog.locator(".wb-plan")).to_contain_text(f"Plan: feature set '{name}'")
    page.screenshot(path=str(OUTPUT / "sidebar-promote-dialog.png"))
    dialog.get_by_role("button", name="Confirm promotion").click()
    expect(row.locator(".wb-stage")).to_have_text("promoted v1", timeout=180_000)
    page.screenshot(path=str(OUTPUT / "sidebar-promoted.png"))
