"""The Workbench sidebar in a real JupyterLab, driven by headless Chromium.

A producer streams events into a fresh topic; the test sees the topic with a
non-zero rate in the sidebar, inserts a tap cell with the topic's button, runs
it, and watches the live widget's row count grow. Screenshots land in
tests/ui/output/ (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jupyter.lab import Lab
from workbench.config import Settings

pytestmark = [pytest.mark.ui, pytest.mark.broker, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
NOTEBOOK = "workbench.ipynb"
ROWS_RE = re.compile(r"([\d,]+)/[\d,]+ rows buffered")


def _notebook() -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "first",
                "metadata": {},
                "outputs": [],
                "source": "",
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Workbench (Python 3)", "language": "python", "name": "workbench"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def page(lab: Lab) -> Iterator[Any]:
    if not CHROMIUM.exists():
        # CI must not pass by skipping: there the missing browser is a set-up bug.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "needs Debian's chromium (apt-get install chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="wb-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _dead_letters(s: Settings, dlq: str, n: int) -> None:
    from workbench.streams.kafka import ensure_topic, producer

    ensure_topic(dlq, partitions=1, s=s)
    p = producer(s)
    for _ in range(n):
        p.produce(dlq, value=b"not json")
    assert p.flush(30) == 0


def _rows_buffered(page: Any) -> int:
    text = page.locator(".jp-OutputArea-output").filter(has_text="rows buffered").first.inner_text()
    found = ROWS_RE.search(text)
    assert found, text
    return int(found.group(1).replace(",", ""))


def test_sidebar_lists_topic_and_inserts_a_live_tap(
    lab: Lab,
    page: Any,
    new_topic: Callable[..., str],
    event_stream: Callable[[str, float], None],
    broker: Settings,
) -> None:
    from playwright.sync_api import expect

    OUTPUT.mkdir(exist_ok=True)
    topic = new_topic("ui")
    event_stream(topic, 25.0)
    _dead_letters(broker, topic + ".dlq", 3)  # new_topic's clean-up deletes <topic>.dlq too
    (lab.root_dir / NOTEBOOK).write_text(json.dumps(_notebook()))

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text) if msg.type == "error" and "workbench" in msg.text.lower() else None
        ),
    )
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
    page.locator(".jp-Notebook").wait_for()
    # The kernel (Workbench, from the notebook metadata) is idle before we run anything.
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(
        1, timeout=90_000
    )

    # Open the Workbench sidebar from its left-bar tab.
    page.locator(".jp-SideBar.jp-mod-left [data-id='workbench-sidebar']").click()
    sidebar = page.locator("#workbench-sidebar")
    expect(sidebar).to_be_visible()
    # Feature sets and evaluations come from the shared state dir: present, whatever they hold.
    expect(sidebar.locator(".wb-section-feature-sets")).to_be_visible()
    expect(sidebar.locator(".wb-section-evaluations")).to_be_visible()
    expect(sidebar.locator("li.wb-stream").first).to_be_visible()
    page.screenshot(path=str(OUTPUT / "sidebar-all-topics.png"))
    sidebar.locator(".wb-filter").fill(topic)

    row = sidebar.locator(f"li.wb-stream[data-topic='{topic}']")
    expect(row).to_be_visible()
    # Two sampler ticks make a rate; the producer keeps it above zero.
    expect(row.locator(".wb-stream-rate")).to_have_text(
        re.compile(r"^[1-9][\d.]*k?/s$|^0\.[1-9]\d*/s$"), timeout=30_000
    )
    expect(row).to_have_class(re.compile(r"wb-mod-live"))
    expect(row.locator("svg.wb-sparkline polyline")).to_have_count(1, timeout=30_000)  # two rates drawn
    expect(row.locator(".wb-stream-detail")).to_contain_text("DLQ 3")
    page.screenshot(path=str(OUTPUT / "sidebar.png"))

    row.get_by_role("button", name=f"Insert tap cell for {topic}").click()
    cell = page.locator(".jp-Notebook .jp-Cell.jp-mod-active")
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text(f'tap = wb.tap("{topic}")')
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text("import workbench as wb")
    page.keyboard.press("Shift+Enter")

    widget = page.locator(".jp-OutputArea-output").filter(has_text="rows buffered").first
    expect(widget).to_be_visible(timeout=60_000)
    first = _rows_buffered(page)
    # The producer writes 25 events/s and the view redraws every tap_refresh_s: the count grows.
    page.wait_for_function(
        """([first]) => {
            const out = [...document.querySelectorAll('.jp-OutputArea-output')].find(n => n.innerText.includes('rows buffered'));
            const m = out && out.innerText.match(/([\\d,]+)\\/[\\d,]+ rows buffered/);
            return m !== null && m !== undefined && Number(m[1].replace(/,/g, '')) >= first + 20;
        }""",
        arg=[first],
        timeout=30_000,
    )
    assert _rows_buffered(page) >= first + 20
    page.screenshot(path=str(OUTPUT / "tap-widget.png"))

    # A second tap cell does not repeat the import.
    row.get_by_role("button", name=f"Insert tap cell for {topic}").click()
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(2)
    source = page.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-editor").inner_text()
    assert "import workbench" not in source and f'wb.tap("{topic}")' in source
    assert errors == []


def test_insert_without_a_notebook_opens_one_on_the_workbench_kernel(
    lab: Lab, page: Any, new_topic: Callable[..., str], broker: Settings
) -> None:
    from playwright.sync_api import expect

    from tests.jupyter.fixtures import produce

    topic = new_topic("ui")
    produce(broker, topic, 5)
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")  # ?reset: no notebook restored from the workspace
    page.locator(".jp-SideBar.jp-mod-left [data-id='workbench-sidebar']").click()
    page.locator("#workbench-sidebar .wb-filter").fill(topic)
    page.get_by_role("button", name=f"Insert tap cell for {topic}").click()
    panel = page.locator(".jp-NotebookPanel:visible")
    expect(panel.locator(".jp-Cell.jp-mod-active .jp-InputArea-editor")).to_contain_text(
        f'tap = wb.tap("{topic}")'
    )
    expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(
        1, timeout=90_000
    )
    expect(page.locator(".jp-NotebookPanel-toolbar .jp-KernelName:visible")).to_have_text(
        "Workbench (Python 3)"
    )
