"""Small models and data shared by the tests of tests/compress (whole-model tests of each family)."""

import numpy as np

from refcomp.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, train


def small_cnn(seed, *, padding=0, stride=1, relu_after_conv=True, channels=(3, 4)):
    """(N, 1, 10, 10) -> 5 classes: conv -> [ReLU] -> maxpool -> conv -> ReLU -> flatten -> linear."""
    rng = np.random.default_rng(seed)
    c1, c2 = channels
    layers = [("conv1", Conv2d(1, c1, 3, stride=stride, padding=padding, rng=rng))]
    if relu_after_conv:
        layers.append(("relu1", ReLU()))
    layers += [("pool1", MaxPool2d(2)), ("conv2", Conv2d(c1, c2, 2, rng=rng)), ("relu2", ReLU()),
               ("flatten", Flatten())]
    m = Sequential(*layers)
    n_flat = m.forward(np.zeros((1, 1, 10, 10), np.float32)).shape[1]
    m.add("fc", Linear(n_flat, 5, rng=rng))
    return m


def small_mlp(seed, sizes=(12, 16, 8, 4)):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append((f"fc{i}", Linear(a, b, rng=rng)))
        if i < len(sizes) - 2:
            layers.append((f"relu{i}", ReLU()))
    return Sequential(*layers)


def digits_split():
    """scikit-learn's digits, 1,437 / 360 (seed 0); skips the calling test without scikit-learn."""
    import pytest

    pytest.importorskip("sklearn")
    from refcomp.datasets import load_split

    return load_split("digits", seed=0)


_DIGITS_MODEL = {}


def trained_digits_mlp():
    """The digits MLP 64-128-10 trained 30 epochs (about a second); cached per session."""
    if "m" not in _DIGITS_MODEL:
        from refcomp.models import digits_mlp

        (tr, te) = digits_split()
        m = digits_mlp(0)
        train(m, tr, epochs=30, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
        _DIGITS_MODEL["m"] = m
    import copy

    return copy.deepcopy(_DIGITS_MODEL["m"])
