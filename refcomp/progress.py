"""One live progress display for every long loop (training epochs, pipeline stages), drawn by rich.

    with progress.display(sys.stderr) as shown:          # the command's one display
        bar = shown.bar("epoch 1/3", total=n, unit="sample")
        bar.update(seen, loss=f"{loss:.4f}")
        shown.print("epoch 1/3 loss 0.31 acc 0.91")       # a summary line, printed above the bars
        bar.close()

Promises:

- **live only on a terminal**: the bars are drawn when the display's stream
  is a terminal and the display is enabled; a pipe, a file or a log gets no
  bar and no control code, only the summary lines, as plain lines;
- **transient**: a bar disappears when it is closed, and the whole display
  when it stops, so a finished command leaves only its summary lines;
- **one display**: while a display is open, :func:`display` called again (a
  pipeline that trains, a training inside it) returns that same display, so
  nested loops add bars to one live region instead of fighting over the
  terminal; summary lines printed through it never cut a bar in half.

Library code takes ``progress="auto" | True | False | None`` (or a display)
and asks :func:`display` for one; only the command line decides where the
display goes and whether it is quiet.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .errors import ValidationError

__all__ = ["Display", "Bar", "display", "echo", "is_terminal"]

#: the displays open now, innermost last: the outermost one is the live one every loop shares
_OPEN: list["Display"] = []


def is_terminal(stream) -> bool:
    """True if ``stream`` is an interactive terminal that can move its cursor (what gets a live bar).

    TERM=dumb (an editor's shell buffer) cannot: redrawing a bar there would print every frame.
    """
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):     # no isatty, or a closed stream
        return False


class Bar:
    """One progress bar of a :class:`Display`; a no-op when the display is not live."""

    def __init__(self, display: "Display", task):
        self._display, self._task = display, task

    def update(self, completed: float | None = None, *, advance: float = 0, description: str | None = None,
               **fields) -> None:
        """Set the bar to ``completed`` (or move it by ``advance``); ``fields`` are shown after it (loss=...)."""
        if self._task is None:
            return
        status = " ".join(f"{k} {v}" for k, v in fields.items())
        kwargs = {"status": status} if fields else {}
        if description is not None:
            kwargs["description"] = description
        self._display._rich.update(self._task, completed=completed, advance=advance or None, **kwargs)

    def close(self) -> None:
        """Remove the bar from the display (it leaves nothing on the terminal)."""
        if self._task is not None:
            self._display._rich.remove_task(self._task)
            self._display._rich.refresh()      # now, not at the next tick: a line printed next must not
            self._task = None                  # bring the closed bar back for a moment


class Display:
    """Live bars on ``stream`` (a terminal), summary lines through :meth:`print`.

    enabled : False for a quiet display: no bars (summary lines still printed, see :meth:`print`).
    """

    def __init__(self, stream=None, *, enabled: bool = True):
        self.stream = sys.stderr if stream is None else stream
        self.live = bool(enabled) and is_terminal(self.stream)
        self._rich = None

    def __enter__(self) -> "Display":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # transient: the display erases itself when it stops; no stdout/stderr redirection: only
            # lines printed through print() go above the bars (a redirect would move stdout to stderr)
            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                                  TextColumn("{task.fields[status]}"), console=console, transient=True,
                                  redirect_stdout=False, redirect_stderr=False)
            self._rich.start()
        _OPEN.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _OPEN.remove(self)
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def bar(self, description: str, total: float | None, unit: str = "") -> Bar:
        """A new bar (shown under the others until closed)."""
        if self._rich is None:
            return Bar(self, None)
        return Bar(self, self._rich.add_task(description, total=total, unit=unit, status=""))

    def refresh(self) -> None:
        """Draw the bars now (else they are redrawn ten times a second)."""
        if self._rich is not None:
            self._rich.refresh()

    def print(self, line: str, file=None) -> None:
        """Print a summary line: above the bars while they are live, else as a plain line to ``file``.

        ``file`` defaults to the display's stream. While this display, or another open one, is
        live and ``file`` is a terminal too, the line goes above the bars (so it never collides
        with one); a line for a pipe or a file goes there.
        """
        target = self.stream if file is None else file
        live = self if self._rich is not None else next((d for d in _OPEN if d._rich is not None), None)
        # a line for another terminal (stdout and stderr on the same one) goes above the bars; a line
        # for a pipe or a file (refcomp train > log) goes there: it cannot collide with a bar
        if live is not None and (target is live.stream or is_terminal(target)):
            live._rich.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=target, flush=True)


@contextlib.contextmanager
def display(stream=None, progress="auto"):
    """The display a loop draws on: the one already open if any, else a new one on ``stream``.

    progress : "auto" or True: bars when ``stream`` is a terminal; False or None: no bars
        (summary lines still go through the display); a :class:`Display`: that one.
    """
    if isinstance(progress, Display):
        yield progress
        return
    if progress not in ("auto", True, False, None):
        raise ValidationError("progress", "'auto', True, False, None or a refcomp.progress.Display", repr(progress))
    if _OPEN and progress:
        yield _OPEN[0]          # one live display: nested loops share the outermost one
        return
    with Display(stream, enabled=bool(progress)) as d:
        yield d


def echo(line: str, file=None) -> None:
    """Print a summary line to ``file`` (stdout by default), above the bars if a display is live."""
    if _OPEN:
        _OPEN[0].print(line, file=sys.stdout if file is None else file)
    else:
        print(line, file=sys.stdout if file is None else file, flush=True)
