"""Every ```python block of README.md and docs/*.md runs.

A page's blocks run in order in one namespace (a later block uses what an
earlier one defined), in a fresh temporary folder (files an example writes
land there). A block that cannot run is marked where a reader sees it, and
the marks are few (docs/index.md, "Code examples"):

- ```python title="sketch"  — shows a call whose inputs the page does not build;
- a ``<!-- no-run -->`` line right before the block.

Pages whose code reads MNIST get the shared data (REFCOMP_MNIST_DIR or
../shared/data/mnist, as the other tests); without it they skip, except under
CI=true, where that is a failure (the ``mnist_dir`` fixture).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: ```python<info> ... ```, the fence at the start of a line; group 1 the info string, 2 the code
_BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
_NO_RUN = "<!-- no-run -->"


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, runs?) of each ```python block of a Markdown text, in order."""
    blocks = []
    for m in _BLOCK.finditer(text):
        before = text[:m.start()].rstrip("\n").rpartition("\n")[2].strip()
        runs = 'title="sketch"' not in m.group(1) and before != _NO_RUN
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(2), runs))
    return blocks


def _runnable(page: Path) -> list[tuple[int, str]]:
    return [(line, code) for line, code, runs in python_blocks(page.read_text(encoding="utf-8")) if runs]


RUNNABLE = {page: blocks for page in PAGES if (blocks := _runnable(page))}


def test_the_collector_finds_marks_and_every_page_with_code():
    text = ('```python\na = 1\n```\n\n<!-- no-run -->\n```python\nb = undefined\n```\n'
            '```python title="sketch"\nc = undefined\n```\n```bash\nls\n```\n')
    assert python_blocks(text) == [(1, "a = 1\n", True), (6, "b = undefined\n", False),
                                   (9, "c = undefined\n", False)]
    assert {p.name for p in RUNNABLE} >= {"README.md", "ops.md", "pruning.md", "nn.md"}
    # the marks stay rare: most blocks run
    blocks = [b for p in PAGES for b in python_blocks(p.read_text(encoding="utf-8"))]
    assert sum(not runs for _, _, runs in blocks) <= max(2, len(blocks) // 10)


@pytest.mark.parametrize("page", list(RUNNABLE), ids=lambda p: str(p.relative_to(REPO)))
def test_page_examples_run(page, tmp_path, monkeypatch, request):
    blocks = RUNNABLE[page]
    if any("mnist" in code for _, code in blocks):
        monkeypatch.setenv("REFCOMP_MNIST_DIR", str(request.getfixturevalue("mnist_dir")))
    if any("minilm" in code for _, code in blocks):
        request.getfixturevalue("minilm_model")             # skips (fails under CI) without the weights
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")   # the pages name recipes as examples/NAME.toml
    namespace = {"__name__": f"docs_example_{page.stem}"}
    for line, code in blocks:
        try:
            exec(compile(code, f"{page.relative_to(REPO)}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {page.relative_to(REPO)}:{line} fails: "
                                 f"{type(exc).__name__}: {exc}") from exc
