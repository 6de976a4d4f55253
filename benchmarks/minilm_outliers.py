"""The activation outliers of all-MiniLM-L6-v2: where they are, how large, what each remedy does.

    python benchmarks/minilm_outliers.py [--plot docs/img/minilm_outliers.png]

Runs the first 64 golden sentences (padded to 128) through the fp32 model with a
hook on every Linear and prints, per layer kind, for the Linear's input x:

- channel outliers: max over channels of max|x_j| divided by the median channel's
  max|x_j| (the "outlier features" of Dettmers et al. 2022): a per-tensor scale
  spends its 255 steps on the widest channel;
- token spread: the largest token's range (max − min over its features)
  divided by the median token's: what a per-tensor dynamic scale loses on the
  ordinary tokens, and what per-token scales (eq. D2) get back;
- the same channel ratio after SmoothQuant (α = 0.5), on x/m;
- the mean step of the uint8 grid relative to each token's own range, per
  tensor and per token: per tensor it is (whole range)/255 for every token.

A plot (optional, matplotlib): per-channel max|x| of layer 0's fc1 input
and of its fc2 input (GELU output), with the channels above 3× the median marked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from refcomp.compress.quantize.static_inputs import smoothing_factors
from refcomp.models import minilm
from refcomp.nn.layers import Linear

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("REFCOMP_MINILM_GOLDEN", REPO.parent / "shared" / "data" / "minilm"))


def collect(model, ids, mask):
    """{linear name: its input rows of real (unpadded) tokens, float32 (n_tokens, in)}."""
    keep = mask.reshape(-1).astype(bool)
    rows = {}
    handles = [layer.register_forward_hook(lambda mod, inp, out, name=name: rows.__setitem__(
        name, np.asarray(inp[0]).reshape(-1, mod.in_features)[keep].copy()))
        for name, layer in model.named_modules() if isinstance(layer, Linear)]
    model(ids, mask)
    for h in handles:
        h.remove()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", help="write the figure here (PNG)")
    args = ap.parse_args(argv)
    with np.load(GOLDEN / "golden.npz", allow_pickle=False) as z:
        ids, mask = z["input_ids"][:64].astype(np.int64), z["attention_mask"][:64].astype(np.int64)
    model = minilm()
    rows = collect(model, ids, mask)
    weights = {n: l.weight.to_dense() for n, l in model.named_modules() if isinstance(l, Linear)}
    print("| Linear input | channel max/median | top channels (max abs) | token range max/median | "
          "after SmoothQuant: channel max/median |")
    print("| --- | --- | --- | --- | --- |")
    for name, x in rows.items():
        ch = np.abs(x).max(axis=0)
        top = np.argsort(-ch)[:3]
        span = x.max(axis=1) - x.min(axis=1)
        m = smoothing_factors(ch, np.abs(weights[name]).max(axis=0), 0.5)
        ch_s = np.abs(x / m).max(axis=0)
        print(f"| {name} | {ch.max() / np.median(ch):.1f} | "
              f"{', '.join(f'{j} ({ch[j]:.1f})' for j in top)} | {span.max() / np.median(span):.1f} | "
              f"{ch_s.max() / np.median(ch_s):.1f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        for ax, name, title in ((axes[0], "layer0.fc1", "layer 0: fc1 input (after LayerNorm)"),
                                (axes[1], "layer0.fc2", "layer 0: fc2 input (after GELU)")):
            ch = np.abs(rows[name]).max(axis=0)
            out = ch > 3 * np.median(ch)
            ax.bar(np.arange(len(ch)), ch, width=1.0, color="tab:blue")
            ax.bar(np.flatnonzero(out), ch[out], width=3.0, color="tab:red", label="> 3 × median")
            for j in np.flatnonzero(out)[:6]:
                ax.annotate(str(j), (j, ch[j]), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("input channel")
            ax.set_ylabel("max |x| over 64 sentences")
            ax.legend(fontsize=8)
        x = rows["layer5.fc2"]
        span = np.sort(x.max(axis=1) - x.min(axis=1))
        axes[2].plot(span, color="tab:green", label="each token's own range (per-token scale)")
        axes[2].axhline(x.max() - min(0.0, x.min()), color="tab:red", label="one range for the batch (per tensor)")
        axes[2].set_yscale("log")
        axes[2].set_title("layer 5: fc2 input, range per token", fontsize=10)
        axes[2].set_xlabel("tokens, sorted by range")
        axes[2].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
