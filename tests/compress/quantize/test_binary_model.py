"""Fully binary models (binarize_model): the XNOR gradient written out, training, and the packed
bit-count inference equal to the float ±1 simulation bit for bit."""

import numpy as np
import pytest

from refcomp import models
from refcomp.compress.quantize.binary_model import PackedBinaryModel, XnorLayer, binarize_model, binary_bytes
from refcomp.errors import ValidationError
from refcomp.nn import BinarySign, Conv2d, Linear, ReLU, Sequential, Tanh, evaluate, train

from ...nn.nn_gradcheck import check_input_grad_false
from ..models_for_tests import small_cnn, small_mlp

BACKENDS = ["numpy", "numba", "c"]


def _xnor_grad_written_out(w, g):
    """(X1): s_i/n · Σ_k g_k s_k + α_c · g_i · 1{|w_i| <= 1}, g = dC/dŵ, per output channel (axis 0)."""
    o = w.shape[0]
    w2, g2 = w.reshape(o, -1), g.reshape(o, -1)
    s = np.where(w2 >= 0, 1.0, -1.0)
    alpha = np.abs(w2).mean(axis=1, keepdims=True)
    n = w2.shape[1]
    return (s / n * (g2 * s).sum(axis=1, keepdims=True) + alpha * g2 * (np.abs(w2) <= 1)).reshape(w.shape)


@pytest.mark.parametrize("make", [lambda r: Linear(7, 5, rng=r, dtype="float64"),
                                  lambda r: Conv2d(3, 4, 2, rng=r, dtype="float64")])
