"""The recommendation service: a FastAPI app on uvicorn (``workbench serve``).

=========================  =================================================================
``POST /events``           one session event, produced to the events topic (keyed by session)
``GET /recommendations``   ``?session_id=&k=``: items, scores, model version, request id
``POST /feedback``         a click or purchase on a shown item, linked to its request id
``GET /health``            model versions, whether the feature store and Kafka answer
``GET /metrics``           Prometheus text format
``GET /admin/routing``     the routing table, the arms' posteriors and P(best) (token)
``POST /admin/routing``    move a ranking version to shadow, canary, arm, champion or retired (token)
``POST /admin/explore``    how many exploration slots each list has (token)
=========================  =================================================================

The admin endpoints need ``Authorization: Bearer <token>`` (see
:mod:`workbench.serving.auth`); anything else is a 401. A routing change is
written to the records database and hot-swapped by every worker: the new
version is loaded before the switch, so no request fails during it.

Every list served is logged to the ``feedback`` topic with the shown items'
feature vectors, the candidate ids and each shown item's propensity. Bad
requests get a 422 that names the field; a body over the limit a 413. The
feature store unreachable means trending items with ``degraded: true``,
never a 5xx.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from workbench.serving.schemas import (
    EventAccepted,
    EventIn,
    ExploreIn,
    FeedbackAccepted,
    FeedbackIn,
    Health,
    Problem,
    Recommendation,
    Routing,
    StageIn,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from workbench.serving.state import ServiceState

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """A 413 for bodies over ``max_bytes``, by Content-Length or while streaming, before any parsing."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(self.max_bytes, send)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.max_bytes, send)


