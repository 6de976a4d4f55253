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
