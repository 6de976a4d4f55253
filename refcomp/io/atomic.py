"""Atomic file writes: write a temporary file in the target directory, fsync, os.replace.

A reader therefore sees either the old file or the complete new one, never a
partial write (os.replace is atomic on POSIX and Windows within one volume).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the Path."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent if str(p.parent) else ".", prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p
