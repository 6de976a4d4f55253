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


def _bn_eval(z, bn, axis_shape):
    """γ·(z − μ)/sqrt(σ² + ε) + β with the running statistics (γ = 1, β = 0 without affine)."""
    c = bn.num_features
    gamma = bn.weight.data if bn.weight is not None else np.ones(c)
    beta = bn.bias.data if bn.bias is not None else np.zeros(c)
    r = lambda v: np.reshape(v, axis_shape)       # noqa: E731
    return r(gamma) * (z - r(bn.running_mean)) / np.sqrt(r(bn.running_var) + bn.eps) + r(beta)


def test_fold_pair_formula_by_hand():
    """W'_o = s_o·W_o, b'_o = s_o·(b_o − μ_o) + β_o, s_o = γ_o / sqrt(σ²_o + ε), on a non-square Linear."""
    fc = nn.Linear(3, 2, rng=0, dtype="float64")
    bn = nn.BatchNorm1d(2, eps=0.25, dtype="float64")
    bn.weight.data[:] = [2.0, -0.5]
    bn.bias.data[:] = [1.0, 3.0]
    bn.running_mean[:] = [0.5, -1.0]
    bn.running_var[:] = [0.75, 3.75]               # σ² + ε = 1 and 4: s = (2, −0.25)
    new = nn.fold_pair(fc, bn)
    w, b = fc.weight.data, fc.bias.data
    np.testing.assert_allclose(new.weight.data, [2.0 * w[0], -0.25 * w[1]], rtol=1e-15)
    np.testing.assert_allclose(new.bias.data, [2.0 * (b[0] - 0.5) + 1.0, -0.25 * (b[1] + 1.0) + 3.0], rtol=1e-15)
    assert new is not fc and fc.weight.data is w        # the layer is not modified


def test_fold_pair_without_affine_or_bias():
    """No γ, β (affine=False) reads as γ = 1, β = 0; a layer without bias as b = 0."""
    rng = np.random.default_rng(4)
    conv = nn.Conv2d(2, 3, 2, bias=False, rng=0, dtype="float64")
    bn = nn.BatchNorm2d(3, affine=False, dtype="float64")
    bn.running_mean[:] = rng.standard_normal(3)
    bn.running_var[:] = rng.uniform(0.5, 2, 3)
    x = rng.standard_normal((2, 2, 4, 4))
    want = _bn_eval(conv.forward(x), bn, (1, 3, 1, 1))
    np.testing.assert_allclose(nn.fold_pair(conv, bn).forward(x), want, rtol=1e-12, atol=1e-12)


def test_fold_pair_keeps_the_dtype_of_weight_and_bias():
    fc = nn.Linear(3, 2, rng=0)
    new = nn.fold_pair(fc, nn.BatchNorm1d(2))
    assert new.weight.data.dtype == np.float32 and new.bias.data.dtype == np.float32


@pytest.mark.parametrize("layer,x", [
    (nn.Linear(3, 2, rng=0, dtype="float64"), np.ones((1, 3))),
    (nn.Conv2d(1, 2, 1, rng=0, dtype="float64"), np.ones((1, 1, 2, 2))),
])
def test_folded_layer_does_not_inherit_the_forward_cache(layer, x):
    """The new layer needs its own forward before a backward: the old layer's cached input is not its."""
    layer.forward(x)
    bn = nn.BatchNorm1d(2, dtype="float64") if isinstance(layer, nn.Linear) else nn.BatchNorm2d(2, dtype="float64")
    new = nn.fold_pair(layer, bn)
    with pytest.raises(ValidationError, match="^backward:"):
        new.backward(np.ones_like(layer.forward(x)))


def test_fold_pair_refuses_what_it_cannot_fold():
    from refcomp.formats.lowrank import LowRank

    fc = nn.Linear(3, 4, rng=0, dtype="float64")
    with pytest.raises(ValidationError, match="^bn:"):
        nn.fold_pair(fc, nn.BatchNorm1d(3))            # the input size, not the output's
    with pytest.raises(ValidationError, match="^bn:"):
        nn.fold_pair(fc, nn.LayerNorm(4))
    fc.weight = LowRank(np.ones((4, 1)), np.ones((1, 3)))
    with pytest.raises(ValidationError, match="^layer.weight:"):
        nn.fold_pair(fc, nn.BatchNorm1d(4))
    with pytest.raises(ValidationError, match="^model:"):
        nn.fold_batchnorm(nn.ReLU())


