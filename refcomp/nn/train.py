"""The training loop (the one every algorithm trains with) and evaluation.

One epoch = one pass over the training set in mini-batches, shuffled by an
explicit ``rng``; per batch:

    logits = model.forward(x);  L = loss(logits, y) [+ R(θ)]
    model.zero_grad();  model.backward(dL/dlogits) [+ ∂R/∂θ];  optimizer.step()

The learning rate is ``schedule(epoch)`` at the start of each epoch.

What differs between algorithms is a part of that loop, never a loop of its own:

- the **loss**: any object with ``forward(pred, y)`` and ``backward()``; ``y``
  may be a tuple of per-sample targets (distillation: labels and the
  teacher's logits, refcomp.compress.distill.train);
- the **optimizer**: any object with ``step()`` and ``lr``; keeping pruned
  weights at zero and fine-tuning shared centroids are optimizers that wrap
  SGD (refcomp.compress.prune.model.MaskedOptimizer,
  refcomp.compress.share.trained_quantization.CentroidOptimizer); an optimizer
  with ``scale_gradient`` also takes part in the passes — ``cast_input(x)``
  before the forward, ``cast_output(logits)`` before the loss,
  ``scale_gradient(dL/dlogits)`` before the backward — which is how
  mixed-precision training with loss scaling runs here
  (refcomp.compress.precision.training.MixedPrecisionOptimizer);
- the **forward**: QAT is fake quantization inside the model's forward;
- **callbacks**: objects with any of ``on_batch_start(x, y)`` and
  ``on_epoch_end(record)``.

Progress (refcomp.progress): with ``progress="auto"`` a bar per epoch is
drawn on the open display (or on ``stream``, stdout by default) only when it
is a terminal, and erased when the epoch ends — so logs, CI and pipes stay
quiet; ``progress="epoch"`` also prints one line per epoch (through the
display, above the bar); ``progress=False`` prints nothing.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..datasets import batches
from ..errors import ShapeError, ValidationError
from ..progress import Display, display
from .losses import CrossEntropyLoss
from .module import Module, as_rng
from .optim import SGD
from .schedules import Constant, CosineLR

__all__ = ["train", "evaluate"]


def _check_data(data, argument):
    """(x, y) as arrays; y may be a tuple of target arrays, each of x's length."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValidationError(argument, "a pair (x, y)", type(data).__name__)
    x = np.asarray(data[0])
    y = tuple(np.asarray(t) for t in data[1]) if isinstance(data[1], tuple) else np.asarray(data[1])
    for t in (y if isinstance(y, tuple) else (y,)):
        if len(x) != len(t) or len(x) == 0:
            raise ShapeError(argument, "x and y with the same non-zero length", (len(x), len(t)))
    return x, y


def _labels(y):
    """The class labels among the targets (the first of a tuple), or None when there are none."""
    first = y[0] if isinstance(y, tuple) else y
    return first if first.ndim == 1 and first.dtype.kind in "iu" else None


def evaluate(model: Module, data, *, batch_size: int = 1000, loss=None) -> dict:
    """Mean loss and accuracy of ``model`` on ``data = (x, y)`` in eval mode.

    The model's previous train/eval mode is restored afterwards.
    """
    x, y = _check_data(data, "data")
    loss = loss or CrossEntropyLoss()
    was = model.training
    model.eval()
    total, correct = 0.0, 0
    try:
        for xb, yb in batches(x, y, batch_size):
            z = model.forward(xb)
            total += loss.forward(z, yb) * len(yb)
            correct += int((z.argmax(axis=1) == yb).sum())
    finally:
        model.train(was)
    return {"loss": total / len(y), "accuracy": correct / len(y)}


class _Epochs:
    """The training loop's progress: a bar per epoch on the shared display, and optional epoch lines."""

    def __init__(self, shown, epochs, n, lines, stream):
        self.shown, self.epochs, self.n, self.lines, self.stream = shown, epochs, n, lines, stream
        self.bar = None

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def start(self, epoch):
        self.bar = self.shown.bar(f"epoch {epoch + 1}/{self.epochs}", total=self.n, unit="samples")

    def update(self, seen, loss, acc):
        self.bar.update(seen, loss=f"{loss:.4f}", acc=f"{acc:.4f}")

    def end(self, rec):
        self.bar.close()
        if self.lines:
            msg = (f"epoch {rec['epoch']}/{self.epochs} lr {rec['lr']:.5f} loss {rec['loss']:.4f} "
                   f"acc {rec['accuracy']:.4f} {rec['samples_per_s']:.0f} samples/s {rec['seconds']:.2f} s")
            if "val_accuracy" in rec:
                msg += f" val_loss {rec['val_loss']:.4f} val_acc {rec['val_accuracy']:.4f}"
            # through the display: above the bars on a terminal, a plain line to the stream otherwise
            self.shown.print(msg, file=self.stream)


