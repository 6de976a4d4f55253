"""refcomp.progress: live bars only on a terminal, erased when done; one display shared; lines above the bars."""

import io

import pytest

from refcomp import progress
from refcomp.errors import ValidationError
from refcomp.progress import Display, display

from ._support.terminal import TerminalStream, screen


@pytest.fixture(autouse=True)
def cursor_terminal(monkeypatch):
    """A terminal that moves its cursor, whatever TERM the tests run under (CI may say dumb)."""
    monkeypatch.setenv("TERM", "xterm-256color")



def test_bars_on_a_terminal_are_erased_and_lines_stay():
    term = TerminalStream()
    with Display(term) as shown:
        bar = shown.bar("stage one", total=4, unit="epochs")
        bar.update(2, loss="0.5")
        shown.refresh()
        shown.print("stage one: done")
        bar.update(advance=1, description="stage two")
        shown.refresh()
        drawn = term.getvalue()
        bar.close()
    assert "stage one" in drawn and "2/4" in drawn and "loss 0.5" in drawn and "stage two" in drawn
    assert "3/4" in drawn
    assert screen(term.getvalue()) == ["stage one: done"]     # the bar erased; the line whole


def test_no_terminal_no_bar_no_control_code():
    pipe = io.StringIO()
    with Display(pipe) as shown:
        bar = shown.bar("x", total=3)
        bar.update(1, loss="1")
        shown.refresh()
        shown.print("a line")
        bar.close()
    assert pipe.getvalue() == "a line\n"


def test_a_dumb_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    term = TerminalStream()
    with Display(term) as shown:
        shown.bar("x", total=3).update(1)
        shown.refresh()
        shown.print("a line")
    assert not shown.live and term.getvalue() == "a line\n"


def test_a_quiet_display_draws_nothing_on_a_terminal():
    term = TerminalStream()
    with Display(term, enabled=False) as shown:
        shown.bar("x", total=3).update(1)
        shown.refresh()
    assert term.getvalue() == ""


def test_one_display_shared_by_nested_loops():
    term = TerminalStream()
    with display(term) as outer:
        with display(io.StringIO()) as inner:            # a loop inside: the outer, live display
            assert inner is outer
            with display(io.StringIO(), progress=False) as quiet:
                assert quiet is not outer and not quiet.live
                quiet.print("through the live one", file=TerminalStream())
            progress.echo("echoed", TerminalStream())
        outer.refresh()
    assert screen(term.getvalue()) == ["through the live one", "echoed"]
    with display(io.StringIO()) as alone:
        assert alone is not outer


def test_lines_for_a_pipe_go_to_the_pipe_while_bars_are_live():
    term, log = TerminalStream(), io.StringIO()
    with Display(term) as shown:
        shown.bar("x", total=2)
        shown.print("to the log", file=log)
    assert log.getvalue() == "to the log\n" and "to the log" not in term.getvalue()


def test_progress_values():
    with pytest.raises(ValidationError, match="progress"):
        with display(io.StringIO(), progress="bars"):
            pass


def test_a_bar_left_open_is_erased_when_the_display_stops():
    """An error or Ctrl-C mid-loop: the display stops with the bar still there, and erases it."""
    term = TerminalStream()
    with pytest.raises(KeyboardInterrupt):
        with Display(term) as shown:
            shown.bar("interrupted", total=10).update(3)
            shown.refresh()
            raise KeyboardInterrupt
    assert "interrupted" in term.getvalue() and screen(term.getvalue()) == []
