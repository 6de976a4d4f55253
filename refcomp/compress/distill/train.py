"""Knowledge-distillation trainer: a student learns from labels and a teacher's soft targets.

Loss per batch (Hinton, Vinyals & Dean 2015, arXiv:1503.02531 §2; docs/distillation.md eq. 2)::

    L = α · CE(y, softmax(s)) + (1 − α) · T² · KL(softmax(t/T) ‖ softmax(s/T))

with s the student's and t the teacher's logits; the gradient w.r.t. s is
eq. (3) of the docs (refcomp.compress.distill.loss.distillation_loss) and flows
back through the student only.

The teacher runs in eval mode (no dropout, BatchNorm running statistics), so
its logits depend on the input alone. When the whole training set is given as
an array (the usual case), they are computed once before training and looked
up per batch (``cache_logits=True``): one teacher pass instead of one per
epoch. Pass ``cache_logits=False`` when the inputs change between epochs
(e.g. augmentation done by the caller) — then the teacher runs on every batch.

The loop is refcomp.nn.train's: SGD with momentum, learning rate from a
per-epoch schedule (cosine by default), batch order from an explicit ``rng``.
"""

from __future__ import annotations

import time

import numpy as np

from ...errors import ShapeError, ValidationError
from ...nn.module import Module, as_rng
from ...nn.optim import SGD
from ...nn.schedules import Constant, CosineLR
from ...nn.train import evaluate
from .loss import distillation_loss

__all__ = ["teacher_logits", "distill_train"]


def teacher_logits(teacher: Module, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    """The teacher's logits for every row of ``x``, computed in eval mode (mode restored after)."""
    if not isinstance(teacher, Module):
        raise ValidationError("teacher", "a refcomp.nn.Module", type(teacher).__name__)
    was = teacher.training
    teacher.eval()
    try:
        return np.concatenate([teacher.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        teacher.train(was)


def distill_train(student: Module, teacher: Module, data, *, epochs: int = 10, batch_size: int = 64,
                  lr: float = 0.05, momentum: float = 0.9, schedule: str = "cosine", alpha: float = 0.5,
                  temperature: float = 4.0, cache_logits: bool = True, rng=0, val_data=None) -> list[dict]:
    """Train ``student`` on ``data = (x, y)`` against ``teacher``; return one record per epoch.

    Parameters
    ----------
    alpha : weight of the hard-label cross-entropy (1 = no distillation).
    temperature : T > 0 of the soft targets.
    cache_logits : compute the teacher's logits once (module docstring).
    rng : Generator or seed for the batch order.
    val_data : optional (x, y): the record gets val_accuracy of the student.

    Each record: epoch, lr, loss (mean of L), accuracy (training batches), seconds.
    """

    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValidationError("data", "a pair (x, y)", type(data).__name__)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y) or len(x) == 0:
        raise ShapeError("data", "x and y with the same non-zero length", (len(x), len(y)))
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValidationError("data[1]", "integer class labels (N,)", f"{y.dtype} {y.shape}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValidationError("epochs", "an int >= 1", repr(epochs))
    g = as_rng(rng)
    optimizer = SGD(student.parameters(), lr=lr, momentum=momentum)
    if schedule == "cosine":
        sched = CosineLR(lr, epochs)
    elif schedule == "constant":
        sched = Constant(lr)
    else:
        raise ValidationError("schedule", "'cosine' or 'constant'", repr(schedule))
    cached = teacher_logits(teacher, x) if cache_logits else None
    if cached is not None and cached.shape[0] != len(x):
        raise ShapeError("teacher output", f"{len(x)} rows", cached.shape)
    history = []
    for epoch in range(epochs):
        optimizer.lr = float(sched(epoch))
        student.train()
        t0 = time.perf_counter()
        total, correct = 0.0, 0
        order = g.permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            t = cached[idx] if cached is not None else teacher_logits(teacher, xb)
            s = student.forward(xb)
            loss, grad = distillation_loss(s, t, yb, temperature=temperature, alpha=alpha)
            if not np.isfinite(loss):
                raise ValidationError("loss", "a finite value (training diverged; lower lr)",
                                      f"{loss} at epoch {epoch + 1}")
            student.zero_grad()
            if getattr(student, "accepts_input_grad", False):
                student.backward(grad.astype(s.dtype), input_grad=False)
            else:
                student.backward(grad.astype(s.dtype))
            optimizer.step()
            total += loss * len(idx)
            correct += int((s.argmax(axis=1) == yb).sum())
        rec = {"epoch": epoch + 1, "lr": optimizer.lr, "loss": total / len(x), "accuracy": correct / len(x),
               "seconds": time.perf_counter() - t0}
        if val_data is not None:
            rec["val_accuracy"] = evaluate(student, val_data)["accuracy"]
        history.append(rec)
    student.eval()
    return history
