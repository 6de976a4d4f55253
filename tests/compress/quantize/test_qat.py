"""QAT (observers and LSQ), binary / ternary retraining, low-rank and fp16 models."""

import numpy as np
import pytest

from refcomp.compress.lowrank.model import factorize_linear, factorize_model
from refcomp.compress.precision.model import HalfPrecision, cast_model
from refcomp.compress.quantize.lowbit_model import lowbit_bytes, prepare_lowbit
from refcomp.compress.quantize.qat import LSQQuantizer, QATCompute, prepare_qat, to_integer, train_qat
from refcomp.compress.quantize.simulate import simulate
from refcomp.compress.quantize.weight_only import model_bytes
from refcomp.errors import ValidationError
from refcomp.nn import Linear, evaluate, train

from ..models_for_tests import digits_split, trained_digits_mlp


@pytest.fixture(scope="module")
def digits():
    tr, te = digits_split()
    m = trained_digits_mlp()
    return m, tr, te, evaluate(m, te)["accuracy"]


@pytest.mark.parametrize("lsq", [False, True])
def test_qat_trains_and_exports_to_integer(digits, lsq):
    m, tr, te, acc = digits
    q = prepare_qat(m, tr[0][:500], lsq=lsq)
    hist = train_qat(q, tr, epochs=2, freeze_observers_epoch=1, lr=0.01)
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    qat_acc = evaluate(q, te)["accuracy"]
    assert qat_acc >= acc - 0.03
    im = to_integer(q)
    assert evaluate(im, te)["accuracy"] >= acc - 0.03
    # the exported integer model still equals its simulation
    np.testing.assert_array_equal(im.forward_int(im.quantize_input(te[0])), simulate(im).forward_codes(te[0]))


def test_observers_frozen_after_set_epoch(digits):
    m, tr, te, _ = digits
    q = prepare_qat(m, tr[0][:500])
    train_qat(q, tr, epochs=2, freeze_observers_epoch=1, lr=0.01)
    before = {n: l.out_quant.qparams() for n, l in q.layers.items() if isinstance(l, QATCompute)}
    train_qat(q, tr, epochs=1, freeze_observers_epoch=0, lr=0.01)     # frozen from the start
    for n, l in q.layers.items():
        if isinstance(l, QATCompute):
            assert l.out_quant.qparams() == before[n]


def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def test_qat_layer_gradients_by_finite_differences():
    """dL/dx is exact (the fake-quant weight is constant in x); dL/dW is the STE of dL/dŴ,
    where dL/dŴ is checked by finite differences on Ŵ itself."""
    rng = np.random.default_rng(0)
    lin = Linear(5, 3, rng=rng, dtype="float64")
    layer = QATCompute(lin, relu=False, out_quant=None)
    x = rng.normal(size=(4, 5))
    c = rng.normal(size=(4, 3))
    y = layer.forward(x)
    w_hat = lin.weight.data.copy()
    layer.zero_grad()
    dx = layer.backward(c)

    def loss_x():
        return float(np.sum(c * (x @ w_hat.T + lin.bias.data)))

    np.testing.assert_allclose(dx, _fd(loss_x, x), rtol=1e-6, atol=1e-8)
    wh = w_hat.astype(np.float64)

    def loss_w():
        return float(np.sum(c * (x @ wh.T + lin.bias.data)))

    # clipped STE with a max-abs scale: every weight is inside the band, so the STE is the identity
    np.testing.assert_allclose(layer.weight.grad, _fd(loss_w, wh), rtol=1e-6, atol=1e-8)
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
    np.testing.assert_allclose(q.step.grad, _fd(f, s)[0] * g, rtol=1e-6)
    # inside the range the input gradient is the straight-through identity (eq. L2)
    q2 = LSQQuantizer(128, 127, step=np.float64(1.0))
    q2.forward(np.array([0.3, -2.6]))
    np.testing.assert_array_equal(q2.backward(np.array([1.5, -2.0])), [1.5, -2.0])


@pytest.mark.parametrize("kind, bits", [("binary", 1), ("ternary", 2)])
def test_binary_ternary_retraining(digits, kind, bits):
    m, tr, te, acc = digits
    q = prepare_lowbit(m, kind)
    fc1 = q["fc1"]
    w_hat = fc1.fake_weight()
    # binary: ±α_c per output channel; ternary: {−α, 0, α} for the layer
    rows = w_hat if kind == "binary" else w_hat.reshape(1, -1)
    assert max(len(np.unique(r)) for r in rows) <= (2 if kind == "binary" else 3)
    before = evaluate(q, te)["accuracy"]
    train(q, tr, epochs=5, lr=0.01, rng=0, progress=False)
    after = evaluate(q, te)["accuracy"]
    assert after >= before - 0.01 and after >= 0.85
    n = sum(p.size for p in (m["fc1"].weight.data, m["fc2"].weight.data))
    assert lowbit_bytes(q) < n * bits / 8 + 2000


def test_svd_replaces_one_layer_by_two(digits):
    m, tr, te, acc = digits
    full = factorize_linear(m["fc1"], rank=64)
    x = te[0][:50]
    np.testing.assert_allclose(full.forward(x), m["fc1"].forward(x), rtol=1e-4, atol=1e-4)   # full rank: exact
    f = factorize_model(m, {"fc1": 8})
    assert model_bytes(f) < model_bytes(m)
    train(f, tr, epochs=3, lr=0.01, rng=0, progress=False)
    assert evaluate(f, te)["accuracy"] >= acc - 0.05
    with pytest.raises(ValidationError, match="ranks"):
        factorize_model(m, {"relu1": 4})


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_storage(digits, dtype):
    m, tr, te, acc = digits
    h, rep = cast_model(m, dtype)
    assert isinstance(h["fc1"].weight, HalfPrecision)
    assert h["fc1"].weight.nbytes * 2 == m["fc1"].weight.nbytes
    assert abs(evaluate(h, te)["accuracy"] - acc) <= 0.01
    # round to nearest: at most half an ulp of the largest weight (unit roundoff 2^-11 / 2^-8)
    w_max = float(np.abs(m["fc1"].weight.data).max())
    assert rep["fc1"]["max_abs_error"] <= w_max * (2**-11 if dtype == "float16" else 2**-8)


def test_per_layer_bit_widths_under_budget(digits):
    from refcomp.compress.precision.model import select_layer_bits
    from refcomp.compress.quantize.weight_only import quantize_weights

    m, tr, te, acc = digits
    alloc, sens = select_layer_bits(m, tr[0][:300], 3.0, bit_choices=(2, 4, 8), group_size=16)
    sizes = {"fc1": m["fc1"].weight.data.size, "fc2": m["fc2"].weight.data.size}
    assert set(alloc.bits) == set(sizes)
    assert sum(sizes[k] * b for k, b in alloc.bits.items()) <= 3.0 * sum(sizes.values())
    for row in sens.values():                      # fewer bits never reduce the error here
        assert row[2] >= row[4] >= row[8]
    q, rep = quantize_weights(m, bits=alloc.bits, group_size=16)
    assert {k: r["bits"] for k, r in rep.items()} == alloc.bits
    assert evaluate(q, te)["accuracy"] >= acc - 0.05
    only, rep = quantize_weights(m, bits={"fc2": 4})          # fc1 absent: stays float
    assert set(rep) == {"fc2"} and type(only["fc1"].weight).__name__ == "Dense"
