"""IPython magics of the Workbench kernel.

``%tap TOPIC [--since 10m] [--name x]`` opens a live tap, binds it to a
variable (``_tap`` unless ``--name`` says otherwise) and shows its live view.
The Workbench kernel loads these on start-up; any IPython kernel gets them
with ``%load_ext workbench.jupyter``.

>>> args = parse_tap_args("events --since 10m --name clicks")
>>> (args.topic, args.since, args.name)
('events', '10m', 'clicks')
>>> since_value("1700000000000"), since_value("earliest")
(1700000000000, 'earliest')
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

DEFAULT_NAME = "_tap"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as a one-line UsageError, never SystemExit."""

    def error(self, message: str) -> Any:
        raise UsageError(f"%tap: {message}; {' '.join(self.format_usage().split())}")


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


def since_value(text: str | None) -> str | int | None:
    """Digits become an int (an offset, or epoch ms from 2001 on); anything else stays text."""
    if text is not None and text.isdigit():
        return int(text)
    return text


@magics_class
class WorkbenchMagics(Magics):
    """``%tap``; feature, evaluation and promotion magics join when those capabilities land."""

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


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (idempotent: IPython replaces a magic of the same name)."""
    ipython.register_magics(WorkbenchMagics)