class Measured:
    """Request counts by endpoint and status, and latency, as a plain ASGI wrapper (no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: Any) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Callable[[Any], Awaitable[None]]) -> None:
    body = b'{"detail":"request body larger than %d bytes"}' % limit
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(state: ServiceState, freeze_gc: bool = False) -> FastAPI:
    """The ASGI app over one worker's state (started and stopped with the app).

    ``freeze_gc`` (a server process of its own): what start-up allocated (model, registry objects)
    never becomes garbage, so it is kept out of the collector's full passes, which stall requests.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        if freeze_gc:
            import gc

            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="Workbench recommendations", version="1", lifespan=lifespan,
                  description=(__doc__ or "").split("\n\n")[0])  # fmt: skip
    m = state.metrics
    app.add_middleware(Measured, metrics=m)
    app.add_middleware(BodyLimit, max_bytes=state.config.max_body_bytes)

    @app.post("/events", status_code=202, response_model=EventAccepted, responses={413: {"model": Problem}})
    async def post_event(event: EventIn) -> EventAccepted:
        """Session activity: produced to the events topic, where the session feature job picks it up."""
        body = event.model_dump(exclude_none=True)
        body.setdefault("event_time_ms", int(time.time() * 1000))
        body.setdefault("user_id", event.session_id)
        body["event_id"] = f"api-{uuid.uuid4().hex}"
        state.produce(state.events_topic, event.session_id, body)
        state.remember_event(event.session_id, event.item_id, body["event_time_ms"])
        return EventAccepted(event_id=body["event_id"], topic=state.events_topic)

    @app.get("/recommendations", response_model=Recommendation)
    async def recommendations(
        session_id: str = Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/+-]+$"),
        k: int = Query(default=20, ge=1, le=state.config.max_k),
    ) -> Recommendation:
        """The top ``k`` items for the session, from its items in the online store; trending when unknown."""
        request_id = uuid.uuid4().hex
        out, ctx = state.recommend(session_id, k, request_id)
        state.log_impression(request_id, session_id, out, ctx)
        return Recommendation(request_id=request_id, session_id=session_id, items=out.items, scores=out.scores,
                              model_version=out.model_version, degraded=out.degraded, reason=out.reason)  # fmt: skip

    @app.post("/feedback", status_code=202, response_model=FeedbackAccepted, responses={413: {"model": Problem}})
    async def feedback(body: FeedbackIn) -> FeedbackAccepted:
        """A click or purchase on a shown item; every worker learns from it via the feedback topic."""
        record = body.model_dump(exclude_none=True)
        record.setdefault("event_time_ms", int(time.time() * 1000))
        state.produce(state.config.feedback_topic, body.session_id or body.request_id, record)
        return FeedbackAccepted(request_id=body.request_id, topic=state.config.feedback_topic)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        """Liveness and what is degraded; always 200 while the process serves."""
        store_ok = state.sessions.error is None and state.item_reader.error is None
        kafka_ok = state.kafka_ok and len(state.producer) < 100_000
        return Health(status="ok" if store_ok and kafka_ok else "degraded", model_version=state.rec.version,
                      embedding_version=state.rec.embedding_version, feature_store="ok" if store_ok else "unreachable",
                      kafka="ok" if kafka_ok else "unreachable", pid=_pid(),
                      routing_generation=state.pool.current[0].generation)  # fmt: skip

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format (this worker's registry)."""
        return Response(m.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    from workbench.serving.auth import admin_token, authorized

    token = admin_token(state.config.token_file)

    def admin(authorization: str | None = Header(default=None)) -> None:
        if not authorized(authorization, token):
            raise HTTPException(401, "this endpoint needs the admin token: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    unauthorized: dict[int | str, dict[str, Any]] = {401: {"model": Problem}}

    @app.get("/admin/routing", response_model=Routing, responses=unauthorized, dependencies=[Depends(admin)])
    def routing() -> Routing:
        """The routing table, with each arm's click posterior and P(best)."""
        state.pool.sync()  # the newest generation, even when another worker made the change a moment ago
        return _routing(state)

    @app.post("/admin/routing", response_model=Routing, dependencies=[Depends(admin)],
              responses={**unauthorized, 404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
    def stage(change: StageIn) -> Routing:
        """Move a version into a role; this worker switches before answering, the others within a poll."""
        from workbench.models import UnknownModelError, get, parse_ref
        from workbench.serving.routing import RoutingError

        try:
            get(*parse_ref(change.ref))
            state.pool.store.change(state.config.service, change.ref, change.stage, reason=change.reason,
                                    share=change.share)  # fmt: skip
        except UnknownModelError as exc:
            raise HTTPException(404, str(exc)) from exc
        except RoutingError as exc:
            raise HTTPException(409, str(exc)) from exc
        state.pool.sync()
        if change.stage == "arm":  # a new race: every arm starts from the prior (see ThompsonRouter.reset)
            state.pool.router.reset()
        return _routing(state)

    @app.post("/admin/explore", response_model=Routing, responses=unauthorized, dependencies=[Depends(admin)])
    def explore(body: ExploreIn) -> Routing:
        """Exploration slots per list (0: pure exploitation) and the share of lists shown shuffled."""
        state.pool.store.change(state.config.service, "-", "explore", reason=body.reason, explore_slots=body.slots,
                                shuffle_share=body.shuffle_share)  # fmt: skip
        state.pool.sync()
        return _routing(state)

    @app.get("/noop", include_in_schema=False)
    async def noop() -> JSONResponse:
        """The benchmark's floor: the same server and stack, no work."""
        return JSONResponse({"ok": True})

    return app


def _routing(state: ServiceState) -> Routing:
    table = state.pool.current[0]
    router = state.pool.router
    posteriors = {arm: list(router.posterior(arm)) for arm in table.arms}
    return Routing(generation=table.generation, champion=table.champion, arms=list(table.arms), canary=table.canary,
                   canary_share=table.canary_share, shadows=list(table.shadows), explore_slots=table.explore_slots,
                   shuffle_share=table.shuffle_share,
                   posteriors=posteriors, probability_best=router.probability_best() if len(table.arms) > 1 else
                   {arm: 1.0 for arm in table.arms})  # fmt: skip


def _pid() -> int:
    import os

    return os.getpid()


def app_from_env() -> FastAPI:
    """The uvicorn factory for ``workbench serve`` workers: the config comes in ``WBSERVE_CONFIG``."""
    from workbench.serving.state import ServiceConfig, ServiceState

    return create_app(ServiceState(ServiceConfig.from_env()), freeze_gc=True)
