"""REST endpoints of the Workbench server extension, below ``/workbench/api/``.

Every handler is a jupyter_server ``APIHandler`` with ``@tornado.web.authenticated``:
requests need the server token (or a logged-in cookie), and APIHandler checks
XSRF on anything that is not a GET. ``@authorized`` on the resource
``workbench`` lets a deployment's Authorizer grant or deny the sidebar by itself.

=====================================  ===========================================
GET /workbench/api/streams             topics with rate, history, lag and DLQ counts
GET /workbench/api/feature-sets        feature sets seen in evaluation records, with their latest verdict
GET /workbench/api/evaluations         recent evaluation records
=====================================  ===========================================
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from workbench.jupyter.sampler import StreamSampler

AUTH_RESOURCE = "workbench"


class _WorkbenchHandler(APIHandler):
    auth_resource = AUTH_RESOURCE


class StreamsHandler(_WorkbenchHandler):
    """The sampler's latest view of every topic."""

    def initialize(self, sampler: StreamSampler) -> None:
        self.sampler = sampler

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        # snapshot() only copies state under a lock; sampling runs on its own thread.
        self.finish(json.dumps(self.sampler.snapshot()))


def _verdict(record: Any) -> str:
    rel = record.lift.get("relative")
    return record.verdict if rel is None or rel != rel else f"{record.verdict} ({rel:+.1%})"


def _evaluations(limit: int = 20) -> list[dict[str, Any]]:
    import datetime as dt

    from workbench.evaluation.records import list_records

    return [
        {"id": r.id, "feature_set": r.feature_set or "(unnamed)", "verdict": _verdict(r),
         "finished_at": dt.datetime.fromtimestamp(r.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")}
        for r in list_records(limit=limit)
    ]


def _feature_sets() -> list[dict[str, Any]]:
    """Draft sets have no record yet; an evaluated set shows its newest verdict and lift."""
    from workbench.evaluation.records import list_records

    newest: dict[str, Any] = {}
    for r in list_records(limit=500):
        if r.feature_set and r.feature_set not in newest:
            newest[r.feature_set] = r
    return [{"name": name, "features": len(r.candidate_hashes), "status": f"evaluated: {_verdict(r)}"}
            for name, r in sorted(newest.items())]


class FeatureSetsHandler(_WorkbenchHandler):
    """Feature sets known from evaluation records (promotion status joins when it lands)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        import asyncio

        sets = await asyncio.to_thread(_feature_sets)  # a database read stays off the event loop
        self.finish(json.dumps({"available": True, "feature_sets": sets}))


class EvaluationsHandler(_WorkbenchHandler):
    """The newest evaluation records."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        import asyncio

        evaluations = await asyncio.to_thread(_evaluations)
        self.finish(json.dumps({"available": True, "evaluations": evaluations}))
