"""ONNX interoperability: export a refcomp model as an ONNX file (float, QDQ, QOperator).

Needs the optional package onnx (``pip install 'refcomp[interop]'``); it is
imported when a function runs, so ``import refcomp.onnx`` works without it.
"""

from .export import export

__all__ = ["export"]
