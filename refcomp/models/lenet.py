"""Reference models, built from an explicit seed.

* :func:`lenet_300_100` — the MLP of LeCun et al. 1998 used by Han et al. 2015
  ("Learning both weights and connections"): 784-300-100-10, ReLU; 266,610 parameters.
* :func:`lenet5` — the Caffe LeNet-5 variant used by Deep Compression (Han et
  al. 2016, Table 2): conv 20@5×5 → maxpool 2 → conv 50@5×5 → maxpool 2 →
  fc 500 → ReLU → fc 10 (no activation after the convolutions, as in Caffe's
  lenet_train_test.prototxt); 431,080 parameters.
* :func:`digits_mlp` — 64-128-10 MLP for scikit-learn's 8×8 digits.

Initialisation: PyTorch's default U(±1/sqrt(fan_in)) ("uniform_fan_in" in
refcomp.nn.init; the setting the reference accuracies were measured with).
Pass ``init="he_normal"`` (He et al. 2015) or ``"glorot_uniform"`` (Glorot &
Bengio 2010) to change it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError
from ..nn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from ..nn.module import Sequential

__all__ = ["lenet_300_100", "lenet5", "digits_mlp", "MODELS", "build"]


def lenet_300_100(seed=0, *, init: str = "uniform_fan_in", dtype="float32") -> Sequential:
    """Input (N, 784) or (N, 1, 28, 28); output logits (N, 10)."""
    rng = np.random.default_rng(seed)
    kw = dict(rng=rng, init=init, dtype=dtype)
    return Sequential(
        ("flatten", Flatten()),
        ("fc1", Linear(784, 300, **kw)), ("relu1", ReLU()),
        ("fc2", Linear(300, 100, **kw)), ("relu2", ReLU()),
        ("fc3", Linear(100, 10, **kw)),
    )


def lenet5(seed=0, *, init: str = "uniform_fan_in", dtype="float32") -> Sequential:
    """Input (N, 1, 28, 28); output logits (N, 10)."""
    rng = np.random.default_rng(seed)
    kw = dict(rng=rng, init=init, dtype=dtype)
    return Sequential(
        ("conv1", Conv2d(1, 20, 5, **kw)), ("pool1", MaxPool2d(2)),
        ("conv2", Conv2d(20, 50, 5, **kw)), ("pool2", MaxPool2d(2)),
        ("flatten", Flatten()),
        ("fc1", Linear(800, 500, **kw)), ("relu1", ReLU()),
        ("fc2", Linear(500, 10, **kw)),
    )


def digits_mlp(seed=0, *, hidden: int = 128, init: str = "uniform_fan_in", dtype="float32") -> Sequential:
    """Input (N, 64); output logits (N, 10)."""
    rng = np.random.default_rng(seed)
    kw = dict(rng=rng, init=init, dtype=dtype)
    return Sequential(("fc1", Linear(64, hidden, **kw)), ("relu1", ReLU()), ("fc2", Linear(hidden, 10, **kw)))


MODELS = {"lenet_300_100": lenet_300_100, "lenet5": lenet5, "digits_mlp": digits_mlp}


def build(name: str, seed=0, **kwargs) -> Sequential:
    if name not in MODELS:
        raise ValidationError("model", f"one of {sorted(MODELS)}", repr(name))
    return MODELS[name](seed, **kwargs)
