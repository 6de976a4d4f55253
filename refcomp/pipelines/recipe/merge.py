"""Partial overrides: a table merged key by key into a preset (recipes and the Deep Compression config).

The rule (docs/recipes.md, "Overrides"):

- a key the override does not write keeps the preset's value;
- a table (dict) in both is merged recursively by the same rule, so
  ``[sparsity] fc1 = 0.9`` changes fc1 alone and keeps the preset's other layers;
- any other value (a number, a string, an array) replaces the preset's;
- a recipe's step list: ``[[step]]`` tables in the override replace the whole list;
  ``[steps.N]`` (N counted from 1) or ``[steps.NAME]`` (the one step of that name)
  merges into that step, key by key, like any table. Both in one override is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import ValidationError

__all__ = ["merge_tables", "merge_recipe"]


def merge_tables(base: Mapping, override: Mapping) -> dict:
    """A new dict: ``base`` with ``override`` merged in key by key, tables recursively (module docstring)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def _step_index(steps: list, address: str, where: str) -> int:
    """The 0-based position of the step ``address`` names: its number (from 1) or its unique name."""
    if address.isdigit():
        i = int(address)
        if not 1 <= i <= len(steps):
            raise ValidationError(f"{where}.{address}", f"a step number 1..{len(steps)} of the base recipe", i)
        return i - 1
    found = [i for i, s in enumerate(steps) if isinstance(s, Mapping) and s.get("name") == address]
    if len(found) != 1:
        names = [s.get("name") for s in steps if isinstance(s, Mapping)]
        got = "no such step" if not found else f"{len(found)} steps of that name (numbers " \
              f"{', '.join(str(i + 1) for i in found)}: address one by number)"
        raise ValidationError(f"{where}.{address}", f"a step number or the name of one step among {names}", got)
    return found[0]


def merge_recipe(base: Mapping, override: Mapping) -> dict:
    """``override`` (a parsed recipe file) merged into ``base`` by the module's rule."""
    if "step" in override and "steps" in override:
        raise ValidationError("steps", "either [[step]] (replace every step) or [steps.N] (change one step), "
                              "not both", "both")
    addressed = override.get("steps")
    out = merge_tables(base, {k: v for k, v in override.items() if k != "steps"})
    if addressed is None:
        return out
    if not isinstance(addressed, Mapping):
        raise ValidationError("steps", "tables [steps.N] or [steps.NAME] changing one step each",
                              type(addressed).__name__)
    steps = list(out.get("step", []))
    for address, change in addressed.items():
        if not isinstance(change, Mapping):
            raise ValidationError(f"steps.{address}", "a table of the step's keys", type(change).__name__)
        i = _step_index(steps, str(address), "steps")
        steps[i] = merge_tables(steps[i], change)
    out["step"] = steps
    return out