def test_xnor_layer_forward_and_gradient(make):
    rng = np.random.default_rng(0)
    layer = make(rng)
    w = layer.weight.to_dense()
    # outside the STE window, a zero (sign +1), and the window's closed edges |W| = 1 (inside)
    w.reshape(-1)[:5] = [1.5, -2.0, 0.0, 1.0, -1.0]
    layer.weight.data[...] = w
    x = rng.standard_normal((6, 7) if isinstance(layer, Linear) else (2, 3, 5, 5))
    x_pm1 = np.where(x >= 0, 1.0, -1.0)
    xl = XnorLayer(layer)
    y = xl.forward(x_pm1)
    # the float reference: a plain layer with ŵ = α·sign(W), whose own backward gives dC/dŵ
    ref = make(np.random.default_rng(1))
    o = w.shape[0]
    alpha = np.abs(w.reshape(o, -1)).mean(axis=1)
    ref.weight.data[...] = alpha.reshape((-1,) + (1,) * (w.ndim - 1)) * np.where(w >= 0, 1.0, -1.0)
    ref.bias.data[...] = layer.bias.data
    np.testing.assert_allclose(y, ref.forward(x_pm1), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = xl.backward(dy)
    ref.zero_grad()
    np.testing.assert_allclose(dx, ref.backward(dy), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xl.inner.weight.grad, _xnor_grad_written_out(w, ref.weight.grad), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xl.bias.grad, ref.bias.grad, rtol=1e-12)


def test_structure_first_and_last_float():
    m, report = binarize_model(models.lenet_300_100(0))
    names = list(m.layers)
    assert names == ["flatten", "fc1", "fc1_sign", "fc2", "fc2_sign", "fc3"]
    assert isinstance(m["fc1"], Linear) and isinstance(m["fc3"], Linear) and isinstance(m["fc2"], XnorLayer)
    assert isinstance(m["fc1_sign"], BinarySign) and report["binary_layers"] == ["fc2"]
    # fc1 and fc3 float32 + biases; fc2: 100 rows of ceil(300/64) = 5 words, α and bias float32
    assert report["bytes"] == 4 * (784 * 300 + 300) + 4 * (100 * 10 + 10) + 100 * 5 * 8 + 4 * 100 + 4 * 100
    assert binary_bytes(m) == report["bytes"]
    b, rep1 = binarize_model(models.lenet_300_100(0), binary_first=True)
    assert isinstance(b["fc1"], XnorLayer) and rep1["binary_layers"] == ["fc1", "fc2"]
    assert rep1["bytes"] == 300 * 13 * 8 + 4 * 300 * 2 + 4 * (100 * 10 + 10) + 100 * 5 * 8 + 4 * 100 * 2
    c, rep = binarize_model(models.lenet5(0))
    assert rep["binary_layers"] == ["conv2", "fc1"] and list(c.layers)[:3] == ["conv1", "conv1_sign", "pool1"]


BUILDS = [(lambda: models.lenet_300_100(3), (5, 784)),
          (lambda: models.lenet5(3), (3, 1, 28, 28)),
          (lambda: small_mlp(2, (12, 65, 129, 4)), (7, 12)),
          (lambda: small_cnn(1, relu_after_conv=False), (4, 1, 10, 10))]


@pytest.mark.parametrize("build, shape", BUILDS)
@pytest.mark.parametrize("binary_first", [False, True])
def test_packed_path_equals_float_simulation(build, shape, binary_first):
    _check_packed_path(build, shape, binary_first, "numpy")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
@pytest.mark.parametrize("build, shape", BUILDS)
@pytest.mark.parametrize("binary_first", [False, True])
def test_packed_path_equals_float_simulation_on_fast_backends(backend, build, shape, binary_first):
    _check_packed_path(build, shape, binary_first, backend)


def _check_packed_path(build, shape, binary_first, backend):
    m, _ = binarize_model(build(), binary_first=binary_first)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    want = m.eval().forward(x)
    got = PackedBinaryModel(m, backend=backend).forward(x)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_trains_with_refcomp_train(digits):
    _, tr, te, _ = digits
    model = Sequential(*small_mlp(0, (64, 128, 128, 10)).layers.items())
    b, _ = binarize_model(model)
    before = evaluate(b, te)["accuracy"]
    train(b, tr, epochs=8, lr=0.01, momentum=0.9, rng=0, progress=False)
    after = evaluate(b, te)["accuracy"]
    assert after > 0.8 and after > before + 0.3
    np.testing.assert_array_equal(PackedBinaryModel(b).forward(te[0]), b.eval().forward(te[0]))


def test_refuses_what_it_cannot_binarize():
    with pytest.raises(ValidationError, match="model"):
        binarize_model(models.digits_mlp(0))  # two compute layers: nothing hidden
    m = small_mlp(0, (4, 5, 6, 3))
    m["relu0"] = Tanh()
    with pytest.raises(ValidationError, match="relu0"):
        binarize_model(m)
    with pytest.raises(ValidationError, match="conv2"):
        binarize_model(Sequential(("conv1", Conv2d(1, 2, 3, rng=0)), ("conv2", Conv2d(2, 2, 3, padding=1, rng=0)),
                                  ("conv3", Conv2d(2, 2, 3, rng=0))))


def test_xnor_layer_without_bias_and_with_one_output_channel():
    """y = α·(x · sign(W)ᵀ) written out for a bias-free Linear of one output row (n = its K weights)."""
    rng = np.random.default_rng(2)
    layer = Linear(7, 1, bias=False, rng=rng, dtype="float64")
    w = layer.weight.to_dense()
    xl = XnorLayer(layer)
    assert xl.bias is None
    x = np.where(rng.standard_normal((4, 7)) >= 0, 1.0, -1.0)
    s = np.where(w >= 0, 1.0, -1.0)
    alpha = np.abs(w).sum() / 7
    np.testing.assert_allclose(xl.forward(x), alpha * (x @ s.T), rtol=1e-12)
    dy = rng.standard_normal((4, 1))
    np.testing.assert_allclose(xl.backward(dy), alpha * dy @ s, rtol=1e-12)
    # dC/dŵ = dyᵀ x for a Linear
    np.testing.assert_allclose(xl.inner.weight.grad, _xnor_grad_written_out(w, dy.T @ x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda r: Linear(7, 5, rng=r), lambda r: Conv2d(3, 4, 2, rng=r)])
def test_xnor_layer_keeps_float32_and_skips_the_input_gradient(make):
    """A float32 layer gives float32 outputs and gradients; input_grad=False only skips dL/dx."""
    rng = np.random.default_rng(3)
    layer = make(rng)
    x = np.where(rng.standard_normal((6, 7) if isinstance(layer, Linear) else (2, 3, 5, 5)) >= 0, 1, -1)
    x = x.astype(np.float32)
    xl = XnorLayer(layer)
    y = xl.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert y.dtype == xl.backward(dy).dtype == np.float32
    assert xl.inner.weight.grad.dtype == xl.bias.grad.dtype == np.float32
    check_input_grad_false(XnorLayer(layer), x, dy)


def test_xnor_layer_leaves_the_wrapped_layer_alone_and_needs_a_forward():
    """XnorLayer works on a copy: training it (its bias is its own) leaves the layer it was made from as it was."""
    rng = np.random.default_rng(4)
    layer = Linear(5, 3, rng=rng)
    w0, b0 = layer.weight.to_dense().copy(), layer.bias.data.copy()
    xl = XnorLayer(layer)
    with pytest.raises(ValidationError, match="backward"):
        xl.backward(np.ones((2, 3), np.float32))       # no forward yet
    xl.forward(np.ones((2, 5), np.float32))
    xl.backward(np.ones((2, 3), np.float32))
    xl.bias.data -= 1.0
    np.testing.assert_array_equal(layer.bias.data, b0)
    np.testing.assert_array_equal(layer.weight.to_dense(), w0)
    assert layer.bias.grad is None


def _one_row_model():
    """A hidden layer of one output row over K = 65 inputs (two words, the second with one bit), no bias;
    a float last layer without bias too."""
    rng = np.random.default_rng(5)
    return Sequential(("fc0", Linear(6, 65, rng=rng)), ("relu0", ReLU()),
                      ("fc1", Linear(65, 1, bias=False, rng=rng)), ("relu1", ReLU()),
                      ("fc2", Linear(1, 3, bias=False, rng=rng)))


def test_bytes_of_a_bias_free_one_row_hidden_layer():
    m, report = binarize_model(_one_row_model())
    assert report["binary_layers"] == ["fc1"]
    # fc0 float32 weight + bias; fc1: 1 row of ceil(65 / 64) = 2 uint64 words, one float32 α, no bias;
    # fc2 a float32 weight, no bias
    assert report["bytes"] == binary_bytes(m) == 4 * (6 * 65 + 65) + (1 * 2 * 8 + 4) + 4 * (1 * 3)


def test_packed_model_runs_the_hidden_layers_on_bit_counts_with_its_backend(monkeypatch):
    """Every XnorLayer after the first sign (and only those) is a packed step, run by binary_matmul on
    the backend the packed model was given; the logits equal the float model's."""
    import refcomp.compress.quantize.binary_model as bm

    seen = []

    def spy(a, b, k, *, backend="auto"):
        seen.append((backend, k))
        return binary_matmul(a, b, k, backend="numpy")

    from refcomp.ops import binary_matmul

    monkeypatch.setattr(bm, "binary_matmul", spy)
    for build, shape, kinds, ks in [
            (_one_row_model, (4, 6), ["float", "float", "xnor", "float", "float"], [65]),
            (lambda: models.lenet5(3), (2, 1, 28, 28), None, [20 * 5 * 5, 50 * 4 * 4])]:   # conv2, fc1
        for binary_first in (False, True):
            m, _ = binarize_model(build(), binary_first=binary_first)
            x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
            seen.clear()
            packed = PackedBinaryModel(m, backend="c")
            got = packed.forward(x)
            np.testing.assert_array_equal(got, m.eval().forward(x))
            assert seen == [("c", k) for k in ks]      # the first layer, real input, stays float
            want_kinds = ["xnor" if isinstance(layer, XnorLayer) and name not in (list(m.layers)[0],) else "float"
                          for name, layer in m.layers.items()]
            assert [kind for kind, _ in packed.steps] == want_kinds
            if kinds is not None and not binary_first:
                assert want_kinds == kinds
    seen.clear()
    PackedBinaryModel(binarize_model(_one_row_model())[0]).forward(np.ones((1, 6), np.float32))
    assert seen == [("auto", 65)]                       # the default backend


def test_packed_model_is_a_snapshot_of_the_model():
    """PackedBinaryModel copies the model: the model keeps its mode, and later changes to it
    (training) do not reach the packed copy."""
    m, _ = binarize_model(_one_row_model())
    x = np.random.default_rng(1).uniform(-1, 1, (5, 6)).astype(np.float32)
    want = m.eval().forward(x)
    m.train()
    packed = PackedBinaryModel(m, backend="numpy")
    assert all(layer.training for _, layer in m.named_modules())
    m["fc0"].weight.data[...] *= -1.0
    m["fc1"].inner.weight.data[...] *= 3.0
    m["fc2"].weight.data[...] += 1.0
    np.testing.assert_array_equal(packed.forward(x), want)


def test_nested_layer_names_are_flattened_with_underscores():
    """A nested Sequential's layers get flat names: "block.fc1" becomes "block_fc1" (and its sign
    "block_fc1_sign")."""
    rng = np.random.default_rng(6)
    inner = Sequential(("fc1", Linear(5, 4, rng=rng)), ("relu1", ReLU()))
    model = Sequential(("fc0", Linear(3, 5, rng=rng)), ("relu0", ReLU()), ("block", inner),
                       ("fc2", Linear(4, 2, rng=rng)))
    m, report = binarize_model(model)
    assert list(m.layers) == ["fc0", "fc0_sign", "block_fc1", "block_fc1_sign", "fc2"]
    assert report["binary_layers"] == ["block_fc1"]
