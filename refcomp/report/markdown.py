"""A run record rendered as Markdown: the tables of the HTML page; the figures stay in the page."""

from __future__ import annotations

from .record import check_record
from .text import metric_text, provenance_rows, ratio_text, summary_rows

__all__ = ["render_markdown"]


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(_cell, row)) + " |" for row in rows), ""]


def render_markdown(record: dict, *, html_name: str | None = "report.html") -> str:
    """The Markdown of ``record`` (checked first); ``html_name``: the page it points to for the figures."""
    check_record(record)
    metric = record.get("metric", "test accuracy")
    prov = record["provenance"]
    lines = [f"# {record['title']}", ""]
    if html_name:
        lines += [f"Figures: [{html_name}]({html_name}) (one self-contained page).", ""]
    lines += ["## Model", "", *_table(["", ""], summary_rows(record))]
    for note in record.get("notes", []):
        lines += [note, ""]
    layers = record.get("layers") or []
    if layers:
        rows = [[la["name"], "×".join(map(str, la.get("shape", []))) or "—", la.get("format", "—"),
                 f"{la['bytes_before']:,}", f"{la['bytes_after']:,}", ratio_text(la["bytes_before"], la["bytes_after"])]
                for la in layers]
        before, after = sum(la["bytes_before"] for la in layers), sum(la["bytes_after"] for la in layers)
        rows.append(["**total**", "", "", f"{before:,}", f"{after:,}", ratio_text(before, after)])
        lines += ["## Size per layer", "",
                  *_table(["layer", "shape", "format", "bytes before", "bytes after", "ratio"], rows)]
    curves = record.get("sensitivity") or {}
    if curves:
        sp = [s for s, _ in next(iter(curves.values()))]
        lines += ["## Sensitivity", "", *_table(["layer", *(f"{100 * s:.0f} %" for s in sp)],
                                                [[n, *(metric_text(m, metric) for _, m in c)]
                                                 for n, c in curves.items()])]
    stages = record.get("stages") or []
    if stages:
        lines += ["## Stages", "", *_table(["#", "stage", "bytes", metric],
                                           [[i + 1, s["name"], f"{s['bytes']:,}", metric_text(s["metric"], metric)]
                                            for i, s in enumerate(stages)])]
    lines += ["## Provenance", "", "    " + prov["command"], "", *_table(["", ""], provenance_rows(record))]
    return "\n".join(lines)
