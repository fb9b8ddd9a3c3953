"""Prometheus metrics of one service worker (``GET /metrics``, text format).

Each worker process keeps its own registry: with ``--workers N`` a scrape
sees the worker that answered it (label ``pid``), as with any pre-fork
server without a shared metrics directory.
"""

from __future__ import annotations

import os
from typing import Any


def _in_process_values() -> None:
    """Keep metric values in this process's memory.

    Importing Feast sets ``PROMETHEUS_MULTIPROCESS_DIR`` (for its own Gunicorn
    feature server), which turns every later metric into an mmap file keyed
    by name and pid: two registries in one process then share their values,
    and each increment is a file write. The service keeps its own registry.
    """
    from prometheus_client import values

    values.ValueClass = values.MutexValue


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        _in_process_values()

        self.registry = CollectorRegistry()
        pid = {"pid": str(os.getpid())}
        self.requests = Counter("wb_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("wb_request_seconds", "request latency by endpoint", ["endpoint"],
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
                                 registry=self.registry)  # fmt: skip
        self.fallback = Counter("wb_fallback", "lists served from trending, by reason", ["reason"],
                                registry=self.registry)  # fmt: skip
        self.impressions = Counter("wb_impressions_logged", "impressions produced to the feedback topic",
                                   registry=self.registry)  # fmt: skip
        self.dropped = Counter("wb_kafka_dropped", "records dropped because the producer queue was full",
                               registry=self.registry)  # fmt: skip
        self.learned = Counter("wb_ranker_examples_learned", "ranker updates from feedback", registry=self.registry)
        self.consumed = Counter("wb_consumed", "records consumed, by topic kind", ["kind"], registry=self.registry)
        self.routed = Counter("wb_routed", "ranked lists by the serving version's role", ["role"],
                              registry=self.registry)  # fmt: skip
        self.info = Gauge("wb_worker", "this worker (value 1)", list(pid), registry=self.registry)
        self.info.labels(**pid).set(1)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        out: Any = generate_latest(self.registry)
        return bytes(out)
