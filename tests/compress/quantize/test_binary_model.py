"""Fully binary models (binarize_model): the XNOR gradient written out, training, and the packed
bit-count inference equal to the float ±1 simulation bit for bit."""

import numpy as np
import pytest

from refcomp import models
from refcomp.compress.quantize.binary_model import PackedBinaryModel, XnorLayer, binarize_model, binary_bytes
from refcomp.errors import ValidationError
from refcomp.nn import BinarySign, Conv2d, Linear, Sequential, Tanh, evaluate, train

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
    w.reshape(-1)[:3] = [1.5, -2.0, 0.0]  # outside the STE window, and a zero (sign +1)
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build, shape", [(lambda: models.lenet_300_100(3), (5, 784)),
                                          (lambda: models.lenet5(3), (3, 1, 28, 28)),
                                          (lambda: small_mlp(2, (12, 65, 129, 4)), (7, 12)),
                                          (lambda: small_cnn(1, relu_after_conv=False), (4, 1, 10, 10))])
@pytest.mark.parametrize("binary_first", [False, True])
def test_packed_path_equals_float_simulation(backend, build, shape, binary_first):
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
