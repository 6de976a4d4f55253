"""The run report: one self-contained HTML page (and its Markdown) rendered from a run record.

A run record is a plain, JSON-able dict (keys in refcomp.report.record, docs/report.md):
the model, its layers' bytes before and after, weight histograms with their
quantization grid or centroids, sensitivity curves, the stages run with their
size and metric, and the provenance (command, version, data, split, seed, date).
Any pipeline builds one and calls :func:`write_report`; a record saved as JSON
is rendered again with ``write_report(load_record(path), out_dir)``.

    record.py    the format, its check, histogram and grid helpers
    collect.py   record parts from refcomp models (layers, weights, provenance)
    figures.py   matplotlib figures as inline SVG
    html.py      the page;  markdown.py  the Markdown;  text.py  number formats shared by both
    write.py     the files (atomic): report.html, report.md, record.json
"""

from .collect import compressed_layers, layer_entry, model_bytes, model_parts, provenance, weight_entry
from .html import render_html
from .markdown import render_markdown
from .record import check_record, histogram, qparams_grid
from .write import HTML_FILE, MARKDOWN_FILE, RECORD_FILE, load_record, write_report

__all__ = ["check_record", "histogram", "qparams_grid", "provenance", "compressed_layers", "layer_entry",
           "weight_entry", "model_parts", "model_bytes", "render_html", "render_markdown", "write_report", "load_record",
           "HTML_FILE", "MARKDOWN_FILE", "RECORD_FILE"]
