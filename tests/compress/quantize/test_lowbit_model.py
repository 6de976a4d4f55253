"""Binary / ternary retraining of a whole model (prepare_lowbit, lowbit_bytes)."""

import numpy as np
import pytest

from refcomp.compress.quantize.lowbit_model import lowbit_bytes, prepare_lowbit
from refcomp.nn import evaluate, train


@pytest.mark.parametrize("kind, bits", [("binary", 1), ("ternary", 2)])
def test_binary_ternary_retraining(digits, kind, bits):
    m, tr, te, acc = digits
    q, _ = prepare_lowbit(m, kind)
    fc1 = q["fc1"]
    w_hat = fc1.weight.to_dense()
    # binary: ±α_c per output channel; ternary: {−α, 0, α} for the layer
    rows = w_hat if kind == "binary" else w_hat.reshape(1, -1)
    assert max(len(np.unique(r)) for r in rows) <= (2 if kind == "binary" else 3)
    before = evaluate(q, te)["accuracy"]
    train(q, tr, epochs=5, lr=0.01, rng=0, progress=False)
    after = evaluate(q, te)["accuracy"]
    assert after >= before - 0.01 and after >= 0.85
    n = sum(p.size for p in (m["fc1"].weight.data, m["fc2"].weight.data))
    assert lowbit_bytes(q) < n * bits / 8 + 2000


def test_binary_layer_forward_and_gradient_are_xnor_nets_written_out():
    """A binary layer computes with Ŵ = α_c·sign(W) (α_c = mean|W_c|, sign(0) = +1) and sends back
    ∂C/∂W_i = s_i/n·Σ_k g_k s_k + α·g_i·1{|W_i| ≤ 1} (the chain rule through α plus the clipped STE;
    Rastegari et al. 2016 §3.1, docs/gptq_and_ptq.md §5), written out here: a plain identity STE fails."""
    from refcomp.nn import Linear, Sequential

    rng = np.random.default_rng(0)
    m = Sequential(("fc", Linear(6, 3, rng=rng, dtype="float64")))
    m["fc"].weight.data[0, :2] = [1.7, -2.5]                     # outside the STE's band
    q, _ = prepare_lowbit(m, "binary")
    layer = q["fc"]
    w = m["fc"].weight.to_dense()
    s = np.where(w >= 0, 1.0, -1.0)
    alpha = np.abs(w).mean(axis=1, keepdims=True)
    x, c = rng.normal(size=(5, 6)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(layer.forward(x), x @ (alpha * s).T + layer.bias.data, rtol=1e-6, atol=1e-7)
    layer.zero_grad()
    layer.backward(c)
    g = c.T @ x                                                    # ∂C/∂Ŵ
    expected = s / 6 * (g * s).sum(axis=1, keepdims=True) + alpha * g * (np.abs(w) <= 1)
    np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-6, atol=1e-7)


def _conv_relu_fc(bias_fc: bool):
    """conv 3->5 (3×3, 135 weights: not a whole number of bytes at 1 or 2 bits), ReLU, flatten, fc 80->7."""
    from refcomp.nn import Conv2d, Flatten, Linear, ReLU, Sequential

    rng = np.random.default_rng(1)
    return Sequential(("conv", Conv2d(3, 5, 3, rng=rng)), ("relu", ReLU()), ("flatten", Flatten()),
                      ("fc", Linear(5 * 4 * 4, 7, bias=bias_fc, rng=rng)))