def test_fold_sequential_ending_in_a_layer_and_nested():
    """A Linear last (nothing after it to fold), a norm not after a layer (kept), a nested Sequential."""
    rng = np.random.default_rng(5)
    inner = nn.Sequential(("fc", nn.Linear(4, 4, rng=1, dtype="float64")), ("bn", nn.BatchNorm1d(4, dtype="float64")))
    model = nn.Sequential(("bn0", nn.BatchNorm1d(3, dtype="float64")), ("fc0", nn.Linear(3, 4, rng=0, dtype="float64")),
                          ("act", nn.Tanh()), ("inner", inner), ("fc1", nn.Linear(4, 2, rng=2, dtype="float64")))
    _randomize_norms(model, rng)
    x = rng.standard_normal((3, 3))
    want = model.eval().forward(x)
    folded = nn.fold_batchnorm(model.train())
    assert not folded.training and not folded["inner"].training
    assert list(folded.layers) == ["bn0", "fc0", "act", "inner", "fc1"] and list(folded["inner"].layers) == ["fc"]
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-12, atol=1e-12)
    # deep copies: the folded model shares no array with the model
    assert not np.shares_memory(folded["bn0"].running_mean, model["bn0"].running_mean)
    assert not np.shares_memory(folded["fc1"].weight.data, model["fc1"].weight.data)


def test_fold_in_a_graph_where_the_norm_is_an_output_or_reads_an_input():
    """A norm whose output is the graph's: folded, the output renamed to the layer. A norm on a graph
    input: kept. A layer whose raw output is itself a graph output: its norm kept."""
    rng = np.random.default_rng(6)
    g = nn.Graph(inputs=["x"])
    g.add("bn_in", nn.BatchNorm1d(3, dtype="float64"), "x")
    g.add("fc", nn.Linear(3, 4, rng=0, dtype="float64"), "bn_in")
    g.add("bn", nn.BatchNorm1d(4, dtype="float64"), "fc")
    g.add("fc2", nn.Linear(4, 2, rng=1, dtype="float64"), "bn")
    g.add("bn2", nn.BatchNorm1d(2, dtype="float64"), "fc2")
    g.outputs = ["bn2"]
    _randomize_norms(g, rng)
    x = rng.standard_normal((5, 3))
    want = g.eval().forward(x)
    folded = nn.fold_batchnorm(g.train())
    assert list(folded.nodes) == ["bn_in", "fc", "fc2"] and folded.outputs == ["fc2"]
    assert not folded.training
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-12, atol=1e-12)
    g.outputs = ["bn2", "fc"]                          # fc's raw value is wanted too: bn stays
    want = g.eval().forward(x)
    folded = nn.fold_batchnorm(g)
    assert list(folded.nodes) == ["bn_in", "fc", "bn", "fc2"] and folded.outputs == ["fc2", "fc"]
    for got, w in zip(folded.forward(x), want):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)
    g.outputs = ["bn2", "bn2"]                         # the same output twice: renamed twice
    assert nn.fold_batchnorm(g).outputs == ["fc2", "fc2"]


def test_fold_in_a_graph_keeps_a_norm_whose_layer_is_also_read_and_an_output():
    """fc read by bn and by add, and an output too: three readers, so bn stays."""
    rng = np.random.default_rng(7)
    g = nn.Graph()
    g.add("fc", nn.Linear(3, 3, rng=0, dtype="float64"), "x")
    g.add("bn", nn.BatchNorm1d(3, dtype="float64"), "fc")
    g.add("add", nn.Add(), "bn", "fc")
    g.outputs = ["add", "fc"]
    _randomize_norms(g, rng)
    x = rng.standard_normal((4, 3))
    want = g.eval().forward(x)
    folded = nn.fold_batchnorm(g)
    assert list(folded.nodes) == ["fc", "bn", "add"]
    for got, w in zip(folded.forward(x), want):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)


def test_fold_in_a_graph_two_norms_in_a_row_whose_first_is_read_twice():
    """fc → bn1 → bn2, and add reads bn2 and bn1. bn1 folds into fc (its one reader), after which the
    name fc stands for bn1's output, read by bn2 and add: bn2 must stay, else add would read bn2's
    value where it reads bn1's."""
    rng = np.random.default_rng(8)
    g = nn.Graph()
    g.add("fc", nn.Linear(3, 3, rng=0, dtype="float64"), "x")
    g.add("bn1", nn.BatchNorm1d(3, dtype="float64"), "fc")
    g.add("bn2", nn.BatchNorm1d(3, dtype="float64"), "bn1")
    g.add("add", nn.Add(), "bn2", "bn1")
    g.outputs = ["add"]
    _randomize_norms(g, rng)
    x = rng.standard_normal((4, 3))
    want = g.eval().forward(x)
    folded = nn.fold_batchnorm(g)
    assert list(folded.nodes) == ["fc", "bn2", "add"] and folded.node_inputs["add"] == ("bn2", "fc")
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-12, atol=1e-12)
    # with bn1 read by bn2 alone, both fold into fc
    h = nn.Graph()
    h.add("fc", g["fc"], "x")
    h.add("bn1", g["bn1"], "fc")
    h.add("bn2", g["bn2"], "bn1")
    h.add("relu", nn.ReLU(), "bn2")
    h.outputs = ["relu"]
    want = h.eval().forward(x)
    folded = nn.fold_batchnorm(h)
    assert list(folded.nodes) == ["fc", "relu"]
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-12, atol=1e-12)
