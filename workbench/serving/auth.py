"""The admin token of the recommendation service: the endpoints that change models or routing require it.

The token lives in a file readable only by its owner (default ``<WORKBENCH_HOME>/serve.token``),
created on first use; ``workbench serve`` and ``workbench loop run`` read the same file.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "serve.token"
>>> t = admin_token(path)
>>> admin_token(path) == t, len(t) >= 32, oct(path.stat().st_mode & 0o777)
(True, True, '0o600')
>>> authorized(f"Bearer {t}", t), authorized("Bearer nope", t), authorized(None, t)
(True, False, False)
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from workbench.errors import WorkbenchError


def token_path(path: str | Path | None = None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    from workbench.config import settings

    return settings().home / "serve.token"


def admin_token(path: str | Path | None = None, *, create: bool = True) -> str:
    """The token in ``path``; a new random one is written there (mode 600) when the file does not exist."""
    p = token_path(path)
    if p.exists():
        value = p.read_text().strip()
        if not value:
            raise WorkbenchError(f"the admin token file {p} is empty; delete it to make a new token")
        return value
    if not create:
        raise WorkbenchError(f"no admin token at {p}: start `workbench serve` once, or pass --token-file")
    p.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries the token (constant-time comparison)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())
