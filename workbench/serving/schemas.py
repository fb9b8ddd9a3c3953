"""Request and response bodies of the recommendation service (pydantic: bad input is a clear 422).

>>> EventIn(session_id="s1", item_id="i7").event_type
'view'
>>> from pydantic import ValidationError
>>> try:
...     FeedbackIn(request_id="r1", item_id="i7", type="like")
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["msg"])
('type',) Input should be 'click' or 'purchase'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Id = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/+-]+$")


class EventIn(BaseModel):
    """One session event; it is produced to the events topic keyed by ``session_id``."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Id
    item_id: str = Id
    event_type: Literal["view", "add_to_cart", "purchase", "click"] = "view"
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    category: str = Field(default="unknown", min_length=1, max_length=128)
    price: float = Field(default=0.0, ge=0, le=1e9)
    event_time_ms: int | None = Field(default=None, ge=0, le=4_102_444_800_000, description="epoch ms; default now")
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    position: int | None = Field(default=None, ge=1, le=1000)


class EventAccepted(BaseModel):
    event_id: str
    topic: str


class Recommendation(BaseModel):
    request_id: str
    session_id: str
    items: list[str]
    scores: list[float]
    model_version: str
    degraded: bool = False
    reason: str | None = Field(default=None, description="why the list is not the ranked one: unknown_session, "
                                                         "feature_store_unreachable, ...")


class FeedbackIn(BaseModel):
    """A click or purchase on a shown item, linked to the recommendation's ``request_id``."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Id
    item_id: str = Id
    type: Literal["click", "purchase"] = "click"
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    event_time_ms: int | None = Field(default=None, ge=0, le=4_102_444_800_000)


class FeedbackAccepted(BaseModel):
    request_id: str
    topic: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    model_version: str
    embedding_version: str
    feature_store: Literal["ok", "unreachable"]
    kafka: Literal["ok", "unreachable"]
    pid: int
    routing_generation: int = 0


class StageIn(BaseModel):
    """Move a ranking version into a role (admin; needs the token)."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*/[0-9]+$",
                     description="a ranking version, e.g. session_ranker/3")  # fmt: skip
    stage: Literal["shadow", "canary", "arm", "champion", "retired"]
    share: float | None = Field(default=None, gt=0, lt=1, description="the canary's share of traffic")
    reason: str = Field(default="", max_length=2000)


class ExploreIn(BaseModel):
    """How many slots of each list the exploration bandit fills (admin; needs the token)."""

    model_config = ConfigDict(extra="forbid")

    slots: int | None = Field(default=None, ge=0, le=20, description="exploration slots per list")
    shuffle_share: float | None = Field(default=None, ge=0, lt=1, description="share of lists shown in random "
                                        "order, for unbiased shadow comparisons")  # fmt: skip
    reason: str = Field(default="", max_length=2000)


class Routing(BaseModel):
    generation: int
    champion: str | None
    arms: list[str]
    canary: str | None
    canary_share: float
    shadows: list[str]
    explore_slots: int
    shuffle_share: float
    posteriors: dict[str, list[float]] = Field(description="each arm's Beta(alpha, beta) on its click rate")
    probability_best: dict[str, float]


class Problem(BaseModel):
    detail: str
