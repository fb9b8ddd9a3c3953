"""REST endpoints of the Workbench server extension, below ``/workbench/api/``.

Every handler is a jupyter_server ``APIHandler`` with ``@tornado.web.authenticated``:
requests need the server token (or a logged-in cookie), and APIHandler checks
XSRF on anything that is not a GET. ``@authorized`` on the resource
``workbench`` lets a deployment's Authorizer grant or deny the sidebar by itself.

=====================================  ===========================================
GET /workbench/api/streams             topics with rate, history, lag and DLQ counts
GET /workbench/api/feature-sets        registered sets: draft / evaluated (lift) / promoted vN (job health)
GET /workbench/api/evaluations         recent evaluation records
POST /workbench/api/review             {"feature_set"}: start (or reuse) its review app; {"url"}
POST /workbench/api/promote            {"feature_set", "confirm"}: a dry run (plan and gate), or the promotion
=====================================  ===========================================
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from workbench.jupyter.review_apps import ReviewApps
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
    """Every set in the registry or in an evaluation record, with its stage.

    ``draft``: no evaluation of its newest definitions yet; ``evaluated``: the
    newest record's verdict and lift; ``promoted``: the active version and its
    job's health (which wins over the other two).
    """
    from workbench.evaluation.records import list_records
    from workbench.features.sets import set_entries, set_names

    newest: dict[str, Any] = {}
    for r in list_records(limit=500):
        if r.feature_set and r.feature_set not in newest:
            newest[r.feature_set] = r
    rows = []
    for name in sorted(set(set_names()) | set(newest)):
        entries = set_entries(name)
        rec = newest.get(name)
        row: dict[str, Any] = {
            "name": name, "features": len(entries[0]["feature_hashes"] if entries else rec.candidate_hashes if rec else []),
            "stage": "draft", "status": "draft", "verdict": None, "lift": None, "version": None, "job": None,
        }  # fmt: skip
        if rec is not None:
            row.update(stage="evaluated", status=f"evaluated: {_verdict(rec)}", verdict=rec.verdict,
                       lift=rec.lift.get("relative"))
        active = _active_version(name)
        if active is not None:
            row.update(stage="promoted", status=f"promoted v{active.version}: job {active.job}",
                       version=active.version, job=active.job)
        rows.append(row)
    return rows


def _active_version(name: str) -> Any:
    try:
        from workbench.promote import versions

        return next((v for v in versions(name) if v.status == "active"), None)
    except Exception:  # no lineage yet, or promotion is not set up here: the set is not promoted
        return None


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


def _body(handler: APIHandler) -> dict[str, Any]:
    try:
        body = json.loads(handler.request.body or b"{}")
    except json.JSONDecodeError:
        raise tornado.web.HTTPError(400, "the body must be JSON") from None
    name = body.get("feature_set") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise tornado.web.HTTPError(400, 'the body needs {"feature_set": NAME}')
    return dict(body)


class ReviewHandler(_WorkbenchHandler):
    """Start the feature set's review app (``workbench review SET --headless``) or reuse it."""

    def initialize(self, apps: ReviewApps) -> None:
        self.apps = apps

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        import asyncio

        from workbench.errors import WorkbenchError

        name = _body(self)["feature_set"]
        try:
            app = await asyncio.to_thread(self.apps.open, name)
        except WorkbenchError as exc:
            raise tornado.web.HTTPError(400, " ".join(str(exc).split())) from None
        self.finish(json.dumps({"feature_set": name, "url": app.url}))


def promotion_reply(promotion: Any) -> dict[str, Any]:
    """What the confirmation dialog shows: status, summary, plan text and gate."""
    return {
        "feature_set": promotion.feature_set, "version": promotion.version, "status": promotion.status,
        "summary": promotion.summary(), "plan": promotion.plan.text if promotion.plan is not None else None,
        "gate": promotion.gate.to_dict(), "record_id": promotion.record_id,
    }  # fmt: skip


def _promote(name: str, confirm: bool) -> dict[str, Any]:
    from workbench.promote import promote

    if confirm:
        # Plan again first: the gate or the plan may have changed since the dialog showed them.
        planned = promote(name, dry_run=True, progress=False)
        if planned.status != "planned":
            return promotion_reply(planned)
    return promotion_reply(promote(name, dry_run=not confirm, progress=False))


class PromoteHandler(_WorkbenchHandler):
    """POST {"feature_set", "confirm": false}: the dry run; {"confirm": true}: promote."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        import asyncio

        from workbench.errors import WorkbenchError

        body = _body(self)
        try:
            reply = await asyncio.to_thread(_promote, body["feature_set"], bool(body.get("confirm", False)))
        except (WorkbenchError, LookupError) as exc:
            raise tornado.web.HTTPError(400, " ".join(str(exc).split())) from None
        self.finish(json.dumps(reply, default=str))
