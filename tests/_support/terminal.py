"""Run ``refcomp`` under a pseudo-terminal and replay what it wrote the way a terminal would.

What the progress tests need from a terminal: the final screen (what a user
sees once the command is done) and the raw bytes (control codes, whole
lines). The replay understands what rich's live display writes: printable
text, CR, LF, cursor up / down (ESC [ n A / B), erase line (ESC [ 2K / K);
every other escape sequence (colours, cursor visibility) draws nothing.
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

class TerminalStream(io.StringIO):
    """An in-memory stream that says it is a terminal (progress bars are drawn only on one)."""

    def isatty(self):
        return True


_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after printing ``raw`` (trailing blanks stripped)."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(raw):
        m = _CSI.match(raw, i)
        if m:
            arg, op = m.group(1), m.group(2)
            n = int(arg) if arg.isdigit() else 1
            if op == "A":
                row = max(0, row - n)
            elif op == "B":
                row += n
            elif op == "K":
                lines[row] = lines[row][:col] if arg in ("", "0") else ""
            i = m.end()
            continue
        ch = raw[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
        elif ch == "\x1b":
            continue                      # a lone escape (not CSI): draws nothing
        else:
            while len(lines) <= row:
                lines.append("")
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1:]
            col += 1
        while len(lines) <= row:
            lines.append("")
    return [line.rstrip() for line in lines if line.strip()]


def run_in_terminal(args: list[str], cwd, stdout_tty: bool = True, timeout: float = 600) -> tuple[int, str, str]:
    """Run ``python -m refcomp ARGS`` with stderr (and stdout, unless ``stdout_tty`` is False: then a pipe)
    on a pseudo-terminal of 120 columns; return (status, what the terminal got, what the pipe got)."""
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "refcomp", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:                   # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    piped = proc.stdout.read().decode() if proc.stdout else ""
    status = proc.wait(timeout=timeout)
    os.close(master)
    return status, b"".join(chunks).decode("utf-8", "replace"), piped