def test_binary_conv_weight_is_alpha_times_sign_per_output_channel_in_float32():
    """A float32 Conv2d: Ŵ[o] = α_o·sign(W[o]) with α_o = mean|W[o]| over (C, kh, kw), kept float32, and its
    gradient (xnor_grad, written out as above over each output channel's C·kh·kw weights) float32 too."""
    m = _conv_relu_fc(True)
    q, _ = prepare_lowbit(m, "binary")
    w = m["conv"].weight.to_dense().astype(np.float64)
    s = np.where(w >= 0, 1.0, -1.0)
    alpha = np.abs(w).mean(axis=(1, 2, 3), keepdims=True)
    w_hat = q["conv"].weight.to_dense()
    assert w_hat.dtype == np.float32
    np.testing.assert_allclose(w_hat, alpha * s, rtol=1e-6)
    g = np.random.default_rng(2).normal(size=w.shape).astype(np.float32)
    q["conv"].weight.accumulate_grad(g)
    grad = q["conv"].weight.grad
    assert grad.dtype == np.float32
    expected = s / 27 * (g * s).sum(axis=(1, 2, 3), keepdims=True) + alpha * g * (np.abs(w) <= 1)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_ternary_layer_forward_and_gradient_are_twn_written_out():
    """A ternary layer computes with Ŵ = α·t (TWN: Δ = 0.7·mean|W| over the layer, t = sign(W)·1{|W| > Δ},
    α = mean of |W| where |W| > Δ) in the layer's float32, and passes ∂C/∂Ŵ straight to W (Algorithm 1)."""
    m = _conv_relu_fc(False)
    q, report = prepare_lowbit(m, "ternary")
    assert report["kind"] == "ternary"
    w = m["fc"].weight.to_dense().astype(np.float64)
    delta = 0.7 * np.abs(w).mean()
    big = np.abs(w) > delta
    alpha = np.abs(w)[big].mean()
    w_hat = q["fc"].weight.to_dense()
    assert w_hat.dtype == np.float32
    np.testing.assert_allclose(w_hat, alpha * np.sign(w) * big, rtol=1e-6)
    assert len(np.unique(w_hat)) == 3
    x = np.random.default_rng(3).normal(size=(4, 80)).astype(np.float32)
    c = np.random.default_rng(4).normal(size=(4, 7)).astype(np.float32)
    layer = q["fc"]
    np.testing.assert_allclose(layer.forward(x), x.astype(np.float64) @ (alpha * np.sign(w) * big).T, rtol=1e-5,
                               atol=1e-5)
    layer.zero_grad()
    layer.backward(c)
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad, c.T.astype(np.float64) @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, bias_fc, expected", [
    # conv: ⌈135·bits / 8⌉ bytes of codes, float32 α per output channel (binary: 5) or per layer (ternary: 1),
    # 5 float32 biases; fc: ⌈560·bits / 8⌉, α's (binary: 7, ternary: 1), 7 float32 biases when it has them
    ("binary", True, (17 + 4 * 5 + 4 * 5) + (70 + 4 * 7 + 4 * 7)),
    ("binary", False, (17 + 4 * 5 + 4 * 5) + (70 + 4 * 7)),
    ("ternary", True, (34 + 4 + 4 * 5) + (140 + 4 + 4 * 7)),
    ("ternary", False, (34 + 4 + 4 * 5) + (140 + 4)),
])
def test_lowbit_bytes_counts_packed_codes_alphas_and_float32_biases(kind, bias_fc, expected):
    q, report = prepare_lowbit(_conv_relu_fc(bias_fc), kind)
    assert report == {"kind": kind, "bytes": expected}
    assert lowbit_bytes(q) == expected and type(lowbit_bytes(q)) is int


def test_lowbit_bytes_and_prepare_lowbit_refuse_what_they_do_not_know():
    from refcomp.compress.quantize.qat import fake_quantized_model
    from refcomp.errors import ValidationError

    m = _conv_relu_fc(True)
    with pytest.raises(ValidationError, match="kind"):
        prepare_lowbit(m, "quaternary")
    with pytest.raises(ValidationError, match="model"):
        lowbit_bytes(m)                                          # float weights: nothing packed to count

    class Identity:                                              # a fake-quantized weight, but not binary / ternary
        def forward(self, w):
            return w

        def backward(self, g):
            return g

    with pytest.raises(ValidationError, match="model"):
        lowbit_bytes(fake_quantized_model(m, lambda _name: Identity()))
