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

The loop is refcomp.nn.train itself, given a :class:`DistillationLoss`:
SGD with momentum, learning rate from a per-epoch schedule (cosine by
default), batch order from an explicit ``rng``.
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, ValidationError
from ...nn.losses import CrossEntropyLoss
from ...nn.module import Module, as_rng
from ...nn.train import train
from .loss import distillation_loss, hard_label_loss

__all__ = ["teacher_logits", "DistillationLoss", "distill_train"]


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


class DistillationLoss:
    """Eq. (2) as a loss of refcomp.nn.train, with its gradient (3) w.r.t. the student's logits.

    The batch targets are ``(labels, teacher_logits)`` (logits computed once,
    train's data ``(x, (y, logits))``), or labels alone when ``teacher`` is
    given: then, as a callback of the loop, it runs the teacher on each batch
    before the student's forward. The validation loss is plain cross-entropy.
    """

    def __init__(self, *, temperature: float = 4.0, alpha: float = 0.5, teacher: Module | None = None,
                 targets: str = "soft"):
        if targets not in ("soft", "hard"):
            raise ValidationError("targets", "'soft' (eq. 2) or 'hard' (the teacher's argmax, eq. 8)", repr(targets))
        self.temperature, self.alpha, self.teacher, self.targets = temperature, alpha, teacher, targets
        self._teacher_batch = None

    def on_batch_start(self, x, y) -> None:
        if self.teacher is not None:
            self._teacher_batch = teacher_logits(self.teacher, x)

    def forward(self, student_logits, y) -> float:
        labels, t = y if isinstance(y, tuple) else (y, self._teacher_batch)
        if self.targets == "hard":
            loss, self._grad = hard_label_loss(student_logits, t, labels, alpha=self.alpha)
        else:
            loss, self._grad = distillation_loss(student_logits, t, labels, temperature=self.temperature,
                                                 alpha=self.alpha)
        self._dtype = student_logits.dtype
        return loss

    def backward(self) -> np.ndarray:
        return self._grad.astype(self._dtype)

    def validation_loss(self) -> CrossEntropyLoss:
        return CrossEntropyLoss()


def distill_train(student: Module, teacher: Module, data, *, epochs: int = 10, batch_size: int = 64,
                  lr: float = 0.05, momentum: float = 0.9, schedule: str = "cosine", alpha: float = 0.5,
                  temperature: float = 4.0, targets: str = "soft", cache_logits: bool = True, rng=0,
                  val_data=None) -> list[dict]:
    """Train ``student`` on ``data = (x, y)`` against ``teacher``; return one record per epoch.

    Parameters
    ----------
    alpha : weight of the true-label cross-entropy (1 = no distillation).
    temperature : T > 0 of the soft targets (unused for ``targets="hard"``).
    targets : "soft" — Hinton's loss (2); "hard" — cross-entropy on the teacher's argmax labels
        mixed with the true ones by alpha (loss.hard_label_loss, eqs. 8-9).
    cache_logits : compute the teacher's logits once (module docstring).
    rng : Generator or seed for the batch order.
    val_data : optional (x, y): the record gets val_accuracy of the student.

    Returns
    -------
    list of dict
        One record per epoch, as refcomp.nn.train's: epoch, lr, loss (mean of L), accuracy (training batches), seconds.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValidationError("data", "a pair (x, y)", type(data).__name__)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y) or len(x) == 0:
        raise ShapeError("data", "x and y with the same non-zero length", (len(x), len(y)))
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValidationError("data[1]", "integer class labels (N,)", f"{y.dtype} {y.shape}")
    if schedule not in ("cosine", "constant"):
        raise ValidationError("schedule", "'cosine' or 'constant'", repr(schedule))
    if not isinstance(teacher, Module):
        raise ValidationError("teacher", "a refcomp.nn.Module", type(teacher).__name__)
    loss = DistillationLoss(temperature=temperature, alpha=alpha, targets=targets,
                            teacher=None if cache_logits else teacher)
    if cache_logits:
        cached = teacher_logits(teacher, x)
        if cached.shape[0] != len(x):
            raise ShapeError("teacher output", f"{len(x)} rows", cached.shape)
        batch_targets = (y, cached)
    else:
        batch_targets = y
    return train(student, (x, batch_targets), epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                 schedule=schedule, loss=loss, rng=as_rng(rng), val_data=val_data, callbacks=[loss],
                 progress=False)
