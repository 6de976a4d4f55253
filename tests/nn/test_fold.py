"""BN folding leaves eval-mode outputs unchanged.

Tolerance: float64 — rtol 1e-10 (the folded layer rounds differently; the
observed error is ~1e-15 relative); float32 — atol 1e-4 · max|y| (a few float32
ulps of the accumulated dot products).
"""

import numpy as np
import pytest

from refcomp import nn
from refcomp.errors import ValidationError


def _randomize_norms(model, rng):
    for _, layer in model.named_modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = layer.num_features
            layer.weight.data[:] = rng.uniform(0.5, 2, c)
            layer.bias.data[:] = rng.standard_normal(c)
            layer.running_mean[:] = rng.standard_normal(c)
            layer.running_var[:] = rng.uniform(0.2, 3, c)


def make_model(dtype, rng):
    m = nn.Sequential(
        ("conv1", nn.Conv2d(3, 6, 3, padding=1, rng=0, dtype=dtype)), ("bn1", nn.BatchNorm2d(6, dtype=dtype)),
        ("relu1", nn.ReLU()),
        ("dw", nn.Conv2d(6, 6, 3, groups=6, bias=False, rng=1, dtype=dtype)), ("bn2", nn.BatchNorm2d(6, dtype=dtype)),
        ("pool", nn.GlobalAvgPool2d()),
        ("fc", nn.Linear(6, 5, rng=2, dtype=dtype)), ("bn3", nn.BatchNorm1d(5, dtype=dtype)),
    )
    _randomize_norms(m, rng)
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



def test_fold_in_a_graph_rewires_the_readers_of_the_norm():
    """A ResNet block with a projection skip: all three BatchNorms fold, the Add reads the convolutions."""
    from refcomp.nn.blocks import residual_block

    rng = np.random.default_rng(2)
    block = residual_block(3, 4, stride=2, rng=0, dtype="float64")
    _randomize_norms(block, rng)
    x = rng.standard_normal((2, 3, 8, 8))
    want = block.eval().forward(x)
    folded = nn.fold_batchnorm(block)
    assert list(folded.nodes) == ["conv1", "relu1", "conv2", "skip_conv", "add", "relu2"]
    assert folded.node_inputs["relu1"] == ("conv1",) and folded.node_inputs["add"] == ("conv2", "skip_conv")
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-10, atol=1e-12)
    assert "bn1" in block.nodes                       # the original is untouched


def test_fold_in_a_graph_keeps_a_norm_whose_input_is_read_twice():
    """If the convolution's raw output feeds another node too, folding would change that node's input."""
    rng = np.random.default_rng(3)
    g = nn.Graph(inputs=["x"])
    g.add("conv", nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype="float64"), "x")
    g.add("bn", nn.BatchNorm2d(3, dtype="float64"), "conv")
    g.add("add", nn.Add(), "bn", "conv")
    g.outputs = ["add"]
    _randomize_norms(g, rng)
    x = rng.standard_normal((2, 2, 5, 5))
    folded = nn.fold_batchnorm(g)
    assert list(folded.nodes) == ["conv", "bn", "add"]
    np.testing.assert_allclose(folded.forward(x), g.eval().forward(x), rtol=1e-12)
