"""Running the Deep Compression pipeline on a model: prune, retrain, cluster, fine-tune, encode, measure."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time

import numpy as np

from ...compress.prune.deploy import to_csr
from ...compress.prune.model import apply_model_masks, prunable_layers, prune_with_schedule
from ...compress.prune.schedules import Iterative
from ...compress.share.trained_quantization import cluster_model, clustered_layers, finetune_centroids
from ...errors import ValidationError
from ...formats.dense import Dense
from ...formats.relative_csr import RelativeIndexCSR, size_table
from ...io.compressed_file import load_compressed
from ...io.model_file import load_model, save_model
from ...nn.regularizers import ElasticNet, ProximalElasticNet
from ...nn.train import evaluate
from ...progress import display
from .config import PipelineConfig

__all__ = ["PipelineResult", "run_pipeline", "load_into", "stored_model"]


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
    file: str | None = None        # the compressed model file written (compact encoding, refcomp.io.compact_file)
    file_bytes: int | None = None  # its whole size on disk; the ratios count the table's bits, not this
    file_parts: dict | None = None  # file_bytes split: coded_fields, other_tensors, header (see _file_parts)
    pruned: object = None          # the model after stage 1 alone (pruned + retrained, float weights):
                                   # Han et al. 2015's "pruning alone" row

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
                "file": self.file, "file_bytes": self.file_bytes, "file_parts": self.file_parts,
                "config": self.config.to_dict()}


class _Progress:
    """A bar over the pipeline's epochs on the shared display (refcomp.progress), named by the stage."""

    def __init__(self, shown, total: int):
        self.bar = shown.bar("prune+retrain", total=total, unit="epochs")

    def stage(self, name: str) -> None:
        self.bar.update(description=name)

    def advance(self, n: int = 1, **postfix) -> None:
        self.bar.update(advance=n, **postfix)

    def close(self) -> None:
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


def _file_parts(storage, model, names, file_bytes: int) -> dict:
    """What the compact file's bytes hold: the coded fields (the table's P+Q+H streams, code lengths,
    codebooks, whole bytes per stream, row pointers at 32 bits), the other tensors (biases, buffers)
    and the header (prefix, deflated graph and directory, each coded layer's int64 field header)."""
    coded = sum(a.nbytes for layer in storage.values() for k, a in layer.fields().items() if k != "header")
    other = sum(a.nbytes for a in _other_tensors(model, names).values())
    return {"coded_fields": int(coded), "other_tensors": int(other), "header": int(file_bytes - coded - other)}


def stored_model(model, storage):
    """A copy of ``model`` whose compressed layers hold their RelativeIndexCSR (``storage``: name -> layer).

    This is the model the pipeline writes: ``save_model(stored_model(...), path, format="compact")``
    stores each layer's Huffman-coded fields, the other parameters and the graph.
    """
    out = copy.deepcopy(model)
    for name, layer in prunable_layers(out, list(storage)).items():
        if tuple(storage[name].shape) != tuple(layer.weight.shape):
            raise ValidationError(f"storage[{name!r}]", f"shape {tuple(layer.weight.shape)}", storage[name].shape)
        layer.weight = storage[name]
    return out


def load_into(model, path, *, stored: bool = False):
    """A copy of ``model`` with every weight, parameter and buffer read from an .rcdc file (the earlier format).

    stored : False, the compressed layers get the decoded Dense weights (what
        the pipeline evaluates); True, they hold the RelativeIndexCSR itself,
        so ``refcomp.io.save_model`` writes the same coded fields into a model
        file that ``load_model`` reads: the converter from .rcdc files.
    """
    layers, tensors, _ = load_compressed(path)
    out = copy.deepcopy(model)
    chosen = prunable_layers(out, list(layers))
    for name, layer in chosen.items():
        if tuple(layers[name].shape) != layer.weight.data.shape:
            raise ValidationError(f"{path}: layer {name!r}", f"shape {layer.weight.data.shape}", layers[name].shape)
        if stored:
            layer.weight = layers[name]
        else:
            layer.weight.data[...] = layers[name].to_dense()
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


def _regularizer(c: PipelineConfig):
    """The config's penalty on the compressed layers' weights during retraining, or None."""
    if c.regularizer == "none":
        return None
    layers = set(c.sparsity)

    def select(name, p):
        return name.endswith(".weight") and name.rsplit(".", 1)[0] in layers

    cls = ProximalElasticNet if c.regularizer_update == "proximal" else ElasticNet
    return cls(l1=c.reg_l1, l2=c.reg_l2, select=select)


