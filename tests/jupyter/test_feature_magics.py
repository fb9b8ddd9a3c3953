"""%%feature, %evaluate and %promote through a real Workbench kernel, on the real broker.

The kernel and this process share an isolated WORKBENCH_HOME, so the records
the magics write are read back here, and the ones made here gate %promote.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.apps.fixtures import reviewed_set, shop_set
from tests.jupyter.fixtures import produce
from tests.jupyter.test_magics import Kernel, _plain, _start, _stop
from workbench import config
from workbench.config import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    config.reload()
    yield tmp_path
    monkeypatch.undo()
    config.reload()


@pytest.fixture
def kernel(kernel_prefix: Path, broker: Settings, home: Path) -> Iterator[Kernel]:
    env = dict(os.environ)  # WORKBENCH_HOME is the test's
    env["JUPYTER_PATH"] = str(kernel_prefix / "share" / "jupyter")
    k = _start("workbench", env)
    yield k
    _stop(k)


def _text(outputs: list[dict[str, object]]) -> str:
    return "\n".join(_plain(o) for o in outputs)  # type: ignore[arg-type]


def test_feature_magic_defines_binds_and_previews(
    kernel: Kernel, new_topic: Callable[..., str], broker: Settings
) -> None:
    from workbench.features import aggregations as agg
    from workbench.features import windows as win
    from workbench.features.definition import SESSION, Feature

    topic = new_topic("feature")
    produce(broker, topic, 25)  # 5 sessions of 5 views each
    cell = (f"%%feature views --since earliest --duration 4\n"
            f"wb.Feature('views', wb.SESSION, win.Session(gap_ms=1_800_000), agg.Count(), source='{topic}')")
    status, outputs = kernel.run(cell)
    assert status == "ok", _text(outputs)
    expected = Feature("views", SESSION, win.Session(gap_ms=1_800_000), agg.Count(), source=topic)
    assert f"views = Feature('views') hash {expected.hash}" in _text(outputs)
    assert kernel.value("views.hash") == repr(expected.hash)
    assert kernel.value("sorted(_preview['views'].tolist())") == "[5, 5, 5, 5, 5]"


def test_feature_magic_assignment_form_and_errors(kernel: Kernel) -> None:
    status, outputs = kernel.run("%%feature carts --no-preview\n"
                                 "where = wb.col('event_type') == 'add_to_cart'\n"
                                 "carts = wb.Feature('carts', wb.USER, win.Tumbling(size_ms=60_000), agg.Count(), "
                                 "where=where)")
    assert status == "ok", _text(outputs)
    assert kernel.value("carts.name, where is not None") == "('carts', True)"
    status, outputs = kernel.run("%%feature nothing --no-preview\nx = 1")
    assert status == "error"
    text = "".join(str(o.get("text", "")) for o in outputs)
    assert text.startswith("UsageError: %%feature: the cell must end with an expression that makes a wb.Feature")
    status, outputs = kernel.run("%%feature 2bad\nx = 1")
    assert status == "error" and "not a Python identifier" in _text(outputs)


def test_evaluate_magic_stores_a_record(kernel: Kernel, home: Path) -> None:
    from workbench.evaluation import records

    name = f"magic_{uuid.uuid4().hex[:6]}"
    setup = """
import numpy as np
from river import linear_model, preprocessing
sim = wb.ShopSimulator(seed=11, n_users=300, n_items=100, n_categories=5)
history = sim.frame(start_ms=1_750_000_000_000, duration_s=8 * 3600)
history = history.assign(partition=0, offset=np.arange(len(history)))
views = wb.Feature("session_views", wb.SESSION, wb.windows.Session(gap_ms=1_800_000), wb.aggregations.Count(),
                   where=wb.col("event_type") == "view")
price = wb.Feature("item_price", wb.ITEM, wb.windows.Sliding(size_ms=86_400_000), wb.aggregations.Last("price"))
model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
"""
    assert kernel.run("import workbench as wb\n" + setup, timeout_s=120)[0] == "ok"
    status, outputs = kernel.run(
        f'%evaluate model --label "wb.labels.purchase_within(minutes=30)" --baseline views '
        f"--candidate views,price --source history --set {name} --name res", timeout_s=300)
    assert status == "ok", _text(outputs)
    assert "loss reduction" in _text(outputs) and "record " in _text(outputs)
    record_id = kernel.value("res.record_id").strip("'")
    rec = records.get(record_id)
    assert rec is not None and rec.feature_set == name
    assert rec.verdict == kernel.value("res.verdict").strip("'")
    status, outputs = kernel.run("%evaluate nosuchmodel --label x --baseline a --candidate a,b")
    assert status == "error" and "name 'nosuchmodel' is not defined in the notebook" in _text(outputs)


def test_promote_magic_shows_the_gate_and_plan_first(
    kernel: Kernel, home: Path, new_topic: Callable[..., str], broker: Settings
) -> None:
    from workbench.features.sets import save_set

    topic = new_topic("promote")
    # A draft set (registered, never evaluated): the gate is closed and nothing is planned.
    draft = shop_set(f"draft_{uuid.uuid4().hex[:6]}", new_topic("draft"))
    save_set(draft)
    status, outputs = kernel.run(f"%promote {draft.name}")
    assert status == "ok", _text(outputs)
    assert "refused (gate closed: no evaluation with verdict 'better'" in _text(outputs)
    assert kernel.value("_promotion.status") == "'refused'"

    fs = reviewed_set(broker, topic)  # skew-checked for real, with a passing evaluation record
    status, outputs = kernel.run(f"%promote {fs.name}")
    assert status == "ok", _text(outputs)
    text = _text(outputs)
    assert f"{fs.name} v1: planned" in text and "gate open" in text
    assert f"To promote: %promote {fs.name} --yes" in text
    assert kernel.value("_promotion.status, _promotion.plan is not None") == "('planned', True)"

    status, outputs = kernel.run("%promote no_such_set_anywhere")
    assert status == "error"
    assert "".join(str(o.get("text", "")) for o in outputs).startswith("UsageError: %promote: no feature set")


def test_promote_magic_yes_promotes(
    kernel: Kernel, home: Path, new_topic: Callable[..., str], broker: Settings
) -> None:
    from workbench import jobs

    fs = reviewed_set(broker, new_topic("promote"))
    try:
        status, outputs = kernel.run(f"%promote {fs.name} --yes", timeout_s=240)
        assert status == "ok", _text(outputs)
        assert f"{fs.name} v1: promoted" in _text(outputs)
        assert kernel.value("_promotion.status, _promotion.version") == "('promoted', 1)"
        from workbench.promote import versions

        assert [(v.version, v.status) for v in versions(fs.name)] == [(1, "active")]
    finally:
        try:
            jobs.stop(f"{fs.name}_v1")
        except Exception:  # noqa: BLE001 - the job may never have started
            pass
