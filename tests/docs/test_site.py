"""The documentation site builds with ``mkdocs build --strict`` and has every page of its nav.

--strict turns every warning into a failure: a link to a missing page or
anchor, a page left out of the nav, a docstring the API reference cannot
parse. Needs the ``docs`` extra (in the test extra); without it the test
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} not installed: CI must have the docs extra")
        pytest.skip(f"{missing} not installed (pip install 'refcomp[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stderr[-4000:]}"
    return out


def _nav_pages() -> list[str]:
    """The .md files named in mkdocs.yml's nav (read as text: the file is small and flat)."""
    lines = (REPO / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:\n", 1)[1].splitlines()
    return [line.rsplit(": ", 1)[1] for line in lines if line.strip().endswith(".md")]


def test_every_nav_page_is_built(site):
    pages = _nav_pages()
    assert len(pages) >= 25 and "index.md" in pages and "api/ops.md" in pages
    for page in pages:
        html = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert html.is_file(), f"{page} was not built"


def test_the_api_reference_renders_the_docstrings(site):
    ops = (site / "api/ops/index.html").read_text(encoding="utf-8")
    assert "quantize_linear" in ops and "matmul_integer" in ops
    runtime = (site / "api/runtime/index.html").read_text(encoding="utf-8")
    assert "get_executor" in runtime and "forkserver" in runtime
    compress = (site / "api/compress/index.html").read_text(encoding="utf-8")
    assert "gptq_quantize" in compress and "cluster_weight" in compress
    assert (site / "search/search_index.json").is_file()
