"""An open-loop HTTP load generator, run in its own process (``python -m workbench.bench.loadgen SPEC``).

Requests are *scheduled* at a fixed rate and each one's latency counts from
its scheduled time, so a slow server cannot slow the generator down and
hide its own queueing (no coordinated omission). Keep-alive HTTP/1.1 over a
pool of asyncio connections; the client is a few lines of bytes handling,
so it costs little CPU next to the server it measures. Only loopback
addresses are accepted, and every run is bounded in time.

>>> percentiles([1.0, 2.0, 3.0, 4.0])["p50_ms"]
2.5
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

_LOOPBACK = ("127.", "localhost", "::1")


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    import numpy as np

    if not latencies_ms:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    a = np.asarray(latencies_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}  # fmt: skip


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_load(host: str, port: int, paths: list[str], rate: float, duration_s: float, connections: int = 64,
                   timeout_s: float = 5.0) -> dict[str, Any]:  # fmt: skip
    """GET ``paths`` (round robin) at ``rate`` per second for ``duration_s``; latencies and errors."""
    if not host.startswith(_LOOPBACK):
        raise ValueError("the load generator only targets loopback addresses")
    n = max(1, int(rate * duration_s))
    requests = [f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for i in range(n)]
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def fail(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def connection() -> None:
        reader = writer = None
        while True:
            job = await queue.get()
            if job is None:
                break
            due, raw = job
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(raw)
                status = await asyncio.wait_for(_read_response(reader), timeout_s)
                latencies.append((time.perf_counter() - due) * 1000)
                if status >= 400:
                    fail(f"http_{status}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                fail(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter() + 0.05
    for i, raw in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, raw))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), duration_s + 30)
    elapsed = time.perf_counter() - start
    return {"rate": rate, "duration_s": duration_s, "sent": n, "completed": len(latencies),
            "achieved_rps": round(len(latencies) / elapsed, 1), "errors": sum(errors.values()),
            "error_kinds": errors, **percentiles(latencies)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    print(json.dumps(runner(run_load(**spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
