"""A new SQLite model store starts as a copy of an empty, fully migrated MLflow database.

MLflow builds a new database by running its whole Alembic history (well over a
hundred migrations: seconds, and ten or more on a busy machine). Every fresh
``WORKBENCH_HOME`` (each test, each notebook home) would pay that, so the
migrated empty schema is built once per MLflow version under
``WORKBENCH_CACHE_DIR`` and copied. MLflow still checks the copy's schema
revision when it opens it, and adds its Default experiment itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def seed(db: Path, cache_dir: Path) -> bool:
    """Create ``db`` from the cached empty schema unless it exists; False when MLflow must migrate."""
    if db.exists():
        return False
    try:
        template = _template(cache_dir)
    except Exception as exc:  # a private MLflow helper moved: MLflow migrates the new db itself
        log.debug("no MLflow schema template: %s", exc)
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=db.parent, prefix=".mlflow-", suffix=".db")
    os.close(fd)
    try:
        shutil.copyfile(template, tmp)
        os.link(tmp, db)  # never replaces a database another process just created
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        if db.exists():
            return False
        os.replace(tmp, db)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _template(cache_dir: Path) -> Path:
    from mlflow.version import VERSION

    path = cache_dir / f"mlflow-{VERSION}-empty.db"
    if path.exists():
        return path
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        built = Path(tmp) / "empty.db"
        engine = sqlalchemy.create_engine(f"sqlite:///{built}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        os.replace(built, path)  # concurrent builders produce the same schema
    return path

