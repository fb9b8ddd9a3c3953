"""Code fingerprints: what a custom aggregation's *logic* is, independent of its formatting.

The fingerprint is part of a feature's hash, so reformatting a custom
aggregation, editing its comments or docstrings keeps the hash, and changing
what it computes changes it.

>>> class Twice:
...     def result(self, state):
...         return 2 * state
>>> class_fingerprint(Twice).startswith("bytecode:")   # doctest classes have no source file
True
"""

from __future__ import annotations

import ast
import inspect
import textwrap


def class_fingerprint(cls: type) -> str:
    """Normalized code of a class: its AST without docstrings, so reformatting keeps the hash.

    Without source (a class typed into a REPL) the methods' bytecode stands in:
    still blind to formatting and comments, but tied to the Python version.
    """
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return _bytecode_fingerprint(cls)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _bytecode_fingerprint(cls: type) -> str:
    parts = [cls.__qualname__]
    for name, member in sorted(vars(cls).items()):
        code = getattr(member, "__code__", None)
        if code is None:
            if not name.startswith("__"):
                parts.append(f"{name}={member!r}")
            continue
        consts = list(code.co_consts)
        if consts and (consts[0] is None or consts[0] == member.__doc__):
            consts[0] = "<docstring slot>"  # a docstring or its absence is not logic
        parts.append(f"{name}:{code.co_code.hex()}:{consts!r}:{code.co_names!r}:{code.co_varnames!r}")
    return "bytecode:" + "|".join(parts)
