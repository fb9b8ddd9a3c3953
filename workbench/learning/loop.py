"""The continual-learning loop (``workbench loop run``): triggers, training, shadow, canary, bandit, champion.

It reads the running service's feedback log (:mod:`workbench.learning.feedback`)
and drives one candidate ranking version at a time through the stages, all
through the service's token-protected admin API (the service hot-swaps; the
loop never stops serving):

1. **trigger** -- the champion's per-list loss feeds a trigger (drift: ADWIN;
   performance; or time). When it fires, the loop waits for
   ``train_examples`` labelled lists after the firing;
2. **train** -- a candidate continues from the champion on those lists only
   (``retrain="stateful"``), or starts from scratch on the retained window
   (``"stateless"``), by pairwise ranking updates (clicked vs skipped, see
   :meth:`~workbench.recommender.recommender.Recommender.learn_pairs`); it is registered in the model store with the champion as
   parent, the feedback topic's offsets and event times as data range, the
   feature hashes, the trigger and its training cost;
3. **shadow** -- the service scores it next to the champion on every request;
   after ``shadow_examples`` clicked lists among those the service showed in
   random order (``shuffle_share`` of lists: there, position bias cannot
   favour the champion), the paired difference in where each version ranks
   the clicked item (:meth:`~workbench.learning.feedback.Labelled.rank_loss`)
   (block bootstrap, :func:`workbench.evaluation.lift.paired_lift`) is the
   gate: ``"not_worse"`` (default) or ``"better"``;
4. **canary** -- it serves ``canary_share`` of requests; after
   ``canary_lists`` of them its click rate must not be clearly worse than the
   champion's (P(canary is better) above 0.05);
5. **arm** -- Thompson sampling routes traffic between it and the champion by
   their click posteriors, both from the prior when the race starts; once
   each has served ``min_arm_lists``, at P(best) >= ``crown_at`` the better
   one is champion and the other is retired.

Every step is a routing change the service logs with its reason
(``workbench loop history``), and every version's lineage is in the model
store (``workbench models lineage``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.learning.feedback import Labelled
    from workbench.learning.triggers import Trigger

log = logging.getLogger(__name__)


class LoopError(WorkbenchError):
    """The loop cannot reach its service or its data."""


@dataclass
class LoopConfig:
    service_url: str = "http://127.0.0.1:8000"
    token_file: str | None = None
    feedback_topic: str = "feedback"
    events_topic: str | None = None  # clicks as events with a request_id (default: the settings' topic)
    trigger: Literal["drift", "performance", "time"] = "drift"
    every_minutes: float = 60.0  # the time trigger
    drift_delta: float = 0.002  # ADWIN's confidence
    drift_min_change: float = 0.1  # and the loss must have moved this much (relative): noise is not drift
    warmup_lists: int = 300  # champion lists before the trigger watches (the service and its feature jobs settle)
    retrain: Literal["stateful", "stateless"] = "stateful"
    train_examples: int = 300  # labelled lists after a firing that the candidate learns from
    window_examples: int = 20_000  # what stateless retraining starts from scratch on
    shadow_examples: int = 300
    shuffle_share: float = 0.2  # lists the service shows in random order: the shadow gate judges only those
    gate: Literal["not_worse", "better"] = "not_worse"
    canary_share: float = 0.1
    canary_lists: int = 100
    crown_at: float = 0.95
    min_arm_lists: int = 300  # lists each arm must have served in the race before either is crowned
    attribution_s: float = 30.0  # a click this long after the list still counts (the service's window too)


@dataclass(frozen=True)
class LoopEvent:
    at: float
    kind: str  # trigger, trained, shadow, canary, arm, champion, retired
    ref: str
    detail: str

    def __str__(self) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(self.at))}  {self.kind:<9} {self.ref:<22} {self.detail}"


@dataclass
class _Candidate:
    ref: str
    stage: str = "trained"
    diffs: list[float] = field(default_factory=list)
    base_losses: list[float] = field(default_factory=list)
    canary: list[int] = field(default_factory=lambda: [0, 0])  # lists, lists with a click
    champion: list[int] = field(default_factory=lambda: [0, 0])


class Admin:
    """The service's admin API with the token (a 401 becomes a one-line error)."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {token}"})

    def routing(self) -> dict[str, Any]:
        return self._call("GET", "/admin/routing")

    def stage(self, ref: str, stage: str, reason: str, share: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ref": ref, "stage": stage, "reason": reason[:2000]}
        if share is not None:
            body["share"] = share
        return self._call("POST", "/admin/routing", json=body)

    def explore(self, slots: int | None = None, reason: str = "", shuffle_share: float | None = None) -> dict[str, Any]:
        body = {"slots": slots, "shuffle_share": shuffle_share, "reason": reason}
        return self._call("POST", "/admin/explore", json={k: v for k, v in body.items() if v is not None})

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise LoopError(f"the service at {self.url} does not answer: {exc}") from exc
        if r.status_code == 401:
            raise LoopError(f"the service at {self.url} refused the admin token (401); check --token-file")
        if r.status_code >= 400:
            raise LoopError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        out: dict[str, Any] = r.json()
        return out

    def close(self) -> None:
        self._http.close()


def make_trigger(config: LoopConfig) -> Trigger:
    from workbench.learning.triggers import DriftTrigger, PerformanceTrigger, TimeTrigger

    if config.trigger == "drift":
        return DriftTrigger(delta=config.drift_delta, direction="up", min_change=config.drift_min_change)
    if config.trigger == "performance":
        return PerformanceTrigger(window_size=300, reference_size=300, min_drop=0.05)
    return TimeTrigger(every_minutes=config.every_minutes)


class Loop:
    """See the module docstring. ``step()`` does one round; ``run()`` rounds until stopped."""

    def __init__(self, config: LoopConfig | None = None, *, token: str | None = None,
                 trigger: Trigger | None = None, ranking_name: str | None = None) -> None:  # fmt: skip
        from workbench.learning.feedback import FeedbackJoin
        from workbench.serving.auth import admin_token

        self.config = c = config or LoopConfig()
        self.admin = Admin(c.service_url, token or admin_token(c.token_file, create=False))
        table = self.admin.routing()
        if not table.get("champion"):
            raise LoopError(f"the service at {c.service_url} has no champion version")
        self.champion: str = table["champion"]
        self.ranking_name = ranking_name or self.champion.split("/")[0]
        self.trigger = trigger or make_trigger(c)
        self.join = FeedbackJoin(int(c.attribution_s * 1000))
        self.window: deque[Labelled] = deque(maxlen=c.window_examples)
        self.fresh: list[Labelled] = []  # lists since the trigger fired: what a stateful candidate learns
        self.fired: str | None = None
        self.candidate: _Candidate | None = None
        self.events: list[LoopEvent] = []
        self.served: list[tuple[int, str, bool]] = []  # (time, version, clicked): the traffic picture
        self._consumer: Any = None
        self._looked = 0.0
        self._seen = 0  # champion lists observed
        if not table.get("shuffle_share") and c.shuffle_share > 0:
            # on lists in the champion's own order, clicks follow positions, which favours the champion
            self.admin.explore(shuffle_share=c.shuffle_share, reason="the loop's shadow gate compares on shuffled lists")
        self._adopt(table)

    # -- data -------------------------------------------------------------------------------------
    def _consume(self, timeout_s: float) -> int:
        import orjson

        if self._consumer is None:
            self._consumer = self._assign()
        n = 0
        for msg in self._consumer.consume(2000, timeout=timeout_s):
            if msg.error() is not None:
                continue
            try:
                record = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                self.join.add(record, msg.partition(), msg.offset())
                n += 1
        return n

    def _assign(self) -> Any:
        from confluent_kafka import TopicPartition

        from workbench.config import settings
        from workbench.streams.kafka import consumer, partitions, watermarks

        c = consumer(None, **{"auto.offset.reset": "latest"})
        topics = [self.config.feedback_topic, self.config.events_topic or settings().events_topic]
        try:
            # from the end: the loop judges what the service does from now on
            c.assign([TopicPartition(t, p, watermarks(c, t, p)[1]) for t in topics for p in partitions(c, t)])
        except Exception as exc:
            c.close()
            raise LoopError(f"cannot read {', '.join(topics)}: {str(exc).splitlines()[0]}") from exc
        return c

    # -- one round --------------------------------------------------------------------------------
    def step(self, timeout_s: float = 0.5, now_ms: int | None = None) -> list[LoopEvent]:
        """Read what arrived, close attribution windows, and move the candidate on; returns new events."""
        before = len(self.events)
        self._consume(timeout_s)
        for ex in self.join.due(int(time.time() * 1000) if now_ms is None else now_ms):
            self._observe(ex)
        self._advance()
        return self.events[before:]

    def run(self, stop: threading.Event | None = None, on_event: Callable[[LoopEvent], Any] = print) -> None:
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                for event in self.step():
                    on_event(event)
        finally:
            self.close()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.admin.close()

    def _event(self, kind: str, ref: str, detail: str) -> None:
        event = LoopEvent(time.time(), kind, ref, detail)
        self.events.append(event)
        log.info("%s", event)

    def _observe(self, ex: Labelled) -> None:
        self.window.append(ex)
        self.served.append((ex.t_ms, ex.ref, ex.any_click))
        cand = self.candidate
        if self.fired is not None and cand is None:
            self.fresh.append(ex)
        if ex.ref == self.champion:
            if cand is None:
                # the trigger watches the ranking as served: shuffled lists and exploration slots are a
                # change of policy, not of the world
                self._seen += 1
                if self.fired is None and not ex.shuffled and self._seen > self.config.warmup_lists and \
                        self.trigger.update(ex.loss(exploited_only=True), t_ms=ex.t_ms):  # fmt: skip
                    self.fired = self.trigger.reason or "trigger fired"
                    self.fresh = []
                    self._event("trigger", self.champion, f"{self.config.trigger}: {self.fired}")
            elif cand.stage == "shadow" and cand.ref in ex.shadow and ex.any_click and ex.shuffled:
                base = ex.rank_loss()
                cand.diffs.append(base - ex.rank_loss(ex.shadow[cand.ref]))
                cand.base_losses.append(base)
            elif cand.stage == "canary":
                cand.champion[0] += 1
                cand.champion[1] += ex.any_click
        elif cand is not None and ex.ref == cand.ref:
            cand.canary[0] += 1
            cand.canary[1] += ex.any_click

    def _adopt(self, table: dict[str, Any]) -> None:
        """Take on a version someone else staged (e.g. ``promote --to-model``), when no candidate is in flight."""
        self._looked = time.monotonic()
        staged = [(r, "shadow") for r in table.get("shadows", [])]
        if table.get("canary"):
            staged.append((table["canary"], "canary"))
        staged += [(r, "arm") for r in table.get("arms", []) if r != self.champion]
        if staged:
            ref, stage = staged[0]
            self.candidate = _Candidate(ref, stage=stage)
            self._event("adopted", ref, f"found in {stage}: the loop takes it from here")

    def _advance(self) -> None:
        cand, c = self.candidate, self.config
        if cand is None:
            if self.fired is not None and len(self.fresh) >= c.train_examples:
                self._train()
            elif time.monotonic() - self._looked > 2.0:
                self._adopt(self.admin.routing())
            return
        if cand.stage == "trained":
            self.admin.stage(cand.ref, "shadow", f"trained after: {self.fired}")
            cand.stage = "shadow"
            self._event("shadow", cand.ref, "scored next to the champion on every request, not served")
        elif cand.stage == "shadow" and len(cand.diffs) >= c.shadow_examples:
            self._gate(cand)
        elif cand.stage == "canary" and cand.canary[0] >= c.canary_lists:
            self._canary_verdict(cand)
        elif cand.stage == "arm":
            self._bandit(cand)

    # -- stages -----------------------------------------------------------------------------------
    def _train(self) -> None:
        from workbench.recommender.artifacts import load, save

        c = self.config
        examples = list(self.fresh) if c.retrain == "stateful" else list(self.window)
        name, number = self.champion.split("/")
        cpu0 = time.process_time()
        rec = load(int(number), ranking_name=name)
        if c.retrain == "stateless":
            from workbench.recommender.ranking import Ranker

            rec.ranker = Ranker(rec.learning_rate)
        for ex in examples:  # in time order, one list per update, as it was served
            rec.learn_pairs(ex.X, ex.clicked)
        cpu_s = time.process_time() - cpu0
        rec.data_range = feedback_range(examples, c.feedback_topic)
        version = save(rec, parent=self.champion, ranking_name=name, metrics={
            "retrain": c.retrain, "trigger": f"{c.trigger}: {self.fired}", "lists": len(examples),
            "clicks": int(sum(ex.any_click for ex in examples)), "train_cpu_s": round(cpu_s, 4),
        })  # fmt: skip
        self.candidate = _Candidate(version.ref)
        self.fresh = []
        self._event("trained", version.ref, f"{c.retrain} from {self.champion} on {len(examples)} lists "
                                            f"({cpu_s:.2f} CPU s)")  # fmt: skip

    def _gate(self, cand: _Candidate) -> None:
        from workbench.evaluation.lift import paired_lift

        lift = paired_lift(cand.diffs, cand.base_losses, seed=0)
        passed = lift.verdict == "better" if self.config.gate == "better" else lift.verdict != "worse"
        detail = (f"shadow rank-loss lift {lift.relative:+.1%} [{lift.relative_low:+.1%}, "
                  f"{lift.relative_high:+.1%}] over {lift.n} clicked lists: {lift.verdict}")  # fmt: skip
        if passed:
            self.admin.stage(cand.ref, "canary", detail, share=self.config.canary_share)
            cand.stage = "canary"
            self._event("canary", cand.ref, f"{detail}; serves {self.config.canary_share:.0%}")
        else:
            self._retire(cand, f"gate ({self.config.gate}) failed: {detail}")

    def _canary_verdict(self, cand: _Candidate) -> None:
        from workbench.learning.bandits import probability_best

        (n_c, k_c), (n_b, k_b) = cand.canary, cand.champion
        p = probability_best([1 + k_c, 1 + k_b], [1 + n_c - k_c, 1 + n_b - k_b])
        detail = f"canary CTR {k_c / max(n_c, 1):.3f} on {n_c} lists vs champion {k_b / max(n_b, 1):.3f}"
        if float(p[0]) > 0.05:
            self.admin.stage(cand.ref, "arm", f"{detail}; P(better) {float(p[0]):.2f}")
            cand.stage = "arm"
            self._event("arm", cand.ref, f"{detail}; now a bandit arm next to {self.champion}")
        else:
            self._retire(cand, f"{detail}: clearly worse (P(better) {float(p[0]):.3f})")

    def _bandit(self, cand: _Candidate) -> None:
        table = self.admin.routing()
        best = table.get("probability_best", {})
        trials = [a + b - 2 for a, b in table.get("posteriors", {}).values()]
        if len(trials) < 2 or min(trials) < self.config.min_arm_lists:
            return  # a lucky start is not evidence
        if best.get(cand.ref, 0.0) >= self.config.crown_at:
            old = self.champion
            self.admin.stage(cand.ref, "champion", f"bandit: P(best) {best[cand.ref]:.3f}")
            self.admin.stage(old, "retired", f"replaced by {cand.ref}")
            self._event("champion", cand.ref, f"bandit P(best) {best[cand.ref]:.3f}; {old} retired")
            self.champion, self.candidate, self.fired = cand.ref, None, None
            self.trigger.reset()
        elif best.get(self.champion, 0.0) >= self.config.crown_at:
            self._retire(cand, f"bandit prefers {self.champion}: P(best) {best[self.champion]:.3f}")

    def _retire(self, cand: _Candidate, why: str) -> None:
        self.admin.stage(cand.ref, "retired", why)
        self._event("retired", cand.ref, why)
        self.candidate, self.fired = None, None
        self.trigger.reset()

    # -- pictures ---------------------------------------------------------------------------------
    def traffic(self, bucket_s: float = 10.0) -> Any:
        """Lists served per version per time bucket, and their click rate: the bandit moving traffic."""
        import pandas as pd

        df = pd.DataFrame(self.served, columns=["t_ms", "version", "clicked"])
        if df.empty:
            return df
        df["time"] = pd.to_datetime((df["t_ms"] // int(bucket_s * 1000)) * int(bucket_s * 1000), unit="ms")
        out = df.groupby(["time", "version"]).agg(lists=("clicked", "size"), ctr=("clicked", "mean")).reset_index()
        out["share"] = out["lists"] / out.groupby("time")["lists"].transform("sum")
        return out


def feedback_range(examples: list[Labelled], topic: str) -> dict[str, Any]:
    """The data range of a candidate trained on logged lists: feedback offsets per partition and event times.

    >>> from workbench.learning.feedback import FeedbackJoin
    >>> feedback_range([], "feedback")
    {'topic': 'feedback', 'partitions': {}, 'event_time_ms': None, 'lists': 0}
    """
    parts: dict[str, list[int]] = {}
    for ex in examples:
        lo_hi = parts.setdefault(str(ex.partition), [ex.offset, ex.offset])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], ex.offset), max(lo_hi[1], ex.offset)
    times = [ex.t_ms for ex in examples]
    return {"topic": topic, "partitions": parts, "event_time_ms": [min(times), max(times)] if times else None,
            "lists": len(examples)}  # fmt: skip
