"""A step's parameters from its callable's signature, and the type check of TOML values against them.

A step's parameters are the keyword arguments of the function it calls, minus
those the runner supplies (the model, the data, the calibration inputs).
Their types come from the annotation (``int``, ``float | None``,
``dict[str, int]``, ``tuple[int, int] | None`` ...) or, when there is none,
from the default's type; a parameter neither annotated nor defaulted to a
plain value takes any TOML value (the function checks it when called).
"""

from __future__ import annotations

import dataclasses
import inspect
import math

__all__ = ["Param", "parameters", "check_type", "describe"]

#: annotation names -> the TOML value kind they accept
_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "None": "none",
          "dict": "table", "Mapping": "table", "list": "array", "tuple": "array", "Sequence": "array",
          "Iterable": "array"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter a recipe may set: its name, accepted type (parsed) and default."""
    name: str
    type: tuple | None            # alternatives ((kind, element types), ...); None: any value
    required: bool
    default: object = None
    is_tuple: bool = False        # a TOML array is passed on as a tuple


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + [cur.strip()]


def _parse(text: str):
    """Annotation text -> alternatives ((kind, element alternatives per argument), ...), or None if unknown."""
    out = []
    for alt in _split_top(text, "|"):
        head, _, rest = alt.partition("[")
        kind = _KINDS.get(head.strip().rsplit(".", 1)[-1])
        if kind is None:
            return None
        args = tuple(_parse(a) for a in _split_top(rest[:-1], ",")) if rest else ()
        out.append((kind, args))
    return tuple(out)


def _from_default(default):
    """The kind of an unannotated parameter's default (bool first: a bool is also an int), or None."""
    for t, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (tuple, "array")):
        if isinstance(default, t):
            return ((kind, ()),)
    return None


def parameters(fn, *, exclude=(), types: dict | None = None) -> dict[str, Param]:
    """{name: Param} of ``fn``'s parameters after the first (the model), minus ``exclude``.

    types : {name: annotation text} replacing the function's own (for unannotated ones).
    """
    types = types or {}
    out = {}
    for i, (name, p) in enumerate(inspect.signature(fn).parameters.items()):
        if i == 0 or name in exclude or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        text = types.get(name, p.annotation if isinstance(p.annotation, str) else None)
        required = p.default is p.empty
        parsed = _parse(text) if text else None
        if parsed is None and not text and not required:
            parsed = _from_default(p.default)
        if parsed is not None and not required and p.default is None and ("none", ()) not in parsed:
            parsed = parsed + (("none", ()),)
        is_tuple = bool(text and text.lstrip().startswith("tuple")) or isinstance(p.default, tuple)
        out[name] = Param(name, parsed, required, None if required else p.default, is_tuple)
    return out


def _kind_of(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _matches(value, alternatives) -> bool:
    """Whether ``value`` is one of the parsed ``alternatives`` (element types checked too)."""
    if alternatives is None:
        return True
    kind = _kind_of(value)
    for want, args in alternatives:
        if want != kind and not (want == "float" and kind == "int"):
            continue
        if want == "float" and not math.isfinite(value):
            continue
        if want == "table" and len(args) == 2 and \
                not all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()):
            continue
        if want == "array" and args:
            fixed = len(args) > 1 and args[-1] is not None          # tuple[int, int]; tuple[int, ...] is not
            if fixed and (len(value) != len(args) or not all(_matches(v, a) for v, a in zip(value, args))):
                continue
            if not fixed and not all(_matches(v, args[0]) for v in value):
                continue
        return True
    return False


_ONE = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "table": "a table",
        "array": "an array"}
_MANY = {"int": "integers", "float": "numbers", "bool": "booleans", "str": "strings", "table": "tables",
         "array": "arrays"}


def _plural(alternatives) -> str:
    """'integers', 'integers or tables' ...: the element type of an array or a table."""
    if alternatives is None:
        return "values"
    return " or ".join(_MANY[kind] for kind, _ in alternatives if kind != "none")


def describe(alternatives) -> str:
    """The accepted type in words: 'an integer', 'a table of numbers', 'an array of 2 integers' ..."""
    if alternatives is None:
        return "any value"
    words = []
    for kind, args in alternatives:
        if kind == "none":
            continue          # TOML has no null: leaving the key out is how a None default is kept
        text = _ONE[kind]
        if kind == "table" and len(args) == 2:
            text += f" of {_plural(args[1])}"
        if kind == "array" and args:
            fixed = len(args) > 1 and args[-1] is not None
            text += f" of {len(args)} {_plural(args[0])}" if fixed else f" of {_plural(args[0])}"
        words.append(text)
    return " or ".join(words) if words else "no value (leave the key out)"


def check_type(param: Param, value) -> bool:
    """Whether the TOML ``value`` fits ``param``'s type."""
    return _matches(value, param.type)
