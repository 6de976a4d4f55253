"""Which refcomp wrote a file: the version every file and report refcomp writes records.

Where it goes, per kind of file: model files (safetensors, npz, compact) and
the earlier .rcdc file hold ``"refcomp_version"`` in their JSON header; the
Deep Compression report writes it under its title (report.md) and as
``refcomp_version`` (results.json); PNG plots carry it in their ``Software``
text chunk (:func:`png_metadata`); ONNX exports in ``producer_version``.
``.npy`` files (``refcomp embed --out``) have no place for metadata and do
not record it.
"""

from __future__ import annotations

from .._version import __version__

__all__ = ["__version__", "png_metadata"]


def png_metadata() -> dict:
    """The PNG text chunks for ``savefig(..., metadata=...)``: refcomp's version, and matplotlib's it replaces."""
    import matplotlib

    return {"Software": f"refcomp {__version__} (matplotlib {matplotlib.__version__})"}
