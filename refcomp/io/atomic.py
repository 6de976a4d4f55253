"""Atomic file writes: write a temporary file in the target directory, fsync, os.replace.

A reader therefore sees either the old file or the complete new one, never a
partial write (os.replace is atomic on POSIX and Windows within one volume);
an exception or Ctrl-C during the write removes the temporary file.

The file gets the permissions an ordinary ``open(path, "w")`` would give it:
0666 minus the umask for a new file, the old file's mode when one is replaced
(mkstemp alone would make every file 0600, and downgrade an existing 0644).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def _umask() -> int:
    # the umask can only be read by setting it; set it straight back (a race only
    # with another thread creating files in these few instructions)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(p: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(p).st_mode)       # replacing: keep what the user (or chmod) chose
    except OSError:
        return 0o666 & ~_umask()


def write_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the Path."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent if str(p.parent) else ".", prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):                  # not on Windows, where modes mean little
                os.fchmod(f.fileno(), _mode_for(p))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p
