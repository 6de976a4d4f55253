"""The Deep Compression pipeline on a model: prune → retrain → cluster → fine-tune centroids → Huffman.

Han, Mao, Dally 2016, "Deep Compression" (arXiv:1510.00149), Fig. 1:

1. **prune** (§2): magnitude (or another criterion) pruning to a per-layer ratio, in R prune → retrain
   rounds; round r (1…R) prunes layer l to s_l · (1 − (1 − r/R)³) (the cubic ramp
   of Zhu & Gupta 2017, D.12, taken over rounds), masks persist through the
   retraining (refcomp.compress.prune.model.MaskedOptimizer);
2. **quantize** (§3): k-means weight sharing of the surviving weights with
   2^b_l linear-initialised centroids per layer, then centroid fine-tuning by
   summed gradients (D.16, D.17; refcomp.compress.share.trained_quantization);
3. **encode** (§2, §4): relative-index CSR with b_idx-bit gaps and b_l-bit
   cluster indices, then canonical Huffman coding of both fields
   (refcomp.formats.relative_csr, D.21, D.22).

The accuracy reported for the compressed model is measured on weights
*decoded from the stored bit fields* (RelativeIndexCSR.to_dense), and again
through the CSR kernels (refcomp.compress.prune.deploy) and, with ``save_to``,
after writing the compressed file and reading it back
(refcomp.io.compressed_file), so the table describes exactly the model
that was evaluated. Biases are kept as float32 and counted
separately (the paper's tables count weights only).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..checks import integer, ratio
from ..compress.prune.deploy import to_csr
from ..compress.prune.model import CRITERIA, apply_model_masks, prunable_layers, prune_with_schedule
from ..compress.prune.schedules import Iterative
from ..compress.share.trained_quantization import cluster_model, finetune_centroids
from ..errors import ValidationError
from ..formats.relative_csr import RelativeIndexCSR, size_table, size_table_markdown
from ..io.atomic import write_atomic
from ..io.compressed_file import load_compressed, save_compressed
from ..nn.train import evaluate

__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline", "load_into", "write_report", "PRESETS"]


@dataclasses.dataclass
class PipelineConfig:
    """Every knob of the pipeline; :meth:`from_dict` reads the same keys from TOML.

    sparsity, weight_bits, index_bits : {layer name: value} (the layers compressed).
    prune_rounds, prune_epochs : R rounds of prune → retrain, ``prune_epochs`` epochs each.
    prune_lr : retraining lr (cosine-decayed over all rounds); weight_decay : its L2 penalty.
    criterion : "magnitude" (the paper's) | "activation" | "taylor" | "snip" (refcomp.compress.prune.model);
        the data-driven ones use the first ``calibration_samples`` training samples.
    finetune_epochs, finetune_lr : centroid fine-tuning (§3.3).
    layout : "flat" (the paper's single stream) or "rows" (CSR with row pointers).
    """

    sparsity: dict
    weight_bits: dict
    index_bits: dict
    prune_rounds: int = 3
    criterion: str = "magnitude"
    calibration_samples: int = 512
    prune_epochs: int = 2
    prune_lr: float = 0.01
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 64
    cluster_init: str = "linear"
    finetune_epochs: int = 1
    finetune_lr: float = 1e-4
    layout: str = "flat"
    seed: int = 0

    def __post_init__(self):
        for field in ("sparsity", "weight_bits", "index_bits"):
            if not isinstance(getattr(self, field), Mapping) or not getattr(self, field):
                raise ValidationError(field, "a non-empty mapping layer name -> value",
                                      repr(getattr(self, field)))
        names = list(self.sparsity)
        for field in ("weight_bits", "index_bits"):
            if sorted(getattr(self, field)) != sorted(names):
                raise ValidationError(field, f"the same layer names as sparsity {names}", sorted(getattr(self, field)))
        self.sparsity = {n: ratio(v, f"sparsity[{n!r}]") for n, v in self.sparsity.items()}
        self.weight_bits = {n: integer(v, f"weight_bits[{n!r}]", minimum=1, maximum=8)
                            for n, v in self.weight_bits.items()}
        self.index_bits = {n: integer(v, f"index_bits[{n!r}]", minimum=1, maximum=16)
                           for n, v in self.index_bits.items()}
        self.prune_rounds = integer(self.prune_rounds, "prune_rounds", minimum=1)
        self.prune_epochs = integer(self.prune_epochs, "prune_epochs", minimum=1)
        self.finetune_epochs = integer(self.finetune_epochs, "finetune_epochs", minimum=0)
        self.batch_size = integer(self.batch_size, "batch_size", minimum=1)
        self.calibration_samples = integer(self.calibration_samples, "calibration_samples", minimum=1)

        if self.criterion not in CRITERIA:
            raise ValidationError("criterion", f"one of {CRITERIA}", repr(self.criterion))
        self.seed = integer(self.seed, "seed", minimum=0)
        for field in ("prune_lr", "finetune_lr", "momentum", "weight_decay"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValidationError(field, "a finite number >= 0", repr(v))
        if self.cluster_init not in ("linear", "density", "random"):
            raise ValidationError("cluster_init", "'linear', 'density' or 'random'", repr(self.cluster_init))
        if self.layout not in ("flat", "rows"):
            raise ValidationError("layout", "'flat' or 'rows'", repr(self.layout))

    @classmethod
    def from_dict(cls, d: Mapping, base: "PipelineConfig | None" = None) -> "PipelineConfig":
        """Keys of the dataclass; unknown keys are an error. ``base`` supplies the missing ones."""
        if not isinstance(d, Mapping):
            raise ValidationError("config", "a table of pipeline settings", type(d).__name__)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValidationError("config", f"keys among {sorted(known)}", f"unknown {unknown}")
        values = dataclasses.asdict(base) if base is not None else {}
        values.update(d)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Paper-style settings per reference model (Deep Compression Tables 2 and 3 as the starting point,
#: tuned on this 8,000-image split; docs/deep_compression.md §7 gives the measured results).
PRESETS = {
    "lenet_300_100": dict(
        sparsity={"fc1": 0.94, "fc2": 0.91, "fc3": 0.74},
        weight_bits={"fc1": 5, "fc2": 5, "fc3": 5},
        index_bits={"fc1": 5, "fc2": 5, "fc3": 5},
        prune_rounds=5, prune_epochs=10, prune_lr=0.02, finetune_epochs=1, finetune_lr=1e-4),
    "lenet5": dict(
        sparsity={"conv1": 0.34, "conv2": 0.88, "fc1": 0.93, "fc2": 0.81},
        weight_bits={"conv1": 5, "conv2": 5, "fc1": 5, "fc2": 5},
        index_bits={"conv1": 4, "conv2": 5, "fc1": 5, "fc2": 5},
        prune_rounds=4, prune_epochs=4, prune_lr=0.05, finetune_epochs=1, finetune_lr=1e-4),
    "digits_mlp": dict(
        sparsity={"fc1": 0.8, "fc2": 0.5},
        weight_bits={"fc1": 5, "fc2": 5},
        index_bits={"fc1": 4, "fc2": 4},
        prune_rounds=2, prune_epochs=3, prune_lr=0.02, finetune_epochs=1, finetune_lr=1e-3),
}


@dataclasses.dataclass
class PipelineResult:
    model: object                  # the compressed model (weights = decoded shared values)
    masks: dict
    clustered: dict
    storage: dict                  # name -> RelativeIndexCSR
    table: list                    # size_table rows (last = total)
    accuracy: dict                 # stage -> test accuracy
    seconds: dict                  # stage -> wall time
    bias_bytes: int
    dense_bytes: int               # every parameter as float32 (weights + biases)
    config: PipelineConfig
    file: str | None = None        # the compressed file written (refcomp.io.compressed_file)
    file_bytes: int | None = None

    @property
    def weights_ratio(self) -> float:
        """Dense float32 weights / compressed weights (P+Q+H), the paper's figure."""
        return self.table[-1]["pqh_ratio"]

    @property
    def model_ratio(self) -> float:
        """All parameters (weights + biases) dense / compressed weights + float32 biases."""
        return self.dense_bytes / (self.table[-1]["pqh_bytes"] + self.bias_bytes)

    def summary(self) -> dict:
        total = self.table[-1]
        return {"accuracy": self.accuracy, "seconds": self.seconds,
                "weights_dense_bytes": total["dense_bits"] // 8, "weights_pqh_bytes": total["pqh_bytes"],
                "weights_pq_bytes": total["pq_bytes"], "weights_ratio": self.weights_ratio,
                "bias_bytes": self.bias_bytes, "model_dense_bytes": self.dense_bytes,
                "model_ratio": self.model_ratio, "kept_pct": total["kept_pct"],
                "file": self.file, "file_bytes": self.file_bytes,
                "config": self.config.to_dict()}


class _Progress:
    """tqdm bar over the pipeline's epochs when ``stream`` is a terminal, else silent."""

    def __init__(self, total: int, enabled, stream):
        self.bar = None
        tty = hasattr(stream, "isatty") and stream.isatty()
        if enabled is True or (enabled == "auto" and tty):
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="epoch", file=stream, leave=True)
            except ImportError:  # tqdm is optional
                self.bar = None

    def stage(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(name)

    def advance(self, n: int = 1, **postfix) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(**postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _accuracy(model, data) -> float:
    return float(evaluate(model, data)["accuracy"])


def _bias_bytes(model, names) -> tuple[int, int]:
    """(bytes of all non-compressed parameters as float32, bytes of every parameter as float32)."""
    compressed = {id(l.weight) for l in prunable_layers(model, names).values()}
    rest, total = 0, 0
    for _, p in model.named_weights():
        n = int(np.prod(p.shape))
        total += 4 * n
        if id(p) not in compressed:
            rest += 4 * n
    return rest, total


def _other_tensors(model, names) -> dict:
    """Every parameter and buffer not stored as a compressed layer (biases, BatchNorm...), by dotted name."""
    compressed = {f"{n}.weight" for n in names}
    out = {}
    for name, p in model.named_weights():
        if name not in compressed:
            out[name] = np.asarray(p.data if hasattr(p, "data") else p.to_dense())
    for name, b in model.named_buffers():
        out[name] = np.asarray(b)
    return out


def load_into(model, path):
    """A copy of ``model`` with every weight, parameter and buffer read from a compressed file."""
    import copy


    layers, tensors, _ = load_compressed(path)
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, list(layers))
    for name, layer in chosen.items():
        w = layers[name].to_dense()
        if w.shape != layer.weight.data.shape:
            raise ValidationError(f"{path}: layer {name!r}", f"shape {layer.weight.data.shape}", w.shape)
        layer.weight.data[...] = w
    weights = dict(out.named_weights())
    buffers = dict(out.named_buffers())
    for name, a in tensors.items():
        if name in weights:
            target = weights[name].data
        elif name in buffers:
            target = buffers[name]
        else:
            raise ValidationError(f"{path}: tensor {name!r}", "a parameter or buffer of the model", "unknown")
        if target.shape != a.shape:
            raise ValidationError(f"{path}: tensor {name!r}", f"shape {target.shape}", a.shape)
        target[...] = a
    missing = [n for n in _other_tensors(out, list(layers)) if n not in tensors]
    if missing:
        raise ValidationError(str(path), "every parameter of the model", f"missing {missing}")
    return out


def run_pipeline(model, train_set, test_set, config: PipelineConfig, *, progress="auto",
                 stream=None, log=None, save_to=None) -> PipelineResult:
    """Compress a trained ``model`` in place with ``config``; return the result (see the module docstring).

    log : optional callable(str) receiving one line per stage.
    save_to : optional path: the compressed layers and the other parameters are written there
        (refcomp.io.compressed_file), read back into a copy of the model and evaluated
        (accuracy["from_file"]).
    """
    import sys

    if not isinstance(config, PipelineConfig):
        raise ValidationError("config", "a PipelineConfig", type(config).__name__)
    names = list(config.sparsity)
    prunable_layers(model, names)  # unknown layer names fail here, before any work
    say = log or (lambda s: None)
    c = config
    bar = _Progress(c.prune_rounds * c.prune_epochs + c.finetune_epochs, progress, stream or sys.stderr)
    seconds, accuracy = {}, {}
    try:
        t = time.perf_counter()
        accuracy["dense"] = _accuracy(model, test_set)
        say(f"dense baseline: test accuracy {100 * accuracy['dense']:.2f} %")

        # 1. prune -> retrain, R rounds on the cubic ramp
        bar.stage("prune+retrain")
        rounds = c.prune_rounds
        top = max(c.sparsity.values())
        milestones = [(r * c.prune_epochs, top * (1.0 - (1.0 - (r + 1) / rounds) ** 3)) for r in range(rounds)]
        if top == 0.0:
            milestones = [(0, 0.0)]
        t = time.perf_counter()
        masks = prune_with_schedule(model, Iterative(milestones), train_set,
                                    epochs=rounds * c.prune_epochs, sparsity_of_layer=c.sparsity,
                                    lr=c.prune_lr, momentum=c.momentum, weight_decay=c.weight_decay,
                                    batch_size=c.batch_size, criterion=c.criterion,
                                    calibration=None if c.criterion == "magnitude" else
                                    (train_set[0][:c.calibration_samples], train_set[1][:c.calibration_samples]),
                                    rng=c.seed, callback=lambda e, m: bar.advance())
        seconds["prune_retrain"] = time.perf_counter() - t
        accuracy["pruned"] = _accuracy(model, test_set)
        say(f"pruned + retrained ({rounds} rounds x {c.prune_epochs} epochs): "
            f"{100 * accuracy['pruned']:.2f} % in {seconds['prune_retrain']:.1f} s")

        # 2. weight sharing + centroid fine-tuning
        bar.stage("cluster")
        t = time.perf_counter()
        clustered = cluster_model(model, c.weight_bits, masks=masks, init=c.cluster_init,
                                  rng=c.seed if c.cluster_init == "random" else None)
        seconds["cluster"] = time.perf_counter() - t
        accuracy["clustered"] = _accuracy(model, test_set)
        bar.stage("fine-tune centroids")
        t = time.perf_counter()
        finetune_centroids(model, clustered, train_set, epochs=c.finetune_epochs, lr=c.finetune_lr,
                           momentum=c.momentum, batch_size=c.batch_size, rng=c.seed + 1,
                           on_epoch=lambda rec: bar.advance(loss=f"{rec['loss']:.4f}"))
        seconds["finetune_centroids"] = time.perf_counter() - t
        say(f"clustered: {100 * accuracy['clustered']:.2f} % ({seconds['cluster']:.1f} s), "
            f"after centroid fine-tuning {c.finetune_epochs} epochs ({seconds['finetune_centroids']:.1f} s)")

        # 3. encode, decode the stored fields back into the model, evaluate
        bar.stage("encode")
        t = time.perf_counter()
        storage = {n: RelativeIndexCSR.from_clustered(clustered[n], index_bits=c.index_bits[n], layout=c.layout)
                   for n in names}
        table = size_table(storage)
        layers = prunable_layers(model, names)
        for n, layer in layers.items():
            layer.weight.data[...] = storage[n].to_dense()
        apply_model_masks(model, masks)
        seconds["encode"] = time.perf_counter() - t
        accuracy["compressed"] = _accuracy(model, test_set)

        t = time.perf_counter()
        accuracy["compressed_csr"] = _accuracy(to_csr(model, names), test_set)
        seconds["evaluate_csr"] = time.perf_counter() - t
        bias, dense = _bias_bytes(model, names)
        result = PipelineResult(model=model, masks=masks, clustered=clustered, storage=storage, table=table,
                                accuracy=accuracy, seconds=seconds, bias_bytes=bias, dense_bytes=dense,
                                config=c)
        if save_to is not None:
            t = time.perf_counter()
            # no metadata: the configuration is in the report, every header byte counts in the file size
            path = save_compressed(save_to, storage, _other_tensors(model, names))
            accuracy["from_file"] = _accuracy(load_into(model, path), test_set)
            seconds["save_and_reload"] = time.perf_counter() - t
            result.file, result.file_bytes = str(path), path.stat().st_size
            say(f"written {path} ({result.file_bytes:,} bytes), reloaded: {100 * accuracy['from_file']:.2f} %")
        say(f"compressed: {100 * accuracy['compressed']:.2f} % (CSR kernels: "
            f"{100 * accuracy['compressed_csr']:.2f} %), weights {result.weights_ratio:.1f}x, "
            f"with biases {result.model_ratio:.1f}x")
        return result
    finally:
        bar.close()


def _plot_sizes(result: PipelineResult, path: Path) -> bool:
    """Stacked bars of each layer's compressed bytes (weight field, index field, codebook,
    row pointers) after P+Q+H, next to its P+Q size. Returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in result.table if r["layer"] != "total"]
    names = [r["layer"] for r in rows]
    parts = {"weight field (Huffman)": [], "index field (Huffman)": [], "codebook": [], "row pointers": []}
    for r in rows:
        e = r["entries"]
        parts["weight field (Huffman)"].append(r["huffman_weight_bits"] * e / 8)
        parts["index field (Huffman)"].append(r["huffman_index_bits"] * e / 8)
        parts["codebook"].append(r["codebook_bits"] / 8)
        parts["row pointers"].append(r["row_pointer_bits"] / 8)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for label, vals in parts.items():
        ax1.bar(x, vals, bottom=bottom, label=label)
        bottom += np.array(vals)
    ax1.bar(x + 0.0, [r["pq_bytes"] for r in rows], fill=False, edgecolor="k", linestyle="--",
            label="P+Q (no Huffman)")
    ax1.set_xticks(x, names)
    ax1.set_ylabel("bytes")
    ax1.set_title("compressed size per layer (P+Q+H)")
    ax1.legend(fontsize=7)
    total = result.table[-1]
    stages = ["dense", "pruned (P)", "P+Q", "P+Q+H"]
    # P: the same relative-index entries holding float32 weights instead of cluster indices
    pruned_bytes = sum(r["entries"] * (32 + r["index_bits"]) + r["row_pointer_bits"] for r in rows) / 8
    vals = [total["dense_bits"] / 8, pruned_bytes, total["pq_bytes"], total["pqh_bytes"]]
    ax2.bar(stages, np.array(vals) / 1024)
    ax2.set_yscale("log")
    ax2.set_ylabel("KiB (log)")
    ax2.set_title(f"weights: {total['dense_bits'] / 8 / 1024:.0f} KiB -> {total['pqh_bytes'] / 1024:.1f} KiB "
                  f"({result.weights_ratio:.1f}x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(result: PipelineResult, out_dir, *, title: str = "Deep Compression", command: str = "",
                 extra_seconds: Mapping | None = None, extra_markdown: str = "") -> dict:
    """Write report.md, results.json and sizes.png (if matplotlib) into ``out_dir``; return their paths.

    extra_markdown : appended to the report (e.g. the sensitivity section of the CLI).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds = dict(extra_seconds or {}, **result.seconds)
    acc = result.accuracy
    total = result.table[-1]
    lines = [f"# {title}", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "## Accuracy (test set)", "",
        "| stage | accuracy |", "|---|---|",
        *(f"| {k} | {100 * v:.2f} % |" for k, v in acc.items()),
        "",
        f"Change from the dense baseline: {100 * (acc['compressed'] - acc['dense']):+.2f} percentage points "
        "(evaluated on weights decoded from the stored bit fields; `compressed_csr` through the CSR kernels).",
        "",
        "## Size (paper Table 2/3 style; weights only)", "",
        size_table_markdown(result.table),
        f"Weights: {total['dense_bits'] / 8:,.0f} B dense -> {total['pqh_bytes']:,} B "
        f"(**{result.weights_ratio:.1f}x**, P+Q+H; {total['dense_bits'] / 8 / total['pq_bytes']:.1f}x P+Q).",
        f"Whole model incl. {result.bias_bytes:,} B of float32 biases: {result.dense_bytes:,} B -> "
        f"{total['pqh_bytes'] + result.bias_bytes:,} B (**{result.model_ratio:.1f}x**).",
        "",
        *([f"File `{Path(result.file).name}`: {result.file_bytes:,} B on disk "
           f"({result.dense_bytes / result.file_bytes:.1f}x the dense parameters; the difference to the "
           "line above is its JSON header and 32-bit row pointers), read back and evaluated as "
           "`from_file`.", ""] if result.file else []),
        "## Time", "",
        "| stage | seconds |", "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in seconds.items()),
        f"| **total** | {sum(seconds.values()):.1f} |",
        "",
        "## Configuration", "",
        "```json", json.dumps(result.config.to_dict(), indent=1, sort_keys=True), "```", "",
    ]
    png = out / "sizes.png"
    if _plot_sizes(result, png):
        lines += ["![size breakdown](sizes.png)", ""]
    else:
        png = None
    if extra_markdown:
        lines += [extra_markdown, ""]
    paths = {"report": write_atomic(out / "report.md", "\n".join(lines).encode())}
    summary = result.summary()
    summary["seconds"] = seconds
    summary["table"] = result.table
    paths["json"] = write_atomic(out / "results.json",
                                 json.dumps(summary, indent=1, sort_keys=True, default=float).encode())
    if png is not None:
        paths["plot"] = png
    return paths
