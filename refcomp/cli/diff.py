"""``refcomp diff``: two models compared layer by layer on the same inputs, worst layers first.

    refcomp diff model.safetensors model_w8a8.rcm --data digits
    refcomp diff float.onnx w8a8.onnx --data inputs.npy --runtime onnxruntime --json
    refcomp diff lenet5.safetensors lenet5.onnx --data mnist --layers 5

A and B: refcomp model files (.safetensors / .npz / .rcm, refcomp.io.load_model)
or ONNX files (run by refcomp through refcomp.onnx.load, or with ``--runtime
onnxruntime`` / ``onnxruntime-exact`` by onnxruntime with every intermediate
value exposed; exact = session.x64quantprecision=1). Layers are
matched by name (refcomp.pipelines.diff). Per layer: SQNR (dB) of B against A,
cosine, max |B − A|, and the share of saturated codes (at q_min / q_max) where
a layer outputs codes. ``--data``: "digits" / "mnist" / "mnist-fixture" (the test part of the
seed-0 split) or an .npy file of float inputs (N, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import datasets
from ..errors import FileFormatError, ValidationError
from ..pipelines.diff import diff_files, format_table
from ..pipelines.diff.run import RUNTIMES
from . import _common
from ._common import load_split

HELP = "compare two models (refcomp files or ONNX) layer by layer: SQNR, cosine, max error, saturation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="reference model: a refcomp model file or an .onnx file")
    parser.add_argument("b", help="model under test: a refcomp model file or an .onnx file")
    parser.add_argument("--data", required=True,
                        help="'digits', 'mnist', 'mnist-fixture' (their test part) or an .npy file of inputs")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--samples", type=int, default=None, help="use the first N inputs only")
    parser.add_argument("--runtime", default="refcomp", choices=list(RUNTIMES),
                        help="what runs the ONNX files (refcomp model files always run in refcomp); "
                             "onnxruntime-exact: with session.x64quantprecision=1")
    parser.add_argument("--layers", type=int, default=None, help="show the N worst layers only")
    _common.add_json(parser)


def load_inputs(data: str, mnist_dir=None) -> np.ndarray:
    """The inputs named by ``--data``: a dataset's test inputs or an .npy file's array."""
    if data in datasets.SPLITS:
        _, (x, _) = load_split(data, mnist_dir)
        return x
    p = Path(data)
    if p.suffix.lower() != ".npy":
        raise ValidationError("--data", f"one of {', '.join(datasets.SPLITS)} or an .npy file", repr(data))
    if not p.is_file():
        raise ValidationError("--data", "an existing .npy file", str(p))
    try:
        x = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"{p}: not a readable .npy array ({exc})") from None
    return x


def run(args) -> int:
    if args.layers is not None and args.layers < 1:
        raise ValidationError("--layers", "an int >= 1", args.layers)
    runtimes = {}
    for side in ("a", "b"):
        path = Path(getattr(args, side))
        if not path.is_file():
            raise ValidationError(side.upper(), "an existing model file", str(path))
        runtimes[side] = args.runtime if path.suffix.lower() == ".onnx" else "refcomp"
    x = load_inputs(args.data, args.mnist_dir)
    if args.samples is not None:
        if args.samples < 1:
            raise ValidationError("--samples", "an int >= 1", args.samples)
        x = x[:args.samples]
    rows = diff_files(args.a, args.b, x, runtime_a=runtimes["a"], runtime_b=runtimes["b"])
    shown = rows if args.layers is None else rows[:args.layers]
    if args.json:
        _common.emit_json({"a": args.a, "b": args.b, "data": args.data, "samples": len(x),
                           "runtime": args.runtime, "layers": shown})
    else:
        print(f"A = {args.a}\nB = {args.b}\n{len(x)} inputs from {args.data}; "
              f"{len(rows)} matched layers, worst first\n")
        print(format_table(rows, args.layers))
    return 0
