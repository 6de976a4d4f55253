"""A run record rendered as one self-contained HTML page: inline CSS, inline SVG figures, no script.

Opened from a disk, mailed or archived, the page needs nothing else: no
network, no other file, no JavaScript.
"""

from __future__ import annotations

from html import escape

from . import figures
from .record import check_record
from .text import metric_text, provenance_rows, ratio_text, summary_rows

__all__ = ["render_html"]

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430; margin: 0 auto;
       max-width: 1000px; padding: 1.5em 2em 3em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em;
     border-bottom: 1px solid #d5dbe1; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #d5dbe1; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f1f4f7; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
pre { background: #f6f8fa; padding: 0.6em; white-space: pre-wrap; word-break: break-all; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #56606b; font-size: 12px; margin-top: 0.3em; }
.muted { color: #56606b; }
"""


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{escape(str(c))}</td>'
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(rows: list[list]) -> str:
    """A two-column table of label, value rows (the label a row header)."""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _layers(record: dict, draw: bool) -> str:
    layers = record.get("layers") or []
    if not layers:
        return ""
    rows = [[layer["name"], "×".join(map(str, layer.get("shape", []))) or "—", layer.get("format", "—"),
             f"{layer['bytes_before']:,}", f"{layer['bytes_after']:,}",
             ratio_text(layer["bytes_before"], layer["bytes_after"])] for layer in layers]
    before = sum(layer["bytes_before"] for layer in layers)
    after = sum(layer["bytes_after"] for layer in layers)
    rows.append(["total", "", "", f"{before:,}", f"{after:,}", ratio_text(before, after)])
    return ("<h2>Size per layer</h2>"
            + _table(["layer", "shape", "format", "bytes before", "bytes after", "ratio"], rows, {3, 4, 5})
            + (_figure(figures.sizes_svg(layers), "Bytes of each layer's weight before (float32) and after "
                       "compression; the labels give the size and the ratio.") if draw else ""))


def _weights(record: dict, draw: bool) -> str:
    weights = record.get("weights") or []
    if not weights or not draw:
        return ""
    notes = sorted({w["note"] for w in weights if w.get("note")})
    return ("<h2>Weight histograms</h2>"
            + "".join(f'<p class="muted">{escape(n)}</p>' for n in notes)
            + _figure(figures.histograms_svg(weights), "Histogram of each layer's weights; red: the values "
                      "they can take (cluster centroids, or the quantization levels: of a dense grid every n-th)."))


def _sensitivity(record: dict, draw: bool) -> str:
    curves = record.get("sensitivity") or {}
    if not curves:
        return ""
    metric = record.get("metric", "test accuracy")
    sparsities = [s for s, _ in next(iter(curves.values()))]
    rows = [[name, *(metric_text(m, metric) for _, m in curve)] for name, curve in curves.items()]
    return ("<h2>Sensitivity</h2>"
            + _table(["layer", *(f"{100 * s:.0f} %" for s in sparsities)], rows, set(range(1, len(sparsities) + 1)))
            + (_figure(figures.sensitivity_svg(curves, metric), f"{metric} with one layer pruned by magnitude "
                       "to each sparsity, the others dense, no retraining.") if draw else ""))


def _stages(record: dict, draw: bool) -> str:
    stages = record.get("stages") or []
    if not stages:
        return ""
    metric = record.get("metric", "test accuracy")
    rows = [[i + 1, s["name"], f"{s['bytes']:,}", metric_text(s["metric"], metric)] for i, s in enumerate(stages)]
    return ("<h2>Stages</h2>"
            + _table(["#", "stage", "bytes", metric], rows, {0, 2, 3})
            + (_figure(figures.stages_svg(stages, metric), f"{metric} against size for each stage, in the order "
                       "run.") if draw else ""))


def render_html(record: dict) -> str:
    """The page of ``record`` (checked first: refcomp.report.record). Without matplotlib the tables
    are there and a line says the figures are not."""
    check_record(record)
    draw = figures.available()
    prov = record["provenance"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(record['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(record['title'])}</h1>",
        f'<p class="muted">refcomp {escape(prov["refcomp_version"])} · {escape(prov["date"])}</p>',
    ]
    if not draw:
        parts.append('<p class="muted">No figures: matplotlib is not installed (pip install refcomp[plot]).</p>')
    parts += ["<h2>Model</h2>", _pairs(summary_rows(record))]
    parts += [f"<p>{escape(n)}</p>" for n in record.get("notes", [])]
    parts += [_layers(record, draw), _weights(record, draw), _sensitivity(record, draw), _stages(record, draw)]
    parts += ["<h2>Provenance</h2>", f"<pre>{escape(prov['command'])}</pre>",
              _pairs(provenance_rows(record)), "</body></html>"]
    return "\n".join(p for p in parts if p)
