"""The exceptions refcomp raises on bad input.

Every message names the argument, what was expected and what came, e.g.::

    ValidationError: scale: expected finite values > 0, got min=0.0

Each class also derives from the built-in exception a Python user would
expect (ValueError, TypeError, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "RefcompError",
    "ValidationError",
    "DTypeError",
    "ShapeError",
    "OverflowRiskError",
    "ReadOnlyError",
    "BackendUnavailableError",
    "MissingDependencyError",
    "FileFormatError",
    "UnsupportedOperatorError",
    "expect",
]


class RefcompError(Exception):
    """Base class of every error refcomp raises on purpose."""

    def __reduce__(self):
        # A worker process sends a task's error back pickled (refcomp.executors); the default
        # rebuilds it as cls(*self.args), which the (argument, expected, got) signatures refuse.
        # Rebuilt without __init__ instead: the message, then the attributes (argument, hint ...).
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls, args):
    error = cls.__new__(cls)
    error.args = args
    return error


class ValidationError(RefcompError, ValueError):
    """An argument has a value outside its contract.

    Parameters
    ----------
    argument : name of the offending argument (as the user typed it).
    expected : what the contract asks for, in words.
    got : what was received (value, dtype, shape ...), already formatted or any object.
    """

    def __init__(self, argument: str, expected: str, got: object):
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"{argument}: expected {expected}, got {got}")


class DTypeError(ValidationError, TypeError):
    """An argument has an unsupported or mismatched dtype."""


class ShapeError(ValidationError):
    """An argument has a shape that does not fit the others."""


class OverflowRiskError(ValidationError, OverflowError):
    """An exact integer result cannot be guaranteed in the requested accumulator."""


class ReadOnlyError(ValidationError, AttributeError):
    """An attribute of a validated, immutable object was assigned or deleted (e.g. CSRMatrix.indices)."""


class BackendUnavailableError(RefcompError, RuntimeError):
    """A backend was requested explicitly but is not available here."""


class MissingDependencyError(BackendUnavailableError, ImportError):
    """A package a feature needs is not installed; ``hint`` is the command that installs it.

    Also an ImportError, what ``import`` of the package itself would have raised. The
    message names the feature, the package and the extra of refcomp that brings it::

        MissingDependencyError: refcomp.onnx: expected the package onnx installed, got it missing
        (pip install refcomp[interop])
    """

    def __init__(self, feature: str, package: str, extra: str):
        self.feature, self.package, self.extra = feature, package, extra
        # quoted in the hint: the brackets are a glob pattern in zsh
        self.hint = f"install it with: pip install 'refcomp[{extra}]'"
        super().__init__(f"{feature}: expected the package {package} installed, got it missing "
                         f"(pip install refcomp[{extra}])")


class FileFormatError(RefcompError, ValueError):
    """A file is truncated, corrupted, of a foreign format or of an unknown version."""


class UnsupportedOperatorError(ValidationError):
    """A model file uses an operator (or an attribute value of one) that refcomp cannot represent.

    The message names the node, its op type and the opset, e.g.::

        UnsupportedOperatorError: node 'conv1' (Conv, opset 17): expected auto_pad NOTSET or VALID, got 'SAME_UPPER'
    """

    def __init__(self, op_type: str, node: str, opset: int, expected: str, got: object):
        self.op_type, self.node, self.opset = op_type, node, opset
        super().__init__(f"node {node!r} ({op_type}, opset {opset})", expected, got)


def expect(condition: bool, argument: str, expected: str, got: object, cls=ValidationError) -> None:
    """Raise ``cls(argument, expected, got)`` unless ``condition`` holds."""
    if not condition:
        raise cls(argument, expected, got)
