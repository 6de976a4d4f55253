"""Tiny models and data for the pipeline tests (seeded, a few hundred weights)."""

import numpy as np

from refcomp.formats.base import WeightFormat
from refcomp.nn import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def mlp(seed=0, dtype="float32"):
    kw = dict(rng=seed, dtype=dtype)
    return Sequential(("fc1", Linear(12, 16, **kw)), ("relu1", ReLU()),
                      ("fc2", Linear(16, 8, **kw)), ("relu2", ReLU()),
                      ("fc3", Linear(8, 3, **kw)))


def convnet(seed=0, dtype="float32"):
    g = np.random.default_rng(seed)
    m = Sequential(("conv1", Conv2d(2, 6, 3, padding=1, rng=g, dtype=dtype)), ("bn1", BatchNorm2d(6, dtype=dtype)),
                   ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
                   ("conv2", Conv2d(6, 5, 3, rng=g, dtype=dtype)), ("relu2", ReLU()),
                   ("flatten", Flatten()), ("fc1", Linear(5 * 2 * 2, 7, rng=g, dtype=dtype)), ("relu3", ReLU()),
                   ("fc2", Linear(7, 3, rng=g, dtype=dtype)))
    bn = m["bn1"]  # non-trivial BatchNorm statistics and affine parameters
    bn.running_mean[...] = g.normal(size=6)
    bn.running_var[...] = g.uniform(0.5, 2.0, size=6)
    bn.weight.data[...] = g.uniform(0.5, 1.5, size=6)
    bn.bias.data[...] = g.normal(size=6)
    return m.eval()


def blobs(n=120, d=12, classes=3, seed=0):
    """Linearly separable-ish Gaussian blobs: (x float32 (n, d), y int64 (n,))."""
    g = np.random.default_rng(seed)
    centers = g.normal(0, 2.0, size=(classes, d))
    y = g.integers(0, classes, size=n)
    x = centers[y] + g.normal(size=(n, d))
    return x.astype(np.float32), y.astype(np.int64)


class PlainFormat(WeightFormat):
    """A stored array with nothing but WeightFormat's abstract methods: it says neither its dtype nor
    whether it trains (what a layer must cope with from a third-party format)."""

    def __init__(self, w):
        self.w, self.shape = w, w.shape

    def to_dense(self):
        return self.w

    @property
    def nbytes(self):
        return self.w.nbytes


def recording_kernel(calls: list, name: str, fn):
    """A fake kernel for refcomp.backend's registry: appends ``name`` to ``calls``, then runs ``fn``."""
    def kernel(*args, **kwargs):
        calls.append(name)
        return fn(*args, **kwargs)
    return kernel
