"""A private ``redis-server`` (Debian's) on a free port: for tests and benchmarks that need their own Redis.

Persistence is off and the data directory is temporary; ``stop()`` ends the
server by its pid and ``start()`` brings it back on the same port, empty.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from workbench.errors import MissingToolError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    """True when a Redis at ``url`` answers PING."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


class RedisServer:
    def __init__(self, maxmemory_mb: int = 512) -> None:
        if shutil.which("redis-server") is None:
            raise MissingToolError("redis-server is not installed: apt-get install redis-server "
                                   "(`make test` and `.ci/run` install it)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.maxmemory_mb = maxmemory_mb
        self.dir = tempfile.mkdtemp(prefix="wb-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--maxmemory", f"{self.maxmemory_mb}mb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MissingToolError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_for(configured: str) -> Iterator[str]:
    """The configured Redis when it answers, else a private redis-server on a free port (stopped after)."""
    if answers(configured):
        yield configured
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()
