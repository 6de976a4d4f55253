"""Recipes: any pipeline as an ordered list of steps in a TOML file, validated before any work.

schema.py    the file: [[step]] tables, ``base`` overrides; load_recipe / parse_recipe validate it all
registry.py  STEPS, the one table step name -> the refcomp function it calls (its keys = the
             function's keyword arguments) and the data the runner supplies
params.py    a function's keyword arguments and the TOML type check against them
merge.py     partial overrides merged key by key (also the Deep Compression config's)
steps.py     the steps that compose several calls (gradual pruning, QAT, Huffman, distillation ...)
run.py       run_recipe: the steps in order, measured, into a JSON-able record (run.json)
sweep.py     run_sweep: several recipes on one model as independent tasks of an executor; grid: one key's values

docs/recipes.md describes the format, every step and the record; examples/ holds recipes.
"""

from .merge import merge_recipe, merge_tables
from .registry import STEPS
from .run import RecipeData, model_bytes, run_recipe, write_record
from .schema import Recipe, Step, is_recipe_file, load_recipe, parse_recipe
from .sweep import grid, recipe_label, run_sweep

__all__ = ["STEPS", "Recipe", "Step", "RecipeData", "load_recipe", "parse_recipe", "run_recipe", "write_record",
           "merge_recipe", "merge_tables", "model_bytes", "is_recipe_file", "run_sweep", "grid", "recipe_label"]
