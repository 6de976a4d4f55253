"""ONNX interoperability: read an ONNX model into a refcomp Graph (``load``) and export a
refcomp model as an ONNX file (``export``: float, QDQ, QOperator).

Needs the optional package onnx (``pip install 'refcomp[interop]'``); it is
imported when a function runs, so ``import refcomp.onnx`` works without it.
See docs/onnx.md.
"""

from .export import export
from .importer import load

__all__ = ["export", "load"]
