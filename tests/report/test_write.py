"""write_report writes the three files or none; load_record reads a record back."""

import json

import pytest

from refcomp.errors import FileFormatError, ValidationError
from refcomp.report import load_record, render_markdown, write_report


def test_write_report_writes_html_markdown_and_the_record(tmp_path, record):
    paths = write_report(record, tmp_path / "new" / "r")
    assert {k: p.name for k, p in paths.items()} == {"html": "report.html", "record": "record.json",
                                                      "markdown": "report.md"}
    assert load_record(paths["record"]) == record
    md = paths["markdown"].read_text()
    assert "[report.html](report.html)" in md and "| fc1 | 64×64 | RelativeIndexCSR | 16,384 | 1,200 | 13.7x |" in md
    assert "| **total** |  |  | 18,944 | 1,900 | 10.0x |" in md and "| 2 | pruned | 5,000 | 94.50 % |" in md
    assert "    refcomp compress --model mlp --out r" in md
    assert not write_report(record, tmp_path / "x", markdown=False).get("markdown")


def test_a_bad_record_writes_nothing(tmp_path, record):
    record["stages"][0]["bytes"] = -5
    with pytest.raises(ValidationError, match=r"record.stages\[0\]\['bytes'\]"):
        write_report(record, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_load_record_refuses_what_is_not_a_record(tmp_path, record):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FileFormatError, match="not a JSON run record"):
        load_record(bad)
    bad.write_text(json.dumps({**record, "title": 3}))
    with pytest.raises(ValidationError, match=r"record.title: expected a str, got int"):
        load_record(bad)


def test_markdown_cells_keep_their_table(record):
    record["layers"][0]["name"] = "a|b"
    assert "| a\\|b |" in render_markdown(record)
