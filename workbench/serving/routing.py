"""Which ranking versions a service runs, and in which role: champion, bandit arm, canary or shadow.

A :class:`RoutingTable` is an immutable value; every change makes the next
generation with :meth:`RoutingTable.with_stage`:

* **shadow** -- scored on every request next to the served model and logged, never shown;
* **canary** -- serves ``canary_share`` of requests (one canary at a time);
* **arm** -- one of the versions Thompson sampling routes among, by their click posteriors;
* **champion** -- the default arm (always an arm); what degraded lists name;
* **retired** -- out of every role.

>>> t = RoutingTable(champion="r/1", arms=("r/1",))
>>> t = t.with_stage("r/2", "shadow")
>>> t.shadows, t.generation
(('r/2',), 1)
>>> t = t.with_stage("r/2", "canary", share=0.1).with_stage("r/2", "arm")
>>> t.arms, t.canary, t.shadows
(('r/1', 'r/2'), None, ())
>>> t.with_stage("r/2", "champion").with_stage("r/1", "retired").arms
('r/2',)
>>> t.with_stage("r/1", "retired")
Traceback (most recent call last):
...
workbench.serving.routing.RoutingError: r/1 is the champion: make another version champion before retiring it

The table lives in the records database (:class:`RoutingStore`, with a log of
every change), so all workers of a service converge on the same generation:
each polls it and hot-swaps its models (:class:`workbench.serving.pool.ModelPool`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from sqlalchemy import Table

STAGES = ("shadow", "canary", "arm", "champion", "retired")


class RoutingError(WorkbenchError):
    """A routing change that cannot be made (unknown stage, retiring the champion, a bad share)."""


@dataclass(frozen=True)
class RoutingTable:
    """The ranking versions a service runs, by role; see the module docstring."""

    champion: str | None = None
    arms: tuple[str, ...] = ()
    canary: str | None = None
    canary_share: float = 0.0
    shadows: tuple[str, ...] = ()
    explore_slots: int = 0
    shuffle_share: float = 0.0  # lists shown in random order: where position bias cannot favour the served version
    generation: int = 0

    @property
    def refs(self) -> tuple[str, ...]:
        """Every version the table needs loaded, champion first."""
        out: list[str] = []
        for ref in (self.champion, *self.arms, self.canary, *self.shadows):
            if ref is not None and ref not in out:
                out.append(ref)
        return tuple(out)

    def stage_of(self, ref: str) -> str | None:
        if ref == self.champion:
            return "champion"
        if ref in self.arms:
            return "arm"
        if ref == self.canary:
            return "canary"
        return "shadow" if ref in self.shadows else None

    def with_stage(self, ref: str, stage: str, *, share: float | None = None) -> RoutingTable:
        """The next generation, with ``ref`` in ``stage`` (and out of its other roles)."""
        if stage not in STAGES:
            raise RoutingError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
        if stage == "retired" and ref == self.champion:
            raise RoutingError(f"{ref} is the champion: make another version champion before retiring it")
        arms = tuple(a for a in self.arms if a != ref)
        shadows = tuple(s for s in self.shadows if s != ref)
        canary, canary_share = (None, 0.0) if self.canary == ref else (self.canary, self.canary_share)
        champion = self.champion
        if stage == "shadow":
            if ref == champion:
                raise RoutingError(f"{ref} is the champion; it cannot also run in shadow")
            shadows += (ref,)
        elif stage == "canary":
            if ref == champion:
                raise RoutingError(f"{ref} is the champion; it cannot also be the canary")
            share = 0.05 if share is None else share
            if not 0.0 < share < 1.0:
                raise RoutingError(f"a canary share is a fraction in (0, 1), not {share}")
            canary, canary_share = ref, float(share)
        elif stage == "arm":
            arms += (ref,)
        elif stage == "champion":
            champion = ref
            arms = (ref, *arms)
        if champion is not None and champion not in arms:
            arms = (champion, *arms)
        return replace(self, champion=champion, arms=arms, canary=canary, canary_share=canary_share,
                       shadows=shadows, generation=self.generation + 1)  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> RoutingTable:
        doc = json.loads(text)
        for key in ("arms", "shadows"):
            doc[key] = tuple(doc.get(key, ()))
        return RoutingTable(**doc)


@lru_cache(maxsize=1)
def _tables() -> tuple[Table, Table]:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    meta = MetaData()
    current = Table(
        "routing", meta,
        Column("service", String(200), primary_key=True),
        Column("generation", Integer, nullable=False),
        Column("doc", Text, nullable=False),
        Column("updated_at", Float, nullable=False),
    )  # fmt: skip
    log = Table(
        "routing_log", meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("service", String(200), nullable=False, index=True),
        Column("generation", Integer, nullable=False),
        Column("ref", String(200), nullable=False, index=True),
        Column("stage", String(20), nullable=False),
        Column("reason", Text, nullable=False),
        Column("at", Float, nullable=False),
    )  # fmt: skip
    return current, log


@dataclass(frozen=True)
class StageChange:
    """One line of the routing log: a version entering a stage, and why."""

    service: str
    generation: int
    ref: str
    stage: str
    reason: str
    at: float


class RoutingStore:
    """The current table per service and the log of every change, in the records database.

    >>> import tempfile, pathlib
    >>> store = RoutingStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'r.db'}")
    >>> store.read("svc").generation
    0
    >>> t = store.change("svc", "r/1", "champion", reason="first model")
    >>> t = store.change("svc", "r/2", "shadow", reason="drift trigger")
    >>> store.read("svc").shadows, [(c.ref, c.stage) for c in store.history("svc")]
    (('r/2',), [('r/1', 'champion'), ('r/2', 'shadow')])
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def _engine(self) -> Any:
        from workbench.db import ready

        return ready(_tables()[0].metadata, self.url)

    def read(self, service: str) -> RoutingTable:
        current, _ = _tables()
        with self._engine().connect() as conn:
            row = conn.execute(current.select().where(current.c.service == service)).first()
        return RoutingTable() if row is None else RoutingTable.from_json(row.doc)

    def generation(self, service: str) -> int:
        """The current generation only: what workers poll."""
        current, _ = _tables()
        with self._engine().connect() as conn:
            value = conn.execute(current.select().with_only_columns(current.c.generation)
                                 .where(current.c.service == service)).scalar()  # fmt: skip
        return int(value or 0)

    def change(self, service: str, ref: str, stage: str, *, reason: str = "", share: float | None = None,
               explore_slots: int | None = None, shuffle_share: float | None = None) -> RoutingTable:  # fmt: skip
        """Move ``ref`` to ``stage`` in one transaction (table and log); returns the new table."""
        current, log = _tables()
        with self._engine().begin() as conn:
            row = conn.execute(current.select().where(current.c.service == service)).first()
            table = RoutingTable() if row is None else RoutingTable.from_json(row.doc)
            if stage == "explore":  # the exploration settings, not a version's stage
                if shuffle_share is not None and not 0.0 <= shuffle_share < 1.0:
                    raise RoutingError(f"a shuffle share is a fraction in [0, 1), not {shuffle_share}")
                new = replace(table, explore_slots=table.explore_slots if explore_slots is None else int(explore_slots),
                              shuffle_share=table.shuffle_share if shuffle_share is None else float(shuffle_share),
                              generation=table.generation + 1)  # fmt: skip
            else:
                new = table.with_stage(ref, stage, share=share)
            now = time.time()
            if row is None:
                conn.execute(current.insert().values(service=service, generation=new.generation, doc=new.to_json(),
                                                     updated_at=now))  # fmt: skip
            else:
                conn.execute(current.update().where(current.c.service == service)
                             .values(generation=new.generation, doc=new.to_json(), updated_at=now))  # fmt: skip
            conn.execute(log.insert().values(service=service, generation=new.generation, ref=ref, stage=stage,
                                             reason=reason, at=now))  # fmt: skip
        return new

    def history(self, service: str | None = None, ref: str | None = None) -> list[StageChange]:
        """The log, oldest first; by service and/or version."""
        _, log = _tables()
        query = log.select().order_by(log.c.id)
        if service is not None:
            query = query.where(log.c.service == service)
        if ref is not None:
            query = query.where(log.c.ref == ref)
        with self._engine().connect() as conn:
            return [StageChange(r.service, int(r.generation), r.ref, r.stage, r.reason, float(r.at))
                    for r in conn.execute(query)]  # fmt: skip
