"""Typer's conversion of option values, without Pydantic on the common path.

Typer (0.2x) converts every value that is not a bool flag through a Pydantic TypeAdapter: the
first one imports Pydantic (about 50 ms) and each costs a millisecond or two to build, a third of
the start-up of `seqtag tag "..."`. The values seqtag's commands take are plain: text, lists of
text, paths without checks, whole numbers with bounds. ``SeqtagGroup`` and ``SeqtagCommand``
give each parameter of those kinds a converter that handles the ordinary case exactly as Typer's
would (a string stays itself, ASCII digits within the bounds make an int, a path that is absent
or readable becomes a Path) and hands anything else to Typer's own converter, Pydantic and all,
so that every value is accepted or refused, with the same message, as before
(tests/test_startup.py compares them value by value).

This reaches into Typer's internals (``typer._coercion.RuntimeParam``, the parameters'
``type_descriptor`` and ``_runtime_param``); where they are missing (other Typer versions) the
parameters are left alone and Typer converts as usual.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer.core

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:             # a Typer without the Pydantic layer: nothing to avoid
    RuntimeParam = build_runtime_param = None

# Longer numbers go to Typer: whatever it makes of 10**30 stays its own business.
_DIGITS = re.compile(r"[0-9]{1,18}")


def _plain_path(info) -> bool:
    """A path option that asks for no check but that an existing file be readable (the
    defaults), and no resolving, '-' or other type."""
    return (not info.exists and info.file_okay and info.dir_okay and not info.writable
            and not info.resolve_path and not info.allow_dash and info.path_type is None)


def _kind(descriptor) -> str | None:
    """What the fast converter does for this parameter, or None to leave it to Typer."""
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None:
        return None
    if annotation is str:
        return "str"
    if annotation is bool:
        return "bool"       # flags whose default is None (--install-completion)
    if annotation is int and not info.clamp:
        return "int"
    if annotation is Path and _plain_path(info):
        return "path"
    if getattr(annotation, "__origin__", None) is list and annotation.__args__ == (str,):
        return "strs"
    return None


if RuntimeParam is not None:
    class _Fast(RuntimeParam):
        """The ordinary values of one parameter; anything else goes to ``typer_param``."""

        def __init__(self, descriptor, kind: str):
            super().__init__(parameter_info=descriptor.parameter_info,
                             annotation=descriptor.annotation)
            object.__setattr__(self, "kind", kind)
            object.__setattr__(self, "descriptor", descriptor)
            object.__setattr__(self, "typer_param", None)

        def _typer(self, value, param, ctx):
            if self.typer_param is None:
                object.__setattr__(self, "typer_param", build_runtime_param(self.descriptor))
            return self.typer_param._coerce_value(value, param=param, ctx=ctx)

        def _coerce_value(self, value, param, ctx):
            kind, info = self.kind, self.parameter_info
            if kind == "str" and type(value) is str or kind == "bool" and type(value) is bool:
                return value
            if kind == "strs" and isinstance(value, (list, tuple)) and \
                    all(type(v) is str for v in value):
                return list(value)
            if kind == "int":
                number = int(value) if type(value) is str and _DIGITS.fullmatch(value) else \
                    value if type(value) is int else None
                if number is not None and (info.min is None or number >= info.min) and \
                        (info.max is None or number <= info.max):
                    return number
            if kind == "path" and type(value) is str:
                try:
                    os.stat(value)
                except OSError:
                    return Path(value)      # not there: Typer checks nothing more
                except ValueError:
                    pass                    # a NUL byte: Typer's message
                else:
                    if not info.readable or os.access(value, os.R_OK):
                        return Path(value)
            return self._typer(value, param, ctx)


def speed_up(params) -> None:
    """Give the plain ones of ``params`` the fast converter (once; idempotent)."""
    if RuntimeParam is None:
        return
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", 0) is not None:
            continue            # not Typer's, or already converted once
        try:
            kind = _kind(descriptor)
            if kind is not None:
                param._runtime_param = _Fast(descriptor, kind)
        except (AttributeError, TypeError):
            continue            # a Typer whose internals differ: its own conversion


# Before parsing, with get_params: Typer appends the completion options to the group after
# creating it, and click makes the --help option on first use.

class SeqtagGroup(typer.core.TyperGroup):
    def parse_args(self, ctx, args):
        speed_up(self.get_params(ctx))
        return super().parse_args(ctx, args)


class SeqtagCommand(typer.core.TyperCommand):
    def parse_args(self, ctx, args):
        speed_up(self.get_params(ctx))
        return super().parse_args(ctx, args)
