"""The run record: the plain dict a report is rendered from, and its check.

A record is JSON-able (lists, numbers, strings), so a pipeline can build it in
memory or any tool can write it as JSON and have it rendered later
(:func:`refcomp.report.write_report`). Keys (docs/report.md has the example):

``title`` (str, required)
    The report's heading.
``model`` (dict, required)
    ``name`` (str) and optional ``summary``: {label: str or number}, shown as a table.
``provenance`` (dict, required)
    ``command`` (str), ``refcomp_version`` (str), ``date`` (ISO 8601 str), and
    optional ``data`` (str), ``split`` (str), ``seed`` (int or None); any other
    key is shown too.
``layers`` (list, optional)
    One dict per layer: ``name`` (str), ``bytes_before`` and ``bytes_after``
    (ints >= 0), optional ``shape`` (list of ints) and ``format`` (str).
``weights`` (list, optional)
    One dict per layer: ``layer`` (str), ``histogram`` {``edges``: n+1
    increasing numbers, ``counts``: n ints >= 0} (see :func:`histogram`),
    optional ``grid`` (numbers: the values the layer's weights can take, its
    quantization grid or its cluster centroids), ``grid_kind`` (str naming
    them, e.g. "centroids") and ``note`` (str).
``sensitivity`` (dict, optional)
    {layer: [[sparsity, metric], ...]}: the metric with one layer pruned.
``stages`` (list, optional)
    One dict per stage or recipe, in the order run: ``name`` (str), ``bytes``
    (int >= 0) and ``metric`` (number or None when not measured).
``metric`` (str, optional)
    What the stages' and sensitivity's numbers measure, default "test
    accuracy"; a name containing "accuracy" is shown in percent.
``notes`` (list of str, optional)
    Paragraphs shown under the summary.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import ValidationError

__all__ = ["check_record", "histogram", "qparams_grid", "REQUIRED", "OPTIONAL"]

REQUIRED = ("title", "model", "provenance")
OPTIONAL = ("layers", "weights", "sensitivity", "stages", "metric", "notes")


def _fail(argument: str, expected: str, got) -> None:
    # "record.layers[0]['bytes_after']": the path a user can follow into the dict (or the JSON file)
    raise ValidationError(argument if argument == "record" else f"record.{argument}", expected, got)


def _dict(value, argument: str, keys: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        _fail(argument, "a dict", type(value).__name__)
    missing = [k for k in keys if k not in value]
    if missing:
        _fail(argument, f"a dict with the keys {', '.join(keys)}", f"no {', '.join(missing)}")
    return value


def _list(value, argument: str) -> list:
    if not isinstance(value, (list, tuple)):
        _fail(argument, "a list", type(value).__name__)
    return list(value)


def _str(value, argument: str) -> str:
    if not isinstance(value, str):
        _fail(argument, "a str", type(value).__name__)
    return value


def _number(value, argument: str, *, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(argument, "a finite number" + (" or None" if optional else ""), repr(value))
    return float(value)


def _count(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        _fail(argument, "an int >= 0", repr(value))
    return int(value)


def _check_weights(entry, argument: str) -> None:
    _dict(entry, argument, ("layer", "histogram"))
    _str(entry["layer"], f"{argument}['layer']")
    h = _dict(entry["histogram"], f"{argument}['histogram']", ("edges", "counts"))
    where = f"{argument}['histogram']"
    edges = [_number(e, f"{where}['edges'][{i}]") for i, e in enumerate(_list(h["edges"], f"{where}['edges']"))]
    counts = [_count(c, f"{where}['counts'][{i}]") for i, c in enumerate(_list(h["counts"], f"{where}['counts']"))]
    if len(edges) != len(counts) + 1 or not counts:
        _fail(f"{argument}['histogram']", "n >= 1 counts and n + 1 edges",
              f"{len(counts)} counts, {len(edges)} edges")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        _fail(f"{argument}['histogram']['edges']", "increasing numbers", edges[:4])
    for i, g in enumerate(_list(entry.get("grid", []), f"{argument}['grid']")):
        _number(g, f"{argument}['grid'][{i}]")
    for key in ("grid_kind", "note"):
        if key in entry:
            _str(entry[key], f"{argument}[{key!r}]")


def check_record(record) -> dict:
    """``record`` if it has the documented keys and types (module docstring), else ValidationError
    naming the first wrong key, what it should be and what it is."""
    _dict(record, "record", REQUIRED)
    unknown = sorted(set(record) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        _fail("record", f"keys among {', '.join(REQUIRED + OPTIONAL)}", f"also {', '.join(map(str, unknown))}")
    _str(record["title"], "title")
    model = _dict(record["model"], "model", ("name",))
    _str(model["name"], "model['name']")
    for k, v in _dict(model.get("summary", {}), "model['summary']").items():
        if not isinstance(v, (str, numbers.Real)):
            _fail(f"model['summary'][{k!r}]", "a str or a number", type(v).__name__)
    prov = _dict(record["provenance"], "provenance", ("command", "refcomp_version", "date"))
    for key in ("command", "refcomp_version", "date"):
        _str(prov[key], f"provenance[{key!r}]")
    for i, layer in enumerate(_list(record.get("layers", []), "layers")):
        _dict(layer, f"layers[{i}]", ("name", "bytes_before", "bytes_after"))
        _str(layer["name"], f"layers[{i}]['name']")
        _count(layer["bytes_before"], f"layers[{i}]['bytes_before']")
        _count(layer["bytes_after"], f"layers[{i}]['bytes_after']")
    for i, entry in enumerate(_list(record.get("weights", []), "weights")):
        _check_weights(entry, f"weights[{i}]")
    first = None
    for name, curve in _dict(record.get("sensitivity", {}), "sensitivity").items():
        for j, point in enumerate(_list(curve, f"sensitivity[{name!r}]")):
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                _fail(f"sensitivity[{name!r}][{j}]", "a [sparsity, metric] pair", repr(point))
            _number(point[0], f"sensitivity[{name!r}][{j}][0]")
            _number(point[1], f"sensitivity[{name!r}][{j}][1]")
        # one table, one column per sparsity: every layer swept at the same ones
        sparsities = [float(p[0]) for p in curve]
        first = sparsities if first is None else first
        if sparsities != first or not sparsities:
            _fail(f"sensitivity[{name!r}]", f"points at the sparsities of the first layer {first}", sparsities)
    for i, stage in enumerate(_list(record.get("stages", []), "stages")):
        _dict(stage, f"stages[{i}]", ("name", "bytes", "metric"))
        _str(stage["name"], f"stages[{i}]['name']")
        _count(stage["bytes"], f"stages[{i}]['bytes']")
        _number(stage["metric"], f"stages[{i}]['metric']", optional=True)
    _str(record.get("metric", "test accuracy"), "metric")
    for i, note in enumerate(_list(record.get("notes", []), "notes")):
        _str(note, f"notes[{i}]")
    return record


def histogram(values, *, bins: int = 60, drop_zeros: bool = False) -> dict:
    """{"edges", "counts"} of the float ``values`` (the record's histogram), as JSON-able lists.

    drop_zeros : leave out exact zeros: a pruned layer's zeros are not weights
        it stores, and their spike would flatten the histogram of the rest.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if drop_zeros:
        v = v[v != 0]
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:                      # one value: a bin around it, so the edges still increase
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def qparams_grid(qparams) -> tuple[list[float], str]:
    """The values a weight quantized with ``qparams`` can take, scale · (q − zero_point) for q in
    [qmin, qmax], and what it is. Per-channel (or per-block) parameters have one grid per channel
    (block): the grid of the one with the largest scale is returned (it spans the others' ranges).
    The index k is into the flattened scale array."""
    scale = np.asarray(qparams.scale, dtype=np.float64)
    zp = np.zeros_like(scale) if qparams.zero_point is None else np.asarray(qparams.zero_point, dtype=np.float64)
    k = int(np.argmax(scale)) if scale.ndim else 0
    s, z = float(scale.ravel()[k]), float(zp.ravel()[k])
    q = np.arange(int(qparams.qmin), int(qparams.qmax) + 1, dtype=np.float64)
    kind = f"{qparams.dtype.name} levels"
    if scale.size > 1:
        unit = "block" if qparams.block_size else "channel"
        kind += f" ({unit} {k} of {scale.size}: the largest scale)"
    return [float(x) for x in s * (q - z)], kind
