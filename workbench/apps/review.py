# mypy: allow-untyped-defs
# The feature review app: `workbench review SET` runs it with `marimo run ... -- --set SET`.
# Panels live in workbench/apps/panels.py; this file only lays them out.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Workbench feature review")


@app.cell
def _():
    import marimo as mo

    from workbench.apps import panels

    return mo, panels


@app.cell
def _(mo):
    from workbench.features.sets import load_set

    _args = mo.cli_args()
    set_name = str(_args.get("set") or "")
    since = str(_args.get("since") or "10m")
    mo.stop(not set_name, mo.callout(mo.md("Start the app with `workbench review SET`."), kind="warn"))
    feature_set = load_set(set_name)
    hashes = [f.hash for f in feature_set.features]
    return feature_set, hashes, set_name, since


@app.cell
def _(feature_set, mo, panels):
    mo.vstack([
        mo.md(f"# Review: feature set `{feature_set.name}`\n\n"
              f"set hash **`{feature_set.hash}`**, {len(feature_set.features)} feature(s) from topic "
              f"`{feature_set.features[0].source}`, written to `{feature_set.topic}` when promoted."),
        mo.ui.table(panels.definition_frame(feature_set), selection=None, label="definitions"),
    ])
    return


@app.cell
def _(mo):
    refresh = mo.ui.refresh(options=["2s", "5s", "10s", "30s"], default_interval="5s", label="live refresh")
    return (refresh,)


@app.cell
def _(feature_set, panels, since):
    live_tap = panels.shared_tap(feature_set.features[0].source, since)
    return (live_tap,)


@app.cell
def _(feature_set, live_tap, mo, panels, refresh, since):
    _tick = refresh.value  # referencing the element re-runs this cell on every tick
    recent = live_tap.df()
    _tables = panels.latest_by_feature(feature_set, recent)
    mo.vstack([
        mo.hstack([mo.md(f"## Live values\n{len(recent)} events tapped from `{live_tap.topic}` since "
                         f"{since}; the newest value of the busiest keys"), refresh]),
        mo.hstack([mo.vstack([mo.md(f"**{_name}**"), mo.ui.table(_t, selection=None, page_size=10)])
                   for _name, _t in _tables.items()], widths="equal", align="start") if _tables
        else mo.md("_waiting for events…_"),
    ])
    return (recent,)


@app.cell
def _(mo):
    recheck = mo.ui.run_button(label="Re-check skew on recent history")
    return (recheck,)


@app.cell
def _(feature_set, mo, panels, recheck):
    _note = ""
    if recheck.value:
        with mo.status.spinner(title="stream path vs backfill, in a child process…"):
            _id, _n, _records = panels.recheck_skew(feature_set)
        _note = f"re-checked now: {_n} mismatches over {_records} records (record {_id})"
    skew = panels.skew_summary(feature_set)
    _kind = "neutral" if skew.ok is None else "success" if skew.ok else "danger"
    mo.vstack([
        mo.md("## Backfill vs live skew\nexpected: **0 mismatches**"),
        mo.callout(mo.md(f"**skew:** {skew.text}"), kind=_kind),
        mo.md(_note) if _note else mo.md(""),
        recheck,
    ])
    return (skew,)


@app.cell
def _(feature_set, hashes, panels):
    records = panels.evaluation_records(feature_set)
    _passing = [r for r in records if r.verdict == "better" and sorted(r.candidate_hashes) == sorted(hashes)]
    training = panels.training_window(feature_set, _passing[-1] if _passing else (records[-1] if records else None))
    training_values = panels.numeric_values(feature_set, training)
    return records, training, training_values


@app.cell
def _(feature_set, mo, panels, recent, training, training_values):
    _fig, _scores = panels.distribution_figure(training_values, panels.numeric_values(feature_set, recent))
    _drifted = [n for n, s in _scores.items() if s > panels.DRIFT_PSI]
    mo.vstack([
        mo.md(f"## Distribution against the training window\ntraining window: {len(training)} events; "
              + (f"**drift** in {', '.join(_drifted)}" if _drifted else "no feature drifted")
              + f" (PSI > {panels.DRIFT_PSI})"),
        _fig,
    ])
    return


@app.cell
def _(hashes, mo, panels, records):
    mo.vstack([mo.md("## Evaluation lift"), panels.lift_figure(records, hashes)])
    return


@app.cell
def _(feature_set, mo):
    from workbench.promote import promote

    try:
        planned = promote(feature_set, dry_run=True, progress=False)  # gate, then the plan; changes nothing
        _view = mo.Html(planned._repr_html_())
    except Exception as _exc:  # no feature repo, no broker: say so in one line
        planned = None
        _view = mo.callout(mo.md(f"cannot plan: {' '.join(str(_exc).split())}"), kind="danger")
    approve = mo.ui.run_button(label="Approve and promote", kind="success",
                               disabled=planned is None or planned.status != "planned")
    mo.vstack([mo.md("## Promotion plan"), _view, approve])
    return approve, promote


@app.cell
def _(approve, feature_set, mo, promote):
    mo.stop(not approve.value)
    try:
        with mo.status.spinner(title=f"promoting {feature_set.name}…"):
            _result = promote(feature_set, progress=False)
        _view = mo.vstack([mo.Html(_result._repr_html_()),
                           mo.callout(mo.md(f"**{_result.status}**: `{_result.summary()}`"),
                                      kind="success" if _result.status == "promoted" else "warn")])
    except Exception as _exc:  # PromotionFailed: every step was undone; show the one line
        _view = mo.callout(mo.md(f"promotion failed: {' '.join(str(_exc).split())}"), kind="danger")
    mo.vstack([mo.md("## Promotion result"), _view])
    return


if __name__ == "__main__":
    app.run()
