"""Writing a record's report files: report.html, report.md and the record itself as record.json."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FileFormatError
from ..io.atomic import write_atomic
from .html import render_html
from .markdown import render_markdown
from .record import check_record

__all__ = ["write_report", "load_record", "HTML_FILE", "MARKDOWN_FILE", "RECORD_FILE"]

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
RECORD_FILE = "record.json"


def write_report(record: dict, out_dir, *, markdown: bool = True) -> dict:
    """Write ``out_dir``/report.html, record.json and (``markdown``) report.md; return their paths
    by kind ("html", "record", "markdown").

    Everything is rendered before the first file is written, so a bad record writes nothing.
    markdown : False when the caller writes a report.md of its own (the Deep Compression route).
    """
    check_record(record)
    files = {"html": (HTML_FILE, render_html(record)),
             "record": (RECORD_FILE, json.dumps(record, indent=1, ensure_ascii=False) + "\n")}
    if markdown:
        files["markdown"] = (MARKDOWN_FILE, render_markdown(record, html_name=HTML_FILE))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {kind: write_atomic(out / name, text.encode()) for kind, (name, text) in files.items()}


def load_record(path) -> dict:
    """A record written by :func:`write_report` (or by any tool, in the same format), checked."""
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: not a JSON run record ({exc})") from None
    return check_record(record)
