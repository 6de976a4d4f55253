"""What every sub-command checks before it starts working: output paths, data, numbers, model names.

Why up front: a mistake found after training (a wrong suffix, a missing folder)
throws the work away. Each check raises :class:`UsageError`, a
:class:`refcomp.errors.ValidationError` that also carries a hint, which
:func:`refcomp.cli.main` prints under the ``error:`` line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from .. import datasets, progress
from .. import onnx as rc_onnx
from ..errors import ValidationError
from ..io import load_model

#: the model names of ``train`` and ``compress`` (refcomp.models.MODELS)
MODELS = ("lenet_300_100", "lenet5", "digits_mlp")
#: names accepted for a while, mapped to the canonical ones (with a warning on stderr)
DEPRECATED_MODELS = {"lenet300": "lenet_300_100", "digits": "digits_mlp"}


class UsageError(ValidationError):
    """A command-line mistake: ``argument: expected ..., got ...`` plus a hint on how to fix it."""

    def __init__(self, argument: str, expected: str, got: object, hint: str | None = None):
        super().__init__(argument, expected, got)
        self.hint = hint


def model_name(value: str) -> str:
    """argparse ``type=`` of --model: a deprecated name becomes the canonical one, with a warning."""
    if value in DEPRECATED_MODELS:
        new = DEPRECATED_MODELS[value]
        print(f"refcomp: warning: --model {value} is deprecated, use --model {new}", file=sys.stderr)
        return new
    return value


def positive_int(value, argument: str) -> None:
    if value is not None and value < 1:
        raise UsageError(argument, "an int >= 1", value)


def seed(value, argument: str = "--seed") -> None:
    # NumPy's default_rng refuses negative seeds with a bare ValueError, after the data is loaded
    if value is not None and value < 0:
        raise UsageError(argument, "an int >= 0", value)


def momentum(value) -> None:
    if not (math.isfinite(value) and 0 <= value < 1):
        raise UsageError("--momentum", "a number in [0, 1)", value, "the usual value is 0.9")


def _writable_dir(d: Path) -> bool:
    return os.access(d, os.W_OK | os.X_OK)


def output_file(path, argument: str, suffixes: tuple[str, ...]) -> Path:
    """A file the command will write: its suffix, an existing writable folder, not a folder itself."""
    p = Path(path)
    if p.suffix not in suffixes:
        raise UsageError(argument, f"a path ending in {' or '.join(suffixes)}", repr(str(path)))
    if p.is_dir():
        raise UsageError(argument, "a file name, not a folder", repr(str(path)),
                         f"name the file inside it, e.g. {p / ('out' + suffixes[0])}")
    parent = p.parent
    if not parent.exists():
        raise UsageError(argument, "a file in an existing folder", repr(str(path)),
                         f"create the folder first: mkdir -p {parent}")
    if not parent.is_dir():
        raise UsageError(argument, "a file in an existing folder", repr(str(path)),
                         f"{parent} is a file, not a folder")
    if not _writable_dir(parent):
        raise UsageError(argument, "a file in a folder you can write to", repr(str(path)),
                         f"{parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(argument, "a file you can write to", repr(str(path)), f"{p} is read-only")
    return p


def output_file_in(path, argument: str, suffixes: tuple[str, ...], out: Path) -> Path:
    """:func:`output_file`, except that the file may go into the folder ``out`` the command creates."""
    p = Path(path)
    if p.absolute().parent == out.absolute() and not out.exists():
        if p.suffix not in suffixes:
            raise UsageError(argument, f"a path ending in {' or '.join(suffixes)}", repr(str(path)))
        return p
    return output_file(p, argument, suffixes)


def output_dir(path, argument: str) -> Path:
    """A folder the command will create (with its parents) or fill: not a file; somewhere writable."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UsageError(argument, "a folder (created if missing)", repr(str(path)),
                             f"{p} is a file: choose another name or remove it")
        if not _writable_dir(p):
            raise UsageError(argument, "a folder you can write to", repr(str(path)), f"{p} is not writable")
        return p
    ancestor = p.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(argument, "a folder (created if missing)", repr(str(path)),
                         f"{ancestor} is a file, not a folder")
    if not _writable_dir(ancestor):
        raise UsageError(argument, "a folder you can create", repr(str(path)), f"{ancestor} is not writable")
    return p


def input_file(path, argument: str, what: str) -> Path:
    """A file the command reads: it must exist and be a file (a folder is an OS error later)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(argument, f"an existing {what}", repr(str(path)),
                         f"{p} is a folder" if p.is_dir() else None)
    return p


def load_any_model(path):
    """A refcomp model file (any container, recognised by its bytes) or, for a .onnx path, an ONNX
    model, as a runnable refcomp model; both loaders raise FileFormatError on a bad file."""
    path = Path(path)
    return rc_onnx.load(path) if path.suffix.lower() == ".onnx" else load_model(path)


def golden_dir(path=None) -> Path:
    """The folder of the MiniLM golden set: ``path``, else ../shared/data/minilm beside the checkout."""
    return Path(path) if path else Path(__file__).resolve().parents[3] / "shared" / "data" / "minilm"


def load_split(data: str, mnist_dir=None, seed: int = 0):
    """``datasets.load_split``; missing MNIST files are a one-line error naming --mnist-dir, not a traceback."""
    try:
        return datasets.load_split(data, seed=seed, path=mnist_dir)
    except FileNotFoundError as exc:
        where = mnist_dir if mnist_dir is not None else datasets.default_mnist_dir()
        raise UsageError("--mnist-dir", "a directory with the MNIST IDX files",
                         f"{str(where)!r} ({str(exc).split(' (')[0]})",
                         "pass --mnist-dir DIR or set REFCOMP_MNIST_DIR (t10k-images-idx3-ubyte.gz and "
                         "t10k-labels-idx1-ubyte.gz, gzip or raw)") from None


@contextlib.contextmanager
def made_dir(path: Path):
    """Create ``path`` (and parents) for the command's outputs; remove it again if the command fails
    (error or Ctrl-C) before anything was written into it, so a mistake leaves nothing behind."""
    created = []
    for d in reversed([path, *path.parents]):
        if not d.exists():
            created.append(d)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in reversed(created):
            try:
                d.rmdir()        # only if empty: files already written (a cached baseline) are kept
            except OSError:
                break
        raise


# ---- output: --json, --quiet, summary lines ------------------------------------------
def add_json(parser) -> None:
    """``--json``: the command's result as one JSON document on stdout, and nothing else there."""
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON document on stdout (and nothing else there)")


def json_safe(obj):
    """Strict JSON: NumPy numbers and arrays become Python ones, paths strings, ±inf / NaN strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else str(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def emit_json(obj) -> None:
    """Print ``obj`` as the command's one JSON document on stdout."""
    json.dump(json_safe(obj), sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def say(args):
    """The command's summary-line printer: to stdout through the live display (so a line never cuts
    a progress bar), or nothing with ``--quiet`` or ``--json`` (stdout then holds only the JSON)."""
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return lambda line: None
    return lambda line: progress.echo(line, sys.stdout)
