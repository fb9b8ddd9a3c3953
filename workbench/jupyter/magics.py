"""IPython magics of the Workbench kernel.

``%tap TOPIC [--since 10m] [--name x]``
    opens a live tap, binds it (``_tap`` unless ``--name`` says otherwise) and shows its live view.
``%%feature NAME [--since 10m] [--duration 10] [--tap VAR] [--no-preview]``
    runs the cell (an expression that makes a ``wb.Feature``, or statements that assign
    ``NAME``), binds the feature to ``NAME`` and previews it on the stream path for
    ``--duration`` seconds on a tap of its source (or the tap in ``VAR``); the latest
    value per key is bound to ``_preview``.
``%evaluate MODEL --label LABEL --baseline F[,F..] --candidate F[,F..] [--source S] [--start T]
[--end T] [--set NAME] [--live S] [--name VAR]``
    is ``wb.evaluate`` with its arguments taken from the namespace: MODEL, LABEL and each
    feature are names or quoted Python expressions; ``--source`` is a DataFrame variable or a
    topic name. The result is bound to ``_evaluation`` (or ``--name``) and shown.
``%promote SET [--env E] [--force] [--yes]``
    shows the gate and the plan (a dry run); with ``--yes`` it then promotes and shows the
    result. SET is a registry name or a FeatureSet variable. Bound to ``_promotion``.

The Workbench kernel loads these on start-up; any IPython kernel gets them
with ``%load_ext workbench.jupyter``.

>>> args = parse_tap_args("events --since 10m --name clicks")
>>> (args.topic, args.since, args.name)
('events', '10m', 'clicks')
>>> since_value("1700000000000"), since_value("earliest")
(1700000000000, 'earliest')
>>> a = parse_evaluate_args("model --label lbl --baseline a --candidate a,b --set shop")
>>> (a.model, a.baseline, a.candidate, a.set, a.name)
('model', ['a'], ['a', 'b'], 'shop', '_evaluation')
>>> a = parse_promote_args("shop --env production --yes")
>>> (a.target, a.env, a.force, a.yes)
('shop', 'production', False, True)
>>> parse_feature_args("views_10m --duration 5").duration
5.0
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

DEFAULT_NAME = "_tap"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as a one-line UsageError, never SystemExit."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}; {' '.join(self.format_usage().split())}")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _tap_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%tap", add_help=False, description="Open a live tap on a Kafka topic.")
    p.add_argument("topic", help="the topic to watch")
    p.add_argument(
        "--since", default=None, help="latest (default), earliest, 10m, an ISO time, epoch ms or an offset"
    )
    p.add_argument(
        "--name", default=DEFAULT_NAME, help=f"variable the tap is bound to (default {DEFAULT_NAME})"
    )
    p.add_argument("--max-rows", type=int, default=None, help="ring-buffer bound (settings.tap_max_rows)")
    p.add_argument(
        "--schema", choices=("auto", "events", "json"), default="auto", help="how records are decoded"
    )
    p.add_argument("--quiet", action="store_true", help="bind the tap without showing the live view")
    return p


def parse_tap_args(line: str) -> argparse.Namespace:
    """Parse a ``%tap`` line; the variable name must be a Python identifier."""
    args = _tap_parser().parse_args(shlex.split(line))
    if not args.name.isidentifier():
        raise UsageError(f"%tap: --name {args.name!r} is not a Python identifier")
    return args


def parse_feature_args(line: str) -> argparse.Namespace:
    p = _Parser(prog="%%feature", add_help=False, description="Define a feature from the cell and preview it.")
    p.add_argument("name", help="variable the feature is bound to")
    p.add_argument("--since", default="10m", help="how far back the preview's tap starts (default 10m)")
    p.add_argument("--duration", type=float, default=10.0, help="preview seconds (default 10; 0: none)")
    p.add_argument("--tap", default=None, help="preview on this tap variable instead of a new tap")
    p.add_argument("--no-preview", action="store_true", help="define only")
    args = p.parse_args(shlex.split(line))
    if not args.name.isidentifier():
        raise UsageError(f"%%feature: {args.name!r} is not a Python identifier")
    return args


def parse_evaluate_args(line: str) -> argparse.Namespace:
    p = _Parser(prog="%evaluate", add_help=False, description="wb.evaluate with arguments from the namespace.")
    p.add_argument("model", help="a model variable or a quoted expression")
    p.add_argument("--label", required=True, help="a Label variable or a quoted expression")
    p.add_argument("--baseline", type=_names, required=True, help="comma-separated feature variables")
    p.add_argument("--candidate", type=_names, required=True, help="comma-separated feature variables")
    p.add_argument("--source", default=None, help="an events DataFrame variable, or a topic name")
    p.add_argument("--start", default=None, help="replay start (a topic source)")
    p.add_argument("--end", default=None, help="replay end (a topic source)")
    p.add_argument("--set", default=None, help="feature set name the record is stored under")
    p.add_argument("--live", type=float, default=0.0, help="seconds of live tail after history")
    p.add_argument("--name", default="_evaluation", help="variable the result is bound to")
    args = p.parse_args(shlex.split(line))
    if not args.name.isidentifier():
        raise UsageError(f"%evaluate: --name {args.name!r} is not a Python identifier")
    return args


def parse_promote_args(line: str) -> argparse.Namespace:
    p = _Parser(prog="%promote", add_help=False, description="Show the gate and plan, then promote.")
    p.add_argument("target", help="a feature set name in the registry, or a FeatureSet variable")
    p.add_argument("--env", default=None, help="local or production (settings.env by default)")
    p.add_argument("--force", action="store_true", help="promote through a closed gate (recorded)")
    p.add_argument("--yes", action="store_true", help="promote after showing the plan")
    return p.parse_args(shlex.split(line))


def since_value(text: str | None) -> str | int | None:
    """Digits become an int (an offset, or epoch ms from 2001 on); anything else stays text."""
    if text is not None and text.isdigit():
        return int(text)
    return text


@magics_class
class WorkbenchMagics(Magics):
    """``%tap``, ``%%feature``, ``%evaluate`` and ``%promote`` (see the module docstring)."""

    @line_magic
    def tap(self, line: str) -> None:
        """%tap TOPIC [--since 10m] [--name x] [--max-rows N] [--schema auto|events|json] [--quiet]

        Open a live tap on TOPIC, bind it to ``_tap`` (or ``--name``) and show its live view.
        """
        from workbench.errors import WorkbenchError
        from workbench.taps.tap import Tap, tap

        args = parse_tap_args(line)
        assert self.shell is not None  # set by register_magics
        ns = self.shell.user_ns
        old = ns.get(args.name)
        if isinstance(old, Tap):
            old.stop()  # rebinding would leak its reader thread
        try:
            new = tap(args.topic, since=since_value(args.since), max_rows=args.max_rows, schema=args.schema)
        except WorkbenchError as exc:
            raise UsageError(f"%tap: {exc}") from None
        ns[args.name] = new
        if not args.quiet:
            from IPython.display import display

            display(new)


    @cell_magic
    def feature(self, line: str, cell: str) -> None:
        """%%feature NAME [--since 10m] [--duration 10] [--tap VAR] [--no-preview]

        Run the cell, bind the wb.Feature it makes to NAME and preview it live.
        ``wb``, ``agg`` (aggregations) and ``win`` (windows) are provided when the notebook has not
        defined them.
        """
        import workbench as wb
        from workbench.errors import WorkbenchError
        from workbench.features.definition import Feature
        from workbench.taps.tap import Tap

        args = parse_feature_args(line)
        assert self.shell is not None
        ns = self.shell.user_ns
        for name, value in (("wb", wb), ("agg", wb.aggregations), ("win", wb.windows)):
            ns.setdefault(name, value)
        made = _run_body(cell, ns)
        found = made if isinstance(made, Feature) else ns.get(args.name)
        if not isinstance(found, Feature):
            raise UsageError(f"%%feature: the cell must end with an expression that makes a wb.Feature, "
                             f"or assign {args.name}")
        ns[args.name] = found
        print(f"{args.name} = Feature({found.name!r}) hash {found.hash}, source {found.source!r}")
        if args.no_preview or args.duration <= 0:
            return
        given = ns.get(args.tap) if args.tap else None
        if args.tap and not isinstance(given, Tap):
            raise UsageError(f"%%feature: --tap {args.tap!r} is not a tap in the notebook")
        try:
            live = given or wb.tap(found.source, since=since_value(args.since))
        except WorkbenchError as exc:
            raise UsageError(f"%%feature: {exc}") from None
        try:
            ns["_preview"] = found.preview(live, duration_s=args.duration)
        finally:
            if given is None:
                live.stop()  # the preview's own tap; a --tap stays the notebook's

    @line_magic
    def evaluate(self, line: str) -> None:
        """%evaluate MODEL --label LABEL --baseline F,.. --candidate F,.. [--source S] [--start T] [--end T]
        [--set NAME] [--live S] [--name VAR]

        ``wb.evaluate`` with MODEL, LABEL and features from the namespace; the result is bound to VAR.
        """
        from workbench.errors import WorkbenchError
        from workbench.evaluation.evaluate import evaluate

        args = parse_evaluate_args(line)
        assert self.shell is not None
        ns = self.shell.user_ns

        def value(expr: str) -> Any:
            try:
                return eval(expr, ns)  # noqa: S307 - the user's own notebook namespace
            except NameError as exc:
                raise UsageError(f"%evaluate: {exc} in the notebook") from None

        source = ns[args.source] if args.source is not None and args.source in ns else args.source
        try:
            result = evaluate(
                value(args.model), label=value(args.label), baseline=[value(n) for n in args.baseline],
                candidate=[value(n) for n in args.candidate], source=source, start=args.start, end=args.end,
                feature_set=args.set, live_s=args.live,
            )  # fmt: skip
        except WorkbenchError as exc:
            raise UsageError(f"%evaluate: {' '.join(str(exc).split())}") from None
        ns[args.name] = result
        print(result.summary() + (f"; record {result.record_id}" if result.record_id else ""))

    @line_magic
    def promote(self, line: str) -> None:
        """%promote SET [--env E] [--force] [--yes]

        Show the gate and the plan (a dry run); with --yes, then promote and show the result.
        """
        from IPython.display import display

        from workbench.errors import WorkbenchError
        from workbench.features.definition import FeatureSet
        from workbench.promote import promote

        args = parse_promote_args(line)
        assert self.shell is not None
        ns = self.shell.user_ns
        given = ns.get(args.target)
        target = given if isinstance(given, FeatureSet) else args.target
        try:
            planned = promote(target, env=args.env, dry_run=True, force=args.force, progress=False)
            ns["_promotion"] = planned
            display(planned)
            if planned.status != "planned":
                return  # refused (the gate says why) or unchanged: nothing to confirm
            if not args.yes:
                again = " --force" if args.force else ""
                print(f"dry run: nothing changed. To promote: %promote {args.target}{again} --yes")
                return
            done = promote(target, env=args.env, force=args.force, progress=True)
        except (WorkbenchError, LookupError) as exc:
            raise UsageError(f"%promote: {' '.join(str(exc).split())}") from None
        ns["_promotion"] = done
        display(done)


def _run_body(cell: str, ns: dict[str, Any]) -> Any:
    """Execute a cell in ``ns``; the value of its last statement when that is an expression."""
    import ast

    tree = ast.parse(cell, filename="<%%feature>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<%%feature>", "exec"), ns)  # noqa: S102 - the user's own cell
    if not isinstance(last, ast.Expr):
        return None
    return eval(compile(ast.Expression(last.value), "<%%feature>", "eval"), ns)  # noqa: S307


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (idempotent: IPython replaces a magic of the same name)."""
    ipython.register_magics(WorkbenchMagics)
