"""Shared cases for the tests of refcomp.compress.quantize: weight grids, seeds, small CNNs and inputs."""

import numpy as np
from hypothesis import strategies as st

from refcomp.nn import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

from ..models_for_tests import small_cnn


grids = st.tuples(
    st.integers(1, 9),  # out
    st.integers(1, 70),  # in
    st.sampled_from([2, 3, 4, 8]),  # bits
    st.sampled_from([None, 1, 8, 32, 64, 128]),  # group size
    st.booleans(),  # symmetric
    st.integers(0, 2**32 - 1),  # seed
)


def _weights(out, n_in, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, n_in)) * rng.uniform(0.01, 10, size=(out, 1))
    w[rng.random((out, n_in)) < 0.05] = 0.0
    return w.astype(np.float32)


seeds = st.integers(0, 2**32 - 1)


def relu(z):
    return np.maximum(z, 0.0)


def _cnn_input(seed, n=40):
    return np.random.default_rng(seed).random((n, 1, 10, 10), dtype=np.float32)


def _skewed_cnn(seed):
    """small_cnn with per-channel weight ranges spread over 3 decades (what CLE is for)."""
    m = small_cnn(seed)
    rng = np.random.default_rng(seed)
    w = m["conv1"].weight.to_dense()
    m["conv1"].weight.data[...] = w * (10.0 ** rng.uniform(-1.5, 1.5, w.shape[0]))[:, None, None, None]
    return m


def _bn_cnn(seed):
    """conv -> BN -> ReLU -> pool -> conv -> BN -> ReLU -> flatten -> linear, with non-trivial BN statistics."""
    rng = np.random.default_rng(seed)
    m = Sequential(("conv1", Conv2d(1, 3, 3, rng=rng)), ("bn1", BatchNorm2d(3)), ("relu1", ReLU()),
                   ("pool1", MaxPool2d(2)), ("conv2", Conv2d(3, 4, 2, rng=rng)), ("bn2", BatchNorm2d(4)),
                   ("relu2", ReLU()), ("flatten", Flatten()), ("fc", Linear(4 * 3 * 3, 5, rng=rng)))
    for bn in (m["bn1"], m["bn2"]):
        c = bn.num_features
        bn.running_mean[...] = rng.normal(0, 0.3, c)
        bn.running_var[...] = rng.uniform(0.05, 4.0, c)
        bn.weight.data[...] = rng.uniform(0.2, 3.0, c) * rng.choice([-1, 1], c)
        bn.bias.data[...] = rng.normal(0, 0.5, c)
    return m.eval()
