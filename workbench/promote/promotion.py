"""``promote``: gate, generate, plan, apply, backfill, start the job, switch, record.

Every step before the switch only adds: new files, the version's own Feast
objects and online rows, its own job. The switch is one registry write that
re-points the FeatureService ``<set>``. A failing step undoes every earlier
step in reverse, so production is left as it was; the error names the step.

>>> Promotion("shop", 2, "refused", Gate(False, ["no skew check"])).summary()
'shop v2: refused (gate closed: no skew check)'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.promote.gate import Gate

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet
    from workbench.promote.lineage import PromotionRecord
    from workbench.promote.plan import Plan
    from workbench.promote.store import VersionObjects

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class PromotionFailed(WorkbenchError):
    """A step failed; everything before it was undone."""


@dataclass
class Promotion:
    feature_set: str
    version: int
    status: str  # refused | planned | promoted | unchanged
    gate: Gate
    plan: Plan | None = None
    record_id: str | None = None
    env: str = "local"
    steps: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.status == "refused":
            return f"{self.feature_set} v{self.version}: refused ({self.gate.line()})"
        if self.status == "unchanged":
            return f"{self.feature_set} v{self.version}: unchanged (these definitions are already active)"
        return f"{self.feature_set} v{self.version}: {self.status} in {self.env} ({self.gate.line()})"

    def __repr__(self) -> str:
        return f"Promotion({self.summary()})"

    def _repr_html_(self) -> str:
        import html

        colour = {"promoted": "#0a0", "unchanged": "#555", "planned": "#06c"}.get(self.status, "#c00")
        plan = f"<pre>{html.escape(self.plan.text)}</pre>" if self.plan else ""
        return f"<b style='color:{colour}'>{html.escape(self.summary())}</b>{plan}"


def resolve(target: str | FeatureSet) -> FeatureSet:
    """A FeatureSet object, or a name: the newest stored version with a passing evaluation, else the newest."""
    from workbench.features.definition import FeatureSet
    from workbench.features.sets import build_set, load_set, set_entries

    if isinstance(target, FeatureSet):
        fs = target
    else:
        entries = set_entries(target)
        fs = load_set(target)  # raises a clear LookupError when unknown
        for entry in entries:
            candidate = build_set(entry)
            from workbench.evaluation.records import find_passing

            if find_passing([f.hash for f in candidate.features]) is not None:
                fs = candidate
                break
    if not _NAME.match(fs.name):
        raise WorkbenchError(f"feature set name {fs.name!r}: use letters, digits and _ (it names Feast objects)")
    if not fs.features:
        raise WorkbenchError(f"feature set {fs.name!r} has no features")
    return fs


class _Run:
    """One promotion's steps; each registers how to undo itself."""

    def __init__(self, fs: FeatureSet, env: str, say: Callable[[str], None]) -> None:
        from workbench.promote import lineage
        from workbench.promote.store import open_store, repo_path, version_objects

        self.fs, self.env, self.say = fs, env, say
        self.store = open_store(env)
        self.repo = repo_path(env)
        self.previous = lineage.active(fs.name, env)
        self.version = lineage.next_version(fs.name, env)
        self.objects: VersionObjects = version_objects(fs, self.version)
        self.undo: list[tuple[str, Callable[[], None]]] = []
        self.events: Any = None
        self.data_range: dict[str, Any] = {}
        self.seam: dict[str, int] = {}

    # -- steps ----------------------------------------------------------------
    def generate(self) -> dict[str, str]:
        """The files this version writes: its module and the grown entities module."""
        from workbench.promote import codegen

        known = {e.name: e for e in _promoted_entities(self.env)}
        for f in self.fs.features:
            known.setdefault(f.entity.name, f.entity)
        return {
            f"{self.fs.name}_v{self.version}.py": codegen.render_version(self.fs, self.version),
            "entities.py": codegen.render_entities(list(known.values())),
        }

    def apply(self, files: dict[str, str]) -> None:
        from workbench.jobs.spec import read, spec_path
        from workbench.promote import codegen
        from workbench.promote.naming import job_name

        leftover = job_name(self.fs.name, self.version, self.env)
        if spec_path(leftover).exists():  # an attempt at this version died before it could undo itself
            self.say(f"      discarding job {leftover} left by an interrupted promotion")
            _discard_job(read(leftover))

        for name, text in files.items():
            path = self.repo / name
            old = path.read_text() if path.exists() else None
            codegen.write(path, text)
            self.undo.append((f"restore {name}", _restorer(path, old)))
        existing = {e.name for e in self.store.list_entities()}
        new_entities = [e for e in self.objects.entities if e.name not in existing]
        added: list[Any] = [*new_entities, *self.objects.sources, *self.objects.views, self.objects.service]

        def remove() -> None:
            self.store.apply([], objects_to_delete=added, partial=False)

        self.undo.append(("delete the version's Feast objects and online rows", remove))
        self.store.apply(added)

    def backfill(self) -> int:
        from workbench.evaluation.evaluate import data_range
        from workbench.promote.offline import materialize, offline_tables, seam_of, write_tables
        from workbench.taps.replay import replay

        source = self.fs.features[0].source
        self.events = replay(source, progress=None)
        self.data_range = data_range(self.events, source)
        self.seam = seam_of(self.events)
        self.data_range["seam"] = self.seam
        tables = offline_tables(self.fs, self.version, self.events)
        paths = write_tables(self.repo, tables)
        def delete() -> None:
            for p in paths:
                p.unlink(missing_ok=True)

        self.undo.append(("delete the offline tables", delete))
        return materialize(self.store, tables)

    def start_job(self) -> str:
        from workbench import jobs
        from workbench.features.definition import save
        from workbench.jobs.spec import JobSpec, write
        from workbench.promote.naming import job_name, join_key, view_names

        save(self.fs.features)
        views = view_names(self.fs, self.version)
        spec = JobSpec(
            job=job_name(self.fs.name, self.version, self.env), feature_set=self.fs.name, version=self.version,
            feature_hashes=[f.hash for f in self.fs.features], env=self.env, repo_path=str(self.repo),
            views=views, join_keys={views[f.name]: join_key(f.entity) for f in self.fs.features},
            seam=self.seam,
        )  # fmt: skip
        write(spec)
        self.undo.append((f"stop job {spec.job} and delete its state", lambda: _discard_job(spec)))
        status = jobs.start(spec.job)
        if status.status == "failed":
            raise PromotionFailed(f"job {spec.job} failed to start: {status.health}")
        return spec.job

    def switch_and_record(self, gate: Gate) -> PromotionRecord:
        """One DB transaction around one registry write: both happen, or neither."""
        from workbench.features.sets import origin
        from workbench.promote import codegen, lineage
        from workbench.promote.naming import view_names
        from workbench.promote.store import set_service

        rec = lineage.PromotionRecord(
            env=self.env, feature_set=self.fs.name, version=self.version, set_hash=self.fs.hash,
            feature_hashes=[f.hash for f in self.fs.features], views=view_names(self.fs, self.version),
            evaluation_id=gate.evaluation_id, skew_id=gate.skew_id, forced=gate.forced,
            origin=_origin_of(self.fs, origin()), data_range=self.data_range,
        )  # fmt: skip
        path = self.repo / f"{self.fs.name}.py"
        old = path.read_text() if path.exists() else None
        view_list = sorted({v.name for v in self.objects.views})
        with lineage.engine().begin() as conn:
            if self.previous is not None:
                lineage.set_status(conn, self.previous, "inactive", rec.created_at)
            lineage.insert(conn, rec)
            codegen.write(path, codegen.render_set_service(self.fs.name, self.version, view_list))
            try:
                self.store.apply([set_service(self.fs.name, self.objects.views, self.version)])
            except BaseException:
                _restorer(path, old)()
                raise
        return rec


