"""REST endpoints of the Workbench server extension, below ``/workbench/api/``.

Every handler is a jupyter_server ``APIHandler`` with ``@tornado.web.authenticated``:
requests need the server token (or a logged-in cookie), and APIHandler checks
XSRF on anything that is not a GET. ``@authorized`` on the resource
``workbench`` lets a deployment's Authorizer grant or deny the sidebar by itself.

=====================================  ===========================================
GET /workbench/api/streams             topics with rate, history, lag and DLQ counts
GET /workbench/api/feature-sets        feature sets (empty until that capability lands)
GET /workbench/api/evaluations         recent evaluations (empty likewise)
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


class FeatureSetsHandler(_WorkbenchHandler):
    """Feature sets; ``available`` turns true when workbench.features ships them."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        reply: dict[str, Any] = {"available": False, "feature_sets": []}
        self.finish(json.dumps(reply))


class EvaluationsHandler(_WorkbenchHandler):
    """Recent evaluation records; empty until workbench.evaluation writes them."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        reply: dict[str, Any] = {"available": False, "evaluations": []}
        self.finish(json.dumps(reply))
