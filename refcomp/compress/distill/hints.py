"""FitNets hint training on models (Romero et al. 2015, arXiv:1412.6550 §2.2-2.3; docs/distillation.md §6).

Stage 1 trains the student up to its *guided* layer, through a learned
regressor r, to reproduce the teacher's *hint* layer output v = h_T(x)::

    (W_Guided*, W_r*) = argmin  L_HT = mean over elements of (r(u_G(x; W_Guided); W_r) − v(x))²   (13)

(FitNets' eq. 3 is ½‖·‖² per example; the mean rescales it, loss.hint_loss eq. 5.)
Stage 2 trains the whole student by knowledge distillation (Hinton's loss,
eq. 2; FitNets §2.3 / Algorithm 1), starting from the stage-1 weights.

The teacher's hint output is read with a forward hook on the named teacher
module (refcomp.nn.run_with_hooks: eval mode, any Sequential or Graph), once
for the whole training array (the inputs do not change between epochs). The
guided part of the student is the Sequential of its own layers up to and
including ``student_layer`` (the same objects, so training it trains the
student); the layers after it and the teacher receive no gradient in stage 1.
The regressor is a bias-free linear map on the channel axis: a Linear for
(N, C) features, a 1×1 Conv2d for (N, C, H, W) features. Both stages run in
refcomp.nn.train.
"""

from __future__ import annotations

import numpy as np

from ...checks import integer
from ...errors import ShapeError, ValidationError
from ...nn.layers import Conv2d, Linear
from ...nn.module import Module, Sequential, as_rng, run_with_hooks
from ...nn.train import train
from .loss import hint_loss
from .train import distill_train

__all__ = ["teacher_features", "guided_part", "HintLoss", "hint_train"]


def teacher_features(teacher: Module, layer: str, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    """v of eq. (13): the output of ``teacher``'s module ``layer`` (dotted name) for every row of ``x``.

    Read by a forward hook in eval mode, in batches of ``batch_size``; returns an array (N, C_t, ...)
    in the module's output dtype (a copy).
    """
    modules = dict(teacher.named_modules())
    if not layer or layer not in modules:
        raise ValidationError("teacher_layer", f"a module name of the teacher among {sorted(n for n in modules if n)}",
                              repr(layer))
    out = []
    run_with_hooks(teacher, [(modules[layer], lambda m, i, y: out.append(np.array(y)))],
                   (x[i:i + batch_size] for i in range(0, len(x), batch_size)))
    return np.concatenate(out)


def guided_part(student: Sequential, layer: str) -> Sequential:
    """The student's layers up to and including ``layer``, as a Sequential of the same objects."""
    if not isinstance(student, Sequential):
        raise ValidationError("student", "a refcomp.nn.Sequential (the guided part is a prefix of it)",
                              type(student).__name__)
    names = list(student.layers)
    if layer not in names:
        raise ValidationError("student_layer", f"a top-level layer of the student among {names}", repr(layer))
    return Sequential(*[(n, student[n]) for n in names[:names.index(layer) + 1]])


class HintLoss:
    """Eq. (13) as a loss of refcomp.nn.train: pred = r(u), target = v; gradient 2(r − v)/numel."""

    def forward(self, pred, target) -> float:
        loss, self._grad, _ = hint_loss(pred, target)
        self._dtype = pred.dtype
        return loss

    def backward(self) -> np.ndarray:
        return self._grad.astype(self._dtype)


def _regressor(u_shape, v_shape, rng):
    if len(u_shape) != len(v_shape) or u_shape[2:] != v_shape[2:]:
        raise ShapeError("student_layer", f"an output of shape (N, C_s{''.join(', ' + str(d) for d in v_shape[2:])}) "
                         "like the teacher's hint but for channels", f"shape (N, {', '.join(map(str, u_shape[1:]))})")
    cs, ct = u_shape[1], v_shape[1]
    if len(u_shape) == 2:
        return Linear(cs, ct, bias=False, rng=rng)
    if len(u_shape) == 4:
        return Conv2d(cs, ct, 1, bias=False, rng=rng)
    raise ShapeError("student_layer", "2-D (N, C) or 4-D (N, C, H, W) features", f"{len(u_shape)}-D")


def hint_train(student: Sequential, teacher: Module, data, *, student_layer: str, teacher_layer: str,
               hint_epochs: int = 5, kd_epochs: int = 10, lr: float = 0.05, hint_lr: float | None = None,
               momentum: float = 0.9, batch_size: int = 64, schedule: str = "cosine", alpha: float = 0.1,
               temperature: float = 4.0, rng=0, val_data=None) -> dict:
    """FitNets: stage 1 (eq. 13) for ``hint_epochs``, then KD (eq. 2) for ``kd_epochs``; trains ``student`` in place.

    student_layer : top-level name of the student's guided layer; teacher_layer : dotted name of the
    teacher's hint module. data : (x, integer labels). hint_lr : stage 1's lr (default ``lr``).
    schedule : "cosine" or "constant", for each stage.
    rng : Generator or seed (regressor initialisation, then the batch orders).
    Returns {"hint": stage-1 records, "kd": stage-2 records, "regressor": the trained regressor}.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValidationError("data", "a pair (x, y)", type(data).__name__)
    x = np.asarray(data[0])
    hint_epochs = integer(hint_epochs, "hint_epochs", minimum=0)
    kd_epochs = integer(kd_epochs, "kd_epochs", minimum=0)
    g = as_rng(rng)
    guided = guided_part(student, student_layer)
    v = teacher_features(teacher, teacher_layer, x)
    was = student.training
    student.eval()
    u_shape = guided.forward(x[:1]).shape
    student.train(was)
    reg = _regressor(u_shape, v.shape, g)
    records = {"regressor": reg, "hint": [], "kd": []}
    if hint_epochs:
        records["hint"] = train(Sequential(("guided", guided), ("regressor", reg)), (x, v), epochs=hint_epochs,
                                batch_size=batch_size, lr=lr if hint_lr is None else hint_lr, momentum=momentum,
                                schedule=schedule, loss=HintLoss(), rng=g, progress=False)
    if kd_epochs:
        records["kd"] = distill_train(student, teacher, data, epochs=kd_epochs, batch_size=batch_size, lr=lr,
                                      momentum=momentum, schedule=schedule, alpha=alpha, temperature=temperature,
                                      rng=g, val_data=val_data)
    return records