def run_pipeline(model, train_set, test_set, config: PipelineConfig, *, progress="auto",
                 stream=None, log=None, save_to=None) -> PipelineResult:
    """Compress a trained ``model`` in place with ``config``; return the result (see the module docstring).

    progress : "auto" (a bar over the epochs, named by the stage, when ``stream`` — stderr by
        default — is a terminal, or on the display already open: refcomp.progress), True,
        False / None (none), or a refcomp.progress.Display.
    log : optional callable(str) receiving one line per stage (to keep it off a live bar,
        print through the display: ``Display.print``).
    save_to : optional path: the compressed layers and the other parameters are written there
        as a model file in the compact encoding (:func:`stored_model`, refcomp.io.compact_file),
        read back with ``refcomp.io.load_model`` and evaluated (accuracy["from_file"]).
    """
    import sys

    if not isinstance(config, PipelineConfig):
        raise ValidationError("config", "a PipelineConfig", type(config).__name__)
    names = list(config.sparsity)
    prunable_layers(model, names)  # unknown layer names fail here, before any work
    say = log or (lambda s: None)
    c = config
    # the display (the command's own when one is open) is closed in the finally below, with the bar
    opened = contextlib.ExitStack()
    shown = opened.enter_context(display(stream or sys.stderr, progress))
    bar = _Progress(shown, c.prune_rounds * c.prune_epochs + c.finetune_epochs)
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
        model, pruning = prune_with_schedule(
            model, Iterative(milestones), train_set, epochs=rounds * c.prune_epochs, sparsity_of_layer=c.sparsity,
            lr=c.prune_lr, momentum=c.momentum, weight_decay=c.weight_decay, batch_size=c.batch_size,
            criterion=c.criterion, regularizer=_regularizer(c),
            calibration=None if c.criterion == "magnitude" else
            (train_set[0][:c.calibration_samples], train_set[1][:c.calibration_samples]),
            rng=c.seed, callback=lambda e, m: bar.advance())
        masks = pruning["masks"]
        pruned = copy.deepcopy(model)
        seconds["prune_retrain"] = time.perf_counter() - t
        accuracy["pruned"] = _accuracy(model, test_set)
        say(f"pruned + retrained ({rounds} rounds x {c.prune_epochs} epochs): "
            f"{100 * accuracy['pruned']:.2f} % in {seconds['prune_retrain']:.1f} s")

        # 2. weight sharing + centroid fine-tuning: the layers hold Clustered weights
        bar.stage("cluster")
        t = time.perf_counter()
        shared, _ = cluster_model(model, c.weight_bits, masks=masks, init=c.cluster_init,
                                  rng=c.seed if c.cluster_init == "random" else None)
        seconds["cluster"] = time.perf_counter() - t
        accuracy["clustered"] = _accuracy(shared, test_set)
        bar.stage("fine-tune centroids")
        t = time.perf_counter()
        shared, _ = finetune_centroids(shared, train_set, epochs=c.finetune_epochs, lr=c.finetune_lr,
                                       momentum=c.momentum, batch_size=c.batch_size, rng=c.seed + 1,
                                       on_epoch=lambda rec: bar.advance(loss=f"{rec['loss']:.4f}"))
        seconds["finetune_centroids"] = time.perf_counter() - t
        say(f"clustered: {100 * accuracy['clustered']:.2f} % ({seconds['cluster']:.1f} s), "
            f"after centroid fine-tuning {c.finetune_epochs} epochs ({seconds['finetune_centroids']:.1f} s)")

        # 3. encode, decode the stored fields back into the model, evaluate
        bar.stage("encode")
        t = time.perf_counter()
        layers = clustered_layers(shared)
        clustered = {n: layer.weight for n, layer in layers.items()}
        storage = {n: RelativeIndexCSR.from_clustered(clustered[n], index_bits=c.index_bits[n], layout=c.layout)
                   for n in names}
        table = size_table(storage)
        # the model as a runtime holds it: the weights decoded from the stored bit fields
        model = shared
        for n, layer in layers.items():
            layer.weight = Dense(storage[n].to_dense())
        apply_model_masks(model, masks)
        seconds["encode"] = time.perf_counter() - t
        accuracy["compressed"] = _accuracy(model, test_set)

        t = time.perf_counter()
        accuracy["compressed_csr"] = _accuracy(to_csr(model, names)[0], test_set)
        seconds["evaluate_csr"] = time.perf_counter() - t
        bias, dense = _bias_bytes(model, names)
        result = PipelineResult(model=model, masks=masks, clustered=clustered, storage=storage, table=table,
                                accuracy=accuracy, seconds=seconds, bias_bytes=bias, dense_bytes=dense,
                                config=c, pruned=pruned)
        if save_to is not None:
            t = time.perf_counter()
            # no metadata: the configuration is in the report, every header byte counts in the file size
            path = save_model(stored_model(model, storage), save_to, format="compact")
            accuracy["from_file"] = _accuracy(load_model(path), test_set)
            seconds["save_and_reload"] = time.perf_counter() - t
            result.file, result.file_bytes = str(path), path.stat().st_size
            result.file_parts = _file_parts(storage, model, names, result.file_bytes)
            say(f"written {path} ({result.file_bytes:,} bytes), reloaded: {100 * accuracy['from_file']:.2f} %")
        say(f"compressed: {100 * accuracy['compressed']:.2f} % (CSR kernels: "
            f"{100 * accuracy['compressed_csr']:.2f} %), weights {result.weights_ratio:.1f}x, "
            f"with biases {result.model_ratio:.1f}x")
        return result
    finally:
        bar.close()
        opened.close()
