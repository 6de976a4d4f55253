"""``refcomp evaluate``: how good a model file is — a classifier's test accuracy, an encoder's cosine.

    refcomp evaluate digits.safetensors --data digits
    refcomp evaluate out/model.rcm --data mnist --mnist-dir ~/mnist --json
    refcomp evaluate minilm/model.rcm --golden ../shared/data/minilm

MODEL: a refcomp model file (.safetensors / .npz / .rcm) or an .onnx file.

- A **classifier** (any model taking one input): accuracy and mean
  cross-entropy on the test part of ``--data``'s split (digits: 360 images;
  mnist: 2,000, from ``--mnist-dir`` or $REFCOMP_MNIST_DIR; the split of
  ``--seed``, 0 by default: the one ``train`` and ``compress`` hold out).
- A **sentence encoder** (inputs input_ids and attention_mask, what
  ``compress --model minilm`` writes): its embeddings of the golden sentences
  of ``--golden DIR`` (golden.npz, default ../shared/data/minilm) against the
  fp32 reference there: cosine mean / min and NN@10.
"""

from __future__ import annotations

import argparse

import numpy as np

from .. import datasets
from ..errors import RefcompError
from ..models.minilm_l6 import embed
from ..nn.train import evaluate
from ..pipelines.minilm import format_score, score
from . import _common
from ._common import UsageError

HELP = "a model file's quality: test accuracy of a classifier (--data), cosine of an encoder (--golden)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a refcomp model file (.safetensors / .npz / .rcm) or an .onnx file")
    parser.add_argument("--data", default=None, choices=list(datasets.SPLITS),
                        help="classifier: the dataset whose test part it is scored on")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0, help="the data split (default 0, as train and compress)")
    parser.add_argument("--golden", default=None, metavar="DIR",
                        help="encoder: the folder of golden.npz (default ../shared/data/minilm)")
    parser.add_argument("--samples", type=int, default=None, help="score the first N test inputs only")
    _common.add_json(parser)


def _is_encoder(model) -> bool:
    return list(getattr(model, "inputs", ())) == ["input_ids", "attention_mask"]


def _check_input(model, x, data: str) -> None:
    """The model must take the data's inputs and give one score per class: refused now, not mid-way."""
    try:
        z = np.asarray(model.forward(x[:1]))
    except (RefcompError, ValueError, TypeError) as exc:
        raise UsageError("--data", "inputs the model takes", f"{data} inputs of shape {tuple(x.shape[1:])} "
                         f"({type(exc).__name__}: {str(exc)[:160]})",
                         "digits for digits_mlp, mnist for lenet_300_100 and lenet5") from None
    if z.ndim != 2 or z.shape[1] < 2:
        raise UsageError("MODEL", "a classifier (one score per class)", f"outputs of shape {z.shape}")


def evaluate_classifier(model, data: str, mnist_dir=None, seed: int = 0, samples=None) -> dict:
    """Accuracy and loss of ``model`` on the test part of ``data``'s split."""
    _, (x, y) = _common.load_split(data, mnist_dir, seed=seed)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    _check_input(model, x, data)
    res = evaluate(model, (x, y))
    return {"task": "classification", "data": data, "split_seed": seed, "samples": int(len(y)),
            "accuracy": res["accuracy"], "loss": res["loss"]}


def evaluate_encoder(model, golden, samples=None) -> dict:
    """Cosine (mean, min) and NN@10 of ``model``'s embeddings of the golden sentences against the reference."""
    with np.load(golden / "golden.npz", allow_pickle=False) as z:
        ids, mask, ref = z["input_ids"], z["attention_mask"], z["embeddings"]
    if samples is not None:
        ids, mask, ref = ids[:samples], mask[:samples], ref[:samples]
    s = score(embed(model, input_ids=ids, attention_mask=mask), ref)
    return {"task": "embedding", "golden": str(golden), "samples": int(len(ref)), **s}


def run(args) -> int:
    p = _common.input_file(args.model, "MODEL", "model file")
    _common.positive_int(args.samples, "--samples")
    _common.seed(args.seed)
    model = _common.load_any_model(p)
    if _is_encoder(model):
        if args.data is not None:
            raise UsageError("--data", "no --data for a sentence encoder (it is scored on --golden)", args.data)
        golden = _common.golden_dir(args.golden)
        if not (golden / "golden.npz").is_file():
            raise UsageError("--golden", "a folder holding golden.npz", repr(str(golden)),
                             "pass --golden DIR (the folder of golden.npz: input_ids, attention_mask, embeddings)")
        result = evaluate_encoder(model, golden, args.samples)
    else:
        if args.golden is not None:
            raise UsageError("--golden", "no --golden for a classifier (it is scored on --data)", args.golden)
        if args.data is None:
            raise UsageError("--data", "digits or mnist for a classifier", "nothing",
                             "digits for digits_mlp, mnist for lenet_300_100 and lenet5")
        result = evaluate_classifier(model, args.data, args.mnist_dir, args.seed, args.samples)
    result = {"model": str(args.model), **result}
    if args.json:
        _common.emit_json(result)
    elif result["task"] == "classification":
        print(f"{args.model}: test accuracy {100 * result['accuracy']:.2f} % on {result['samples']} "
              f"{result['data']} samples (loss {result['loss']:.4f})")
    else:
        print(f"{args.model}: on the {result['samples']} golden sentences, against fp32: {format_score(result)}")
    return 0
