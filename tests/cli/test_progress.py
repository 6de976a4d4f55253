"""The one live progress display of the commands, on a real pseudo-terminal and through pipes.

A terminal must end with the summary lines, whole, and no bar left; a pipe gets
no control code; --quiet prints nothing; --json keeps stdout to the document.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from .._support.terminal import run_in_terminal, screen

pytest.importorskip("sklearn")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")

# batches of 2: epochs long enough (a second or so) for the bars to be drawn before each epoch line
TRAIN = ["train", "--model", "digits_mlp", "--epochs", "3", "--batch-size", "2"]
EPOCH_LINE = r"epoch {}/3 lr [0-9.]+ loss [0-9.]+ acc [0-9.]+ [0-9]+ samples/s [0-9.]+ s"
BAR_GLYPHS = ("━", "╺", "╸")


def test_a_terminal_ends_with_the_summary_lines_and_no_bar(tmp_path):
    status, term, _ = run_in_terminal(TRAIN, tmp_path)
    assert status == 0
    first_line = term.index("epoch 1/3 lr")
    assert "\x1b[" in term and any(g in term[:first_line] for g in BAR_GLYPHS)   # a bar was up before it
    shown = screen(term)
    assert len(shown) == 4, shown
    for i in (1, 2, 3):                                     # each line whole: never cut by a bar
        assert re.fullmatch(EPOCH_LINE.format(i), shown[i - 1]), shown
        assert re.search(EPOCH_LINE.format(i) + r"\r?\n", term)
    assert shown[3].startswith("digits_mlp: test accuracy ")
    assert not any(g in line for line in shown for g in BAR_GLYPHS)


def test_stage_lines_under_the_pipeline_bar(tmp_path):
    """compress prints its stage lines while the pipeline's bar is up: each lands whole, above it."""
    (tmp_path / "c.toml").write_text("prune_rounds = 1\nprune_epochs = 2\nfinetune_epochs = 1\n")
    status, term, _ = run_in_terminal(["compress", "--model", "digits_mlp", "--out", "r", "--config", "c.toml",
                                       "--baseline-epochs", "1"], tmp_path)
    assert status == 0
    shown = screen(term)
    assert shown[0].startswith("dense baseline trained (1 epochs, ") and shown[-1] == "report: r/report.md and r/report.html"
    assert any(line.startswith("pruned + retrained (1 rounds x 2 epochs): ") for line in shown)
    assert not any(g in line for line in shown for g in BAR_GLYPHS), shown


def test_a_pipe_gets_plain_lines(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "refcomp", *TRAIN], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert [bool(re.fullmatch(EPOCH_LINE.format(i), lines[i - 1])) for i in (1, 2, 3)] == [True] * 3


def test_stdout_to_a_pipe_and_bars_on_the_terminal(tmp_path):
    """`refcomp train > log`: the lines go to the log, not to the terminal the bars are on."""
    status, term, piped = run_in_terminal(TRAIN, tmp_path, stdout_tty=False)
    assert status == 0 and screen(term) == []
    assert "\x1b" not in piped and len(piped.splitlines()) == 4


def test_quiet_prints_nothing(tmp_path):
    status, term, _ = run_in_terminal([*TRAIN, "--quiet"], tmp_path)
    assert status == 0 and term == ""


def test_json_keeps_stdout_to_the_document(tmp_path):
    status, term, piped = run_in_terminal([*TRAIN, "--json"], tmp_path, stdout_tty=False)
    assert status == 0 and screen(term) == []               # bars on the terminal, gone at the end
    assert json.loads(piped)["epochs"] == 3


def test_the_screen_replay():
    """The replay the tests above rely on: LF, CR, cursor up, erase line, colours."""
    raw = "a\n\x1b[31mbar\x1b[0m 50%\r\x1b[2Kline\nbar\r\x1b[2K\x1b[1A\x1b[2Kx\n"
    assert screen(raw) == ["a", "x"]           # "line" erased by the cursor-up + erase, as rich erases bars
