"""One promotion for the whole chain: a feature set into the store, and into a candidate ranking version.

``workbench promote SET --to-model ranking`` (or :func:`promote_to_model`):

1. promotes the set as usual (gate, plan, apply, backfill, job, switch, record);
2. builds a candidate from the ranking champion (the service's, else the
   newest version) that also reads the set's features, per candidate item,
   continuing the champion's ranker (:mod:`workbench.recommender.extension`)
   on the newest sessions of the source topic's history;
3. registers it in the model store: parent the champion, the set's
   definition hashes among its feature hashes, the history's data range and
   the promotion's version in its metrics;
4. puts it in **shadow** in the running service (token-protected admin API),
   where ``workbench loop run`` takes it on through canary and bandit to
   champion; every step lands in the routing log and the model's lineage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet
    from workbench.promote.promotion import Promotion

MODELS = {"ranking": "session_ranker"}


@dataclass
class ModelPromotion:
    promotion: Promotion
    candidate: str | None = None
    parent: str | None = None
    stage: str | None = None  # "shadow" when the service took it
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join([self.promotion.summary(), *self.lines])

    def __repr__(self) -> str:
        return f"ModelPromotion({self.summary()})"


def champion_ref(service: str = "recommender", model: str = "session_ranker") -> str:
    """The service's champion (its routing table), else the newest version of ``model``."""
    from workbench import models
    from workbench.serving.routing import RoutingStore

    champion = RoutingStore().read(service).champion
    return champion if champion is not None else models.get(model).ref


def promote_to_model(target: str | FeatureSet, *, model: str = "ranking", env: str | None = None,
                     force: bool = False, hours: float = 24.0, service: str = "recommender",
                     service_url: str | None = "http://127.0.0.1:8000", token_file: str | None = None,
                     max_prefixes: int = 20_000, progress: bool = True) -> ModelPromotion:  # fmt: skip
    """Promote ``target`` and make a shadow candidate of ``model`` that reads it; see the module docstring."""
    import time

    from workbench.promote.promotion import promote, resolve
    from workbench.recommender.extension import check_item_set

    if model not in MODELS:
        raise WorkbenchError(f"--to-model {model!r}: the models that take promoted features are {', '.join(MODELS)}")
    fs = resolve(target)
    check_item_set(fs)  # before anything is promoted: a set the ranker cannot read is refused up front
    say = print if progress else (lambda *_a: None)
    result = ModelPromotion(promote(fs, env=env, force=force, progress=progress))
    if result.promotion.status not in ("promoted", "unchanged"):
        return result
    parent = champion_ref(service, MODELS[model])
    say(f"[model 1/3] candidate: {parent} + {fs.name}'s {len(fs.features)} features, trained on the last "
        f"{hours:g} h of {fs.features[0].source}")  # fmt: skip
    candidate, report = _train(parent, fs, hours, max_prefixes, result.promotion.version)
    result.parent, result.candidate = parent, candidate
    result.lines.append(f"{candidate}: {parent} continued with {fs.name} v{result.promotion.version} on "
                        f"{report['lists']} next-item examples")  # fmt: skip
    say(f"[model 2/3] registered {candidate} (parent {parent})")
    if service_url is None:
        result.lines.append(f"{candidate}: not staged (no service); POST /admin/routing puts it in shadow")
        return result
    try:
        from workbench.learning.loop import Admin
        from workbench.serving.auth import admin_token

        admin = Admin(service_url, admin_token(token_file, create=False))
        try:
            admin.stage(candidate, "shadow", f"promote {fs.name} v{result.promotion.version} --to-model {model} "
                                             f"at {time.strftime('%Y-%m-%d %H:%M:%S')}")  # fmt: skip
        finally:
            admin.close()
    except WorkbenchError as exc:
        result.lines.append(f"{candidate}: registered, not in shadow: {exc}")
        say(f"[model 3/3] not staged: {exc}")
        return result
    result.stage = "shadow"
    result.lines.append(f"{candidate}: in shadow at {service_url}; `workbench loop run` takes it to canary and "
                        "bandit routing")  # fmt: skip
    say(f"[model 3/3] {candidate} in shadow at {service_url}")
    return result


def _train(parent: str, fs: FeatureSet, hours: float, max_prefixes: int, set_version: int) -> tuple[str, Any]:
    import time

    from workbench import models
    from workbench.recommender.artifacts import load, save
    from workbench.recommender.extension import extend
    from workbench.taps.replay import replay

    name, number = models.parse_ref(parent)
    rec = load(number, ranking_name=name)
    topic = fs.features[0].source
    now_ms = int(time.time() * 1000)
    history = replay(topic, now_ms - int(hours * 3_600_000), now_ms, progress=False)
    child, report = extend(rec, fs, history, max_prefixes=max_prefixes, topic=topic)
    version = save(child, parent=parent, ranking_name=name, metrics={
        "added_feature_set": fs.name, "feature_set_version": set_version, "retrain": "stateful",
        "lists": report["lists"]})  # fmt: skip
    return version.ref, report
