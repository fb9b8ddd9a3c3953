"""The plan of a promotion: Feast's own registry and infra diff, plus what Workbench will do.

The diff is computed like ``feast plan``: the registry as it is against the
registry as it will be once the version is added and ``<set>`` re-pointed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.features.definition import FeatureSet
    from workbench.promote.lineage import PromotionRecord
    from workbench.promote.store import VersionObjects



@dataclass
class Plan:
    text: str
    registry: list[str]
    infra: list[str]

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text)}</pre>"


_VERBS = {"CREATE": "Created", "DELETE": "Deleted", "UPDATE": "Updated"}


def registry_lines(diff: Any) -> list[str]:
    """Feast's registry diff, one line per object; a re-pointed FeatureService shows its views."""
    lines: list[tuple[str, str, str]] = []
    for d in diff.feast_object_diffs:
        verb = _VERBS.get(d.transition_type.name)
        if verb is None:
            continue  # unchanged
        kind = d.feast_object_type.value
        line = f"{verb} {kind} {d.name}"
        if verb == "Updated":
            old, new = d.current_feast_object, d.new_feast_object
            if hasattr(old, "feature_view_projections"):
                was = ", ".join(p.name for p in old.feature_view_projections)
                now = ", ".join(p.name for p in new.feature_view_projections)
                line += f": views {was} → {now}"
            else:
                line += ": " + ", ".join(p.property_name for p in d.feast_object_property_diffs)
        lines.append((kind, d.name, line))
    order = ["project", "entity", "data source", "feature view", "feature service"]
    return [line for _k, _n, line in sorted(lines, key=lambda t: (order.index(t[0]) if t[0] in order else 9, t[1]))]


def desired_contents(store: Any, objects: VersionObjects, service: Any) -> Any:
    """The registry after this promotion: everything there now, the new version, the re-pointed service."""
    from feast.repo_contents import RepoContents

    def merge(existing: list[Any], new: list[Any]) -> list[Any]:
        names = {o.name for o in new}
        return [o for o in existing if o.name not in names] + new

    from feast.errors import FeastObjectNotFoundException

    try:
        projects = [store.get_project(store.project)]  # absent from the contents, Feast plans its deletion
    except FeastObjectNotFoundException:
        projects = []
    return RepoContents(
        projects=projects,
        data_sources=merge(store.list_data_sources(), objects.sources),
        feature_views=merge(store.list_feature_views(), objects.views),
        on_demand_feature_views=store.list_on_demand_feature_views(),
        stream_feature_views=store.list_stream_feature_views(),
        label_views=[],
        entities=merge(store._list_entities(hide_dummy_entity=False), objects.entities),  # as `feast plan` sees it
        feature_services=merge(store.list_feature_services(), [objects.service, service]),
        permissions=[],
    )


def make_plan(
    store: Any,
    fs: FeatureSet,
    objects: VersionObjects,
    files: dict[str, str],
    previous: PromotionRecord | None,
    env: str = "local",
) -> Plan:
    from workbench.promote.naming import job_name
    from workbench.promote.store import data_file, set_service

    service = set_service(fs.name, objects.views, objects.version)
    registry_diff, _infra_diff, _ = store.plan(desired_contents(store, objects, service))
    registry = registry_lines(registry_diff)
    kind = type(store.config.online_store).__name__.removesuffix("OnlineStoreConfig").lower() or "online"
    infra = [f"Created {kind} table {store.project}_{v.name}" for v in objects.views]
    before = set(previous.feature_hashes) if previous else set()
    defs = [f"  {f.name:<24} {f.hash}  {'unchanged' if f.hash in before else 'new'}" for f in fs.features]
    repo_files = [*files, f"{fs.name}.py"]
    was = f"v{previous.version}" if previous else "nothing"
    then = [
        f"  backfill {fs.features[0].source} (all retained records) with the backfill path → "
        + ", ".join(data_file(v.name) for v in objects.views) + "; materialize online",
        f"  start job {job_name(fs.name, objects.version, env)} (supervised, exactly-once) from the backfill's seam",
        f"  switch FeatureService {fs.name!r}: {was} → v{objects.version} (one registry write)",
    ]
    if previous:
        then.append(f"  stop job {previous.job} (rollback restarts it)")
    text = "\n".join([
        f"Plan: feature set {fs.name!r} → v{objects.version} (set hash {fs.hash})",
        "Definitions:", *defs,
        "Registry:", *(f"  {line}" for line in registry or ["no changes"]),
        "Infra:", *(f"  {line}" for line in infra or ["no changes"]),
        "Files: " + ", ".join(repo_files),
        "Then:", *then,
    ])  # fmt: skip
    return Plan(text, registry, infra)
