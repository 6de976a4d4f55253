"""How a record's numbers read, shared by the HTML and the Markdown renderer (so both say the same)."""

from __future__ import annotations

__all__ = ["metric_text", "ratio_text", "summary_rows", "provenance_rows"]


def metric_text(value, metric: str) -> str:
    """0.9712 -> "97.12 %" for an accuracy, "0.99712" for another metric, "—" when not measured."""
    if value is None:
        return "—"
    return f"{100 * value:.2f} %" if "accuracy" in metric else f"{value:.5f}"


def ratio_text(before: int, after: int) -> str:
    return f"{before / after:.1f}x" if after else "—"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def summary_rows(record: dict) -> list[list[str]]:
    """[label, value] rows of the model table: its name, then the summary in the record's order."""
    model = record["model"]
    return [["model", model["name"]], *([k, _value(v)] for k, v in model.get("summary", {}).items())]


def provenance_rows(record: dict) -> list[list[str]]:
    """[label, value] rows of the provenance, the command excepted (it is shown whole, above)."""
    prov = record["provenance"]
    order = ["refcomp_version", "date", "data", "split", "seed"]
    keys = [k for k in order if k in prov] + [k for k in prov if k not in order and k != "command"]
    return [[k.replace("_", " "), "—" if prov[k] is None else _value(prov[k])] for k in keys]
