"""QAT (observers and LSQ), binary / ternary retraining, low-rank and fp16 models."""

import numpy as np
import pytest

from refcomp.compress.quantize.integer_model import output_codes
from refcomp.compress.quantize.qat import (
    FakeQuantized,
    LSQQuantizer,
    ObserverFakeQuant,
    PerChannelFakeQuant,
    prepare_qat,
    to_integer,
    train_qat,
)
from refcomp.compress.quantize.simulate import simulate
from refcomp.nn import Linear, evaluate

from ...nn.nn_gradcheck import numeric_gradient


@pytest.mark.parametrize("lsq", [False, True])
def test_qat_trains_and_exports_to_integer(digits, lsq):
    m, tr, te, acc = digits
    q, _ = prepare_qat(m, tr[0][:500], lsq=lsq)
    hist = train_qat(q, tr, epochs=2, freeze_observers_epoch=1, lr=0.01)
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    qat_acc = evaluate(q, te)["accuracy"]
    assert qat_acc >= acc - 0.03
    im, _ = to_integer(q)
    assert evaluate(im, te)["accuracy"] >= acc - 0.03
    # the exported integer model still equals its simulation
    np.testing.assert_array_equal(output_codes(im, te[0]), simulate(im, te[0]))


def test_observers_frozen_after_set_epoch(digits):
    m, tr, te, _ = digits
    q, _ = prepare_qat(m, tr[0][:500])
    train_qat(q, tr, epochs=2, freeze_observers_epoch=1, lr=0.01)
    before = {n: l.qparams() for n, l in q.layers.items() if isinstance(l, ObserverFakeQuant)}
    assert len(before) == 3             # the input and the two Linear layers' outputs
    train_qat(q, tr, epochs=1, freeze_observers_epoch=0, lr=0.01)     # frozen from the start
    for n, l in q.layers.items():
        if isinstance(l, ObserverFakeQuant):
            assert l.qparams() == before[n]


def test_qat_layer_gradients_by_finite_differences():
    """dL/dx is exact (the fake-quant weight is constant in x); dL/dW is the STE of dL/dŴ,
    where dL/dŴ is checked by finite differences on Ŵ itself."""
    rng = np.random.default_rng(0)
    layer = lin = Linear(5, 3, rng=rng, dtype="float64")
    w = lin.weight.to_dense().copy()
    lin.weight = FakeQuantized(w, PerChannelFakeQuant())
    x = rng.normal(size=(4, 5))
    c = rng.normal(size=(4, 3))
    y = layer.forward(x)
    w_hat = lin.weight.to_dense().copy()
    assert not np.array_equal(w_hat, w) and np.array_equal(lin.weight.data, w)    # computes with ŵ, keeps W
    layer.zero_grad()
    dx = layer.backward(c)

    def loss_x():
        return float(np.sum(c * (x @ w_hat.T + lin.bias.data)))

    np.testing.assert_allclose(dx, numeric_gradient(loss_x, x), rtol=1e-6, atol=1e-8)
    wh = w_hat.astype(np.float64)

    def loss_w():
        return float(np.sum(c * (x @ wh.T + lin.bias.data)))

    # clipped STE with a max-abs scale: every weight is inside the band, so the STE is the identity
    np.testing.assert_allclose(layer.weight.grad, numeric_gradient(loss_w, wh), rtol=1e-6, atol=1e-8)
    assert np.array_equal(y, x @ w_hat.T + lin.bias.data)


def test_lsq_step_gradient_where_defined():
    """LSQ (eq. L3): for saturated inputs v̂ = Q_P·s (or −Q_N·s), whose derivative in s is exactly
    Q_P (−Q_N): finite differences agree there, times the gradient scale g = 1/sqrt(N·Q_P)."""
    q = LSQQuantizer(4, 3, step=np.float64(0.5))
    v = np.array([5.0, -7.0, 4.0, -3.0])          # v/s = 10, -14, 8, -6: all outside [-4, 3]
    dy = np.array([1.0, 2.0, -1.0, 0.5])
    q.forward(v)
    dv = q.backward(dy)
    assert np.all(dv == 0)
    s = np.array([0.5])

    def f():
        return float(np.sum(dy * np.clip(np.rint(v / s[0]), -4, 3) * s[0]))

    g = 1 / np.sqrt(v.size * 3)
    np.testing.assert_allclose(q.step.grad, numeric_gradient(f, s)[0] * g, rtol=1e-6)
    # inside the range the input gradient is the straight-through identity (eq. L2)
    q2 = LSQQuantizer(128, 127, step=np.float64(1.0))
    q2.forward(np.array([0.3, -2.6]))
    np.testing.assert_array_equal(q2.backward(np.array([1.5, -2.0])), [1.5, -2.0])


def test_bad_qat_inputs_are_named():
    from refcomp.errors import ValidationError
    from refcomp.nn import ReLU, Sequential

    plain = Sequential(("fc", Linear(3, 2, rng=0)), ("relu", ReLU()))
    with pytest.raises(ValidationError, match="model"):
        to_integer(plain)                              # not a QAT model: no input quantizer, no FakeQuantized
    with pytest.raises(ValidationError, match="model"):
        train_qat(plain, (np.zeros((4, 3), np.float32), np.zeros(4, np.int64)))
    with pytest.raises(ValidationError, match="data"):
        FakeQuantized(np.zeros((2, 3), np.int8), PerChannelFakeQuant())
    with pytest.raises(ValidationError, match="to_integer"):
        FakeQuantized(np.zeros((2, 3), np.float32), PerChannelFakeQuant()).fields()   # never stored


def test_prepared_model_computes_with_the_int8_grid_written_out():
    """Every Linear of prepare_qat's model computes with ŵ = clip(round_half_even(W / s), −127, 127)·s,
    s = max|W[o]| / 127 per output channel (module docstring, Jacob et al. 2018 §3), written out here;
    a preparation that leaves a weight float fails."""
    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(0)
    m = small_mlp(0)
    q, _ = prepare_qat(m, rng.normal(size=(64, 12)).astype(np.float32))
    layers = [name for name, layer in m.named_modules() if isinstance(layer, Linear)]
    assert layers
    found = dict(q.named_modules())
    for name in layers:
        layer = next(v for k, v in found.items() if k.split(".")[-1] == name and isinstance(v, Linear))
        w = m[name].weight.to_dense().astype(np.float64)
        s = np.abs(w).max(axis=1, keepdims=True) / 127
        expected = np.clip(np.round(w / s), -127, 127) * s
        np.testing.assert_allclose(layer.weight.to_dense(), expected, rtol=1e-6, atol=1e-7)
        assert len(np.unique(np.round(layer.weight.to_dense() / s.astype(np.float32)))) > 2