def train(model: Module, data, *, epochs: int = 1, batch_size: int = 64, optimizer=None,
          lr: float = 0.05, momentum: float = 0.9, schedule="cosine", loss=None, rng=0,
          val_data=None, regularizer=None, callbacks=(), progress="auto", stream=None) -> list[dict]:
    """Train ``model`` on ``data = (x, y)``; return one history record per epoch.

    Parameters
    ----------
    data : (x, y); y an array or a tuple of per-sample target arrays (the loss gets the tuple's batch).
    optimizer : an Optimizer (anything with step() and lr); default SGD(model.parameters(), lr, momentum).
    schedule : "cosine" (CosineLR(lr, epochs)), "constant", None (leave optimizer.lr),
        or a callable epoch -> lr.
    loss : default CrossEntropyLoss(); any object with forward(pred, y) / backward(). A loss with a
        ``validation_loss()`` method names the loss ``val_data`` is measured with.
    rng : Generator or seed for the batch order (the only randomness here).
    val_data : optional (x, labels) evaluated after every epoch.
    regularizer : optional refcomp.nn.regularizers object (penalty + gradient; ``after_step(model, lr)``
        after each optimizer step when it has one: the proximal elastic net).
    callbacks : objects with any of on_batch_start(x, y) (before the forward) and on_epoch_end(record).

    Each record: epoch, lr, loss (mean training loss incl. penalty), accuracy
    (on the training batches as seen; NaN unless y holds integer class labels), seconds, samples_per_s, and val_loss /
    val_accuracy when val_data is given.
    """
    x, y = _check_data(data, "data")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValidationError("epochs", "an int >= 1", repr(epochs))
    g = as_rng(rng)
    loss = loss or CrossEntropyLoss()
    if optimizer is None:
        optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
    if schedule == "cosine":
        schedule = CosineLR(optimizer.lr, epochs)
    elif schedule == "constant":
        schedule = Constant(optimizer.lr)
    elif schedule is not None and not callable(schedule):
        raise ValidationError("schedule", "'cosine', 'constant', None or a callable", repr(schedule))
    if progress not in ("auto", "epoch", True, False, None) and not isinstance(progress, Display):
        raise ValidationError("progress", "'auto', 'epoch', True, False, None or a refcomp.progress.Display",
                              repr(progress))
    with display(stream or sys.stdout, "auto" if progress == "epoch" else progress) as shown:
        epochs_shown = _Epochs(shown, epochs, len(x), progress == "epoch", stream or sys.stdout)
        try:
            return _train(model, x, y, epochs, batch_size, optimizer, schedule, loss, g, val_data, regularizer,
                          callbacks, epochs_shown)
        finally:
            epochs_shown.close()     # an error or Ctrl-C mid-epoch leaves no bar on a shared display


def _train(model, x, y, epochs, batch_size, optimizer, schedule, loss, g, val_data, regularizer, callbacks,
           shown: _Epochs) -> list[dict]:
    """The loop of :func:`train`, its arguments checked; ``shown`` draws its progress."""
    labels_of = _labels(y)
    classify = labels_of is not None   # accuracy only for class labels
    mixed = hasattr(optimizer, "scale_gradient")   # 16-bit passes, scaled loss (module docstring)
    if mixed and regularizer is not None:
        # its gradient would join the loss-scaled ones unscaled: use the optimizer's weight_decay
        raise ValidationError("regularizer", "None with a loss-scaling optimizer (use its weight_decay)",
                              type(regularizer).__name__)
    batch_start = [c.on_batch_start for c in callbacks if hasattr(c, "on_batch_start")]
    epoch_end = [c.on_epoch_end for c in callbacks if hasattr(c, "on_epoch_end")]
    history = []
    for epoch in range(epochs):
        if schedule is not None:
            optimizer.lr = float(schedule(epoch))
        model.train()
        shown.start(epoch)
        t0 = time.perf_counter()
        total, correct, seen = 0.0, 0, 0
        for xb, yb in batches(x, y, batch_size, rng=g):
            for f in batch_start:
                f(xb, yb)
            # overflow to inf is not silent here: the finite checks raise right after
            with np.errstate(over="ignore", invalid="ignore"):
                z = model.forward(optimizer.cast_input(xb) if mixed else xb)
                if mixed:
                    z = optimizer.cast_output(z)
                finite = np.isfinite(z).all()
                batch_loss = loss.forward(z, yb) if finite else np.nan
                if regularizer is not None and finite:
                    batch_loss += regularizer.penalty(model)
            if not np.isfinite(batch_loss):
                raise ValidationError("loss", "a finite value (training diverged; lower lr)",
                                      f"{batch_loss} at epoch {epoch + 1}")
            with np.errstate(over="ignore", invalid="ignore"):
                model.zero_grad()
                dz = optimizer.scale_gradient(loss.backward()) if mixed else loss.backward()
                if getattr(model, "accepts_input_grad", False):
                    model.backward(dz, input_grad=False)   # dL/d(input) is not needed
                else:
                    model.backward(dz)
                if regularizer is not None:
                    regularizer.add_gradient(model)
                optimizer.step()
                if regularizer is not None and hasattr(regularizer, "after_step"):
                    regularizer.after_step(model, optimizer.lr)   # a proximal update (regularizers.py R.2)
            lb = yb[0] if isinstance(yb, tuple) else yb
            nb = len(lb)
            total += batch_loss * nb
            seen += nb
            if classify:
                correct += int((z.argmax(axis=1) == lb).sum())
            shown.update(seen, total / seen, correct / seen if classify else float("nan"))
        dt = time.perf_counter() - t0
        rec = {"epoch": epoch + 1, "lr": optimizer.lr, "loss": total / seen,
               "accuracy": correct / seen if classify else float("nan"), "seconds": dt, "samples_per_s": seen / dt}
        if val_data is not None and classify:
            if hasattr(loss, "validation_loss"):
                val_loss = loss.validation_loss()
            else:
                val_loss = type(loss)() if isinstance(loss, CrossEntropyLoss) else loss
            v = evaluate(model, val_data, loss=val_loss)
            rec["val_loss"], rec["val_accuracy"] = v["loss"], v["accuracy"]
        shown.end(rec)
        history.append(rec)
        for f in epoch_end:
            f(rec)
    model.eval()
    return history