def _restorer(path: Any, old: str | None) -> Callable[[], None]:
    def restore() -> None:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            from workbench.promote.codegen import write

            write(path, old)

    return restore


def _discard_job(spec: Any) -> None:
    import shutil

    from workbench import jobs
    from workbench.jobs.spec import jobs_dir
    from workbench.streams.kafka import delete_consumer_group_and_topics

    jobs.stop(spec.job)
    delete_consumer_group_and_topics(spec.consumer_group)
    shutil.rmtree(jobs_dir() / spec.job, ignore_errors=True)


def _promoted_entities(env: str) -> list[Any]:
    from workbench.features.definition import load
    from workbench.promote import lineage

    out = []
    for name in lineage.all_sets(env):
        for rec in lineage.history(name, env):
            for h in rec.feature_hashes:
                try:
                    out.append(load(h).entity)
                except (OSError, ValueError):
                    continue  # a definition lost from the registry: its entity stays in the applied registry
    return out


def _origin_of(fs: FeatureSet, fallback: str) -> str:
    from workbench.features.sets import set_entries

    return next((e["origin"] for e in set_entries(fs.name) if e["hash"] == fs.hash), fallback)


def promote(
    target: str | FeatureSet,
    *,
    env: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Promotion:
    """Promote a feature set (object or registry name) into the Feast feature store of ``env``."""
    from workbench.promote import lineage
    from workbench.promote.gate import check_gate
    from workbench.promote.plan import make_plan
    from workbench.promote.store import environment

    env = environment(env)
    fs = resolve(target)
    say: Callable[[str], None] = _printer() if progress else (lambda _m: None)
    current = lineage.active(fs.name, env)
    if current is not None and current.set_hash == fs.hash:
        gate = Gate(True, evaluation_id=current.evaluation_id, skew_id=current.skew_id, forced=current.forced)
        say(f"{fs.name}: these definitions are already active as v{current.version}; nothing to do")
        return Promotion(fs.name, current.version, "unchanged", gate, record_id=current.id, env=env)

    gate = check_gate(fs)
    version = lineage.next_version(fs.name, env)
    say(f"[1/7] gate: {gate.line()}")
    if not gate.ok:
        if not force:
            return Promotion(fs.name, version, "refused", gate, env=env)
        gate.forced = True
        say("      --force: the override is recorded with the promotion")

    run = _Run(fs, env, say)
    files = run.generate()
    say(f"[2/7] generate: {', '.join(files)} in {run.repo}")
    plan = make_plan(run.store, fs, run.objects, files, previous=run.previous, env=env)
    say(f"[3/7] plan:\n{plan.text}")
    if dry_run:
        return Promotion(fs.name, run.version, "planned", gate, plan, env=env)

    step = "apply"
    try:
        say("[4/7] apply: the version's objects (additive)")
        run.apply(files)
        step = "backfill"
        rows = run.backfill()
        say(f"[5/7] backfill: {len(run.events):,} events → offline store; {rows:,} keys materialized online")
        step = "start job"
        job = run.start_job()
        say(f"[6/7] job {job}: running (supervised); `workbench jobs logs {job}`")
        step = "switch"
        rec = run.switch_and_record(gate)
    except BaseException as exc:
        _undo(run, say)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PromotionFailed(f"promote {fs.name} v{run.version} failed at {step}: {exc}; "
                              "production is unchanged") from exc
    say(f"[7/7] switch: FeatureService {fs.name!r} → v{run.version}; record {rec.id}")
    if run.previous is not None:
        _stop_quietly(run.previous.job, say)
    return Promotion(fs.name, run.version, "promoted", gate, plan, rec.id, env)


def _undo(run: _Run, say: Callable[[str], None]) -> None:
    for what, action in reversed(run.undo):
        try:
            action()
            say(f"      undone: {what}")
        except Exception as exc:  # keep undoing the rest; report what could not be undone
            say(f"      could not {what}: {exc}")


def _stop_quietly(job: str, say: Callable[[str], None]) -> None:
    from workbench import jobs

    try:
        jobs.stop(job)
        say(f"      stopped the previous version's job {job}")
    except Exception as exc:
        say(f"      previous job {job} not stopped: {exc}")


def _printer() -> Callable[[str], None]:
    import sys

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return say

