"""The HTML page: self-contained, escaped, every figure drawn, checked in a real headless Chromium."""

import re

import pytest

from refcomp.report import render_html, write_report
from tests._support.browser import open_page

pytest.importorskip("matplotlib")


def test_the_page_loads_in_chromium_with_every_figure_and_no_error(tmp_path, record):
    paths = write_report(record, tmp_path / "r")
    seen = open_page(paths["html"], tmp_path / "report.png")
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert seen["requests"] == []                         # self-contained: nothing fetched but the file
    # sizes, histograms, sensitivity, stages: four figures, each drawn with a real size
    assert [kind for kind, _, _ in seen["figures"]] == ["svg"] * 4
    assert all(w > 200 and h > 100 for _, w, h in seen["figures"]), seen["figures"]
    assert seen["scripts"] == 0
    assert seen["title"] == record["title"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sections_without_data_have_no_figure(tmp_path, record):
    for key in ("sensitivity", "weights"):
        del record[key]
    record["stages"] = [{"name": "only", "bytes": 10, "metric": None}]    # nothing to plot
    html = render_html(record)
    assert html.count("<svg") == 1 and "Sensitivity" not in html and "<td>only</td>" in html


def test_text_is_escaped_and_no_script_is_written(record):
    record["title"] = "<script>alert(1)</script>"
    record["provenance"]["command"] = "refcomp compress --out '<b>x</b>'"
    html = render_html(record)
    assert "<script" not in html.lower() and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_the_figures_are_inline_and_their_ids_do_not_collide(record):
    html = render_html(record)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", html)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))
    assert render_html(record) == html                     # no random ids: the same record, the same page


def test_the_numbers_reach_the_page(record):
    html = render_html(record)
    assert "16,384" in html and "13.7x" in html            # fc1 bytes before, 16384 / 1200
    assert "94.50 %" in html and "—" in html               # a stage metric, and one not measured
    assert "seed-0 split" in html and "2026-12-05T06:00:00Z" in html


def test_a_missing_chromium_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    from tests._support import browser

    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        browser.open_page(tmp_path / "r.html", tmp_path / "r.png")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="Chromium at"):
        browser.open_page(tmp_path / "r.html", tmp_path / "r.png")


def test_without_matplotlib_the_tables_stay_and_a_line_says_so(record, monkeypatch):
    from refcomp.report import figures

    monkeypatch.setattr(figures, "available", lambda: False)
    html = render_html(record)
    assert "<svg" not in html and "No figures: matplotlib is not installed" in html
    assert "<td>fc1</td>" in html and "Sensitivity" in html
