"""Pins the public API: a change to ``workbench.__all__`` must change this list on purpose."""

import os
import subprocess
import sys
import tempfile

import workbench

PUBLIC = [
    "CATEGORY",
    "Entity",
    "Feature",
    "FeatureFrame",
    "FeatureSet",
    "ITEM",
    "LeakageError",
    "RequestFeature",
    "SESSION",
    "Settings",
    "ShopSimulator",
    "Tap",
    "USER",
    "WorkbenchWarning",
    "__version__",
    "aggregations",
    "backfill",
    "col",
    "evaluate",
    "features_as_of",
    "labels",
    "models",
    "online_features",
    "promote",
    "replay",
    "request_frame",
    "rollback",
    "session_features",
    "settings",
    "skew_check",
    "tap",
    "training_frame",
    "windows",
]


def test_public_api_is_pinned() -> None:
    assert workbench.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None


def test_import_is_light() -> None:
    code = "import sys, workbench; import workbench.cli; print(sorted(m for m in ('pandas','confluent_kafka','quixstreams','feast','river','plotly') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_wb_promote_stays_callable_after_its_package_is_imported() -> None:
    """Importing workbench.promote.* binds the package to ``workbench.promote``; it must still promote."""
    code = ("import workbench as wb, workbench.promote.store\n"
            "try:\n    wb.promote('no_such_set_anywhere', dry_run=True, progress=False)\n"
            "except LookupError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "WORKBENCH_HOME": tempfile.mkdtemp()})
    assert out.stdout.startswith("no feature set 'no_such_set_anywhere'"), out.stdout + out.stderr
