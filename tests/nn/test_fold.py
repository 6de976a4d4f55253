"""BN folding leaves eval-mode outputs unchanged.

Tolerance: float64 — rtol 1e-10 (the folded layer rounds differently; the
observed error is ~1e-15 relative); float32 — atol 1e-4 · max|y| (a few float32
ulps of the accumulated dot products).
"""

import numpy as np
import pytest

from refcomp import nn
from refcomp.errors import ValidationError


def make_model(dtype, rng):
    m = nn.Sequential(
        ("conv1", nn.Conv2d(3, 6, 3, padding=1, rng=0, dtype=dtype)), ("bn1", nn.BatchNorm2d(6, dtype=dtype)),
        ("relu1", nn.ReLU()),
        ("dw", nn.Conv2d(6, 6, 3, groups=6, bias=False, rng=1, dtype=dtype)), ("bn2", nn.BatchNorm2d(6, dtype=dtype)),
        ("pool", nn.GlobalAvgPool2d()),
        ("fc", nn.Linear(6, 5, rng=2, dtype=dtype)), ("bn3", nn.BatchNorm1d(5, dtype=dtype)),
    )
    for _, layer in m.named_modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = layer.num_features
            layer.weight.data[:] = rng.uniform(0.5, 2, c)
            layer.bias.data[:] = rng.standard_normal(c)
            layer.running_mean[:] = rng.standard_normal(c)
            layer.running_var[:] = rng.uniform(0.2, 3, c)
    return m


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fold_preserves_eval_outputs(dtype):
    rng = np.random.default_rng(0)
    model = make_model(dtype, rng).eval()
    x = rng.standard_normal((4, 3, 7, 7)).astype(dtype)
    want = model.forward(x)
    folded = nn.fold_batchnorm(model)
    assert list(folded.layers) == ["conv1", "relu1", "dw", "pool", "fc"]
    assert folded["dw"].bias is not None and folded["conv1"].weight.data.dtype == np.dtype(dtype)
    got = folded.forward(x)
    if dtype == "float64":
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    # the original is untouched
    assert "bn1" in model.layers and model.forward(x) is not None


def test_fold_differs_from_training_mode_and_rejects_non_dense():
    rng = np.random.default_rng(1)
    model = make_model("float64", rng)
    x = rng.standard_normal((4, 3, 7, 7))
    train_out = model.train().forward(x)
    assert not np.allclose(nn.fold_batchnorm(model).forward(x), train_out)

    with pytest.raises(ValidationError, match="layer"):
        nn.fold_pair(nn.ReLU(), model["bn1"])
    with pytest.raises(ValidationError, match="bn"):
        nn.fold_pair(model["conv1"], model["bn3"])
