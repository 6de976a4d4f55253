"""A recipe file read and validated in full before any work: the steps, their keys, types and ranges.

A recipe is a TOML file::

    name = "w8a8-static"                 # optional: name, description, base
    description = "W8A8 static PTQ"
    [[step]]
    name = "quantize_static"             # a step of registry.STEPS
    observer = "mse"                     # its keys: the keyword arguments of the function it calls

``base = "other.toml"`` (relative to this file) makes the file an override of
another recipe, merged key by key (merge.py). Every mistake raises a
refcomp.errors exception naming the step (number from 1, and name) and the
key, what was expected and what came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ...errors import FileFormatError, ValidationError
from .merge import merge_recipe
from .params import check_type, describe
from .registry import CONTEXT, STEPS

__all__ = ["Step", "Recipe", "load_recipe", "parse_recipe", "read_toml", "is_recipe_file"]

_TOP = ("name", "description", "base", "step")
_MAX_BASES = 8


@dataclasses.dataclass(frozen=True)
class Step:
    """One validated step: its number (from 1), kind (a STEPS key) and keys (TOML values)."""
    index: int
    name: str
    params: dict

    @property
    def label(self) -> str:
        return f"step {self.index} ({self.name})"

    def call_kwargs(self) -> dict:
        """The keys as the function takes them (a TOML array becomes a tuple where a tuple is expected)."""
        spec = STEPS[self.name].params
        return {k: tuple(v) if spec[k].is_tuple and isinstance(v, list) else v for k, v in self.params.items()}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe: its ordered steps, and the table they came from (after merging)."""
    steps: tuple
    name: str = ""
    description: str = ""
    source: str = ""
    table: dict = dataclasses.field(default_factory=dict)

    def needs(self) -> set:
        """The CONTEXT keys (data) its steps need."""
        return {key for s in self.steps for key in STEPS[s.name].needs.values()}

    def check_available(self, available, route: str) -> None:
        """Refuse, before any work, a step that needs data ``route`` does not have."""
        for s in self.steps:
            lacking = [CONTEXT[key] for key in dict.fromkeys(STEPS[s.name].needs.values()) if key not in available]
            if lacking:
                raise ValidationError(s.label, f"a route with {' and '.join(lacking)}", f"{route}, which has none")


def is_recipe_file(value: str) -> bool:
    """Whether ``--recipe value`` names a recipe file rather than a built-in recipe name."""
    return value.endswith(".toml") or Path(value).is_file()


def read_toml(path, argument: str) -> dict:
    """The table of the TOML file ``path``; ValidationError if it is no file, FileFormatError if no TOML."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ValidationError(argument, "an existing TOML file", str(p))
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: not valid TOML ({exc})") from None


def _check_step(i: int, raw) -> Step:
    if not isinstance(raw, Mapping):
        raise ValidationError(f"step {i}", "a [[step]] table", type(raw).__name__)
    name = raw.get("name")
    if name not in STEPS:
        raise ValidationError(f"step {i}: name", f"one of {sorted(STEPS)}", repr(name) if name else "no name")
    label = f"step {i} ({name})"
    spec = STEPS[name]
    params = spec.params
    keys = {k: v for k, v in raw.items() if k != "name"}
    for key, value in keys.items():
        if key not in params:
            why = f" ({key} comes from the data: {CONTEXT[spec.needs[key]]})" if key in spec.needs else ""
            raise ValidationError(f"{label}: {key}", f"a key among {sorted(params)}{why}", f"unknown key {key!r}")
        if not check_type(params[key], value):
            raise ValidationError(f"{label}: {key}", describe(params[key].type), f"{value!r}")
        if key in spec.checks:
            spec.checks[key](value, f"{label}: {key}")
    missing = [k for k, p in params.items() if p.required and k not in keys]
    if missing:
        raise ValidationError(f"{label}: {missing[0]}", f"a value ({describe(params[missing[0]].type)})",
                              "none (a required key)")
    if spec.rule is not None:
        spec.rule(keys, label)
    return Step(i, name, keys)


def parse_recipe(table: Mapping, *, source: str = "") -> Recipe:
    """A Recipe from a parsed (and merged) TOML table; every step checked against the registry."""
    if not isinstance(table, Mapping):
        raise ValidationError("recipe", "a table", type(table).__name__)
    unknown = sorted(set(table) - set(_TOP))
    if unknown:
        raise ValidationError("recipe", f"top-level keys among {list(_TOP)}", f"unknown {unknown}")
    raw = table.get("step")
    if not isinstance(raw, list) or not raw:
        raise ValidationError("step", "one or more [[step]] tables", "none" if raw is None else repr(raw))
    for key in ("name", "description"):
        if not isinstance(table.get(key, ""), str):
            raise ValidationError(key, "a string", repr(table[key]))
    steps = tuple(_check_step(i, s) for i, s in enumerate(raw, start=1))
    return Recipe(steps, table.get("name", ""), table.get("description", ""), source,
                  {k: v for k, v in table.items() if k != "base"})


def _resolve(path: Path, seen: tuple) -> dict:
    """The table of ``path`` with its ``base`` chain merged in (base first, this file over it)."""
    if path.resolve() in seen or len(seen) > _MAX_BASES:
        raise ValidationError(f"{path}: base", "a chain of base recipes without a cycle",
                              " -> ".join(str(p) for p in (*seen, path)))
    table = read_toml(path, "--recipe" if not seen else f"{seen[-1]}: base")
    base = table.pop("base", None)
    if base is None:
        if "steps" in table:
            raise ValidationError(f"{path}: steps", "a base recipe to change ([steps.N] needs base = FILE)", "no base")
        return table
    if not isinstance(base, str):
        raise ValidationError(f"{path}: base", "a recipe file name (a string)", repr(base))
    parent = _resolve(path.parent / base, (*seen, path.resolve()))
    return merge_recipe(parent, table)


def load_recipe(path, override=None) -> Recipe:
    """The validated Recipe of the file ``path`` (its ``base`` chain merged), optionally with the
    override file ``override`` merged over it by the same rule."""
    table = _resolve(Path(path), ())
    if override is not None:
        extra = read_toml(override, "override")
        if "base" in extra:     # the override's base is the recipe it is given with
            raise ValidationError(f"{override}: base", "no base in an override (it is merged over the recipe)",
                                  repr(extra["base"]))
        table = merge_recipe(table, extra)
    return parse_recipe(table, source=str(path))
