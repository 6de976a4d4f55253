"""JSON of a file header, parsed so that a hostile header can only raise FileFormatError.

``json.loads`` alone lets three things through: a key written twice keeps
the last value silently (two tensors or layers of the same name would then
replace each other), a deeply nested document raises RecursionError, and
non-UTF-8 bytes raise UnicodeDecodeError. Every header refcomp reads goes
through :func:`load_json`.
"""

from __future__ import annotations

import json

from ..errors import FileFormatError

__all__ = ["load_json"]


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def load_json(data, where: str):
    """Parse ``data`` (bytes or str) as JSON; FileFormatError naming ``where`` on anything wrong."""
    try:
        text = bytes(data).decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        raise FileFormatError(f"{where}: the name {exc.args[0]!r} appears twice") from None
    except RecursionError:
        raise FileFormatError(f"{where}: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:   # JSONDecodeError is a ValueError
        raise FileFormatError(f"{where}: not valid JSON ({exc})") from None
