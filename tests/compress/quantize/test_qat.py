"""QAT (observers and LSQ), binary / ternary retraining, low-rank and fp16 models."""

import numpy as np
import pytest

from refcomp.compress.quantize.integer_model import integer_bytes, integer_layers, output_codes
from refcomp.compress.quantize.qat import (
    FakeQuantized,
    LSQQuantizer,
    ObserverFakeQuant,
    freeze_observers,
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


# --- the quantizers and the QAT model written out (module docstring), on small inputs -----------------

def _asymmetric(lo, hi, qmin=0, qmax=255):
    """(scale, zero point) of eq. (5) (refcomp/quant/choose.py): the range widened to hold 0, a float32 scale."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    s = np.float32((hi - lo) / (qmax - qmin))
    return s, int(np.clip(qmin - np.rint(lo / np.float64(s)), qmin, qmax))


def _fake_quant(x, s, z, qmin=0, qmax=255):
    s = np.float64(s)
    return (np.clip(np.rint(x.astype(np.float64) / s) + z, qmin, qmax) - z) * s


def test_observer_fake_quant_moving_average_only_while_training_and_not_frozen():
    """Eq. (11): the first batch sets the range, each next one moves it by c·(batch − average); eval
    mode and a frozen quantizer keep (s, z); the output is the fake quantization with the current (s, z)."""
    from refcomp.quant import QParams

    rng = np.random.default_rng(0)
    start = QParams(np.float32(0.1), np.uint8(10), "uint8")
    for c in (0.01, 0.5):
        q = ObserverFakeQuant(start) if c == 0.01 else ObserverFakeQuant(start, averaging_constant=c)   # 0.01 default
        x1 = rng.normal(size=(6, 4)).astype(np.float32)
        q.eval()
        np.testing.assert_allclose(q.forward(x1), _fake_quant(x1, 0.1, 10), rtol=1e-6)
        assert q.qparams() is start
        q.train()
        y = q.forward(x1)
        s, z = _asymmetric(x1.min(), x1.max())
        assert (np.float32(q.qparams().scale), int(q.qparams().zero_point)) == (s, z)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, _fake_quant(x1, s, z), rtol=1e-6, atol=1e-7)
        x2 = 3 * rng.normal(size=(6, 4))
        q.forward(x2)
        lo = x1.min() + c * (x2.min() - x1.min())
        hi = x1.max() + c * (x2.max() - x1.max())
        s2, z2 = _asymmetric(lo, hi)
        np.testing.assert_allclose(np.float32(q.qparams().scale), s2, rtol=1e-6)
        assert int(q.qparams().zero_point) == z2
        q.frozen = True
        q.forward(10 * x2)
        np.testing.assert_allclose(np.float32(q.qparams().scale), s2, rtol=1e-6)
    # the straight-through gradient, zero beyond half a step outside the codes' range
    q = ObserverFakeQuant(QParams(np.float32(0.5), np.uint8(0), "uint8"))
    q.eval()
    x = np.array([-0.3, -0.2, 0.0, 127.0, 127.7, 128.0])
    q.forward(x)
    np.testing.assert_array_equal(q.backward(np.ones(6)), [0, 1, 1, 1, 1, 0])
    q8 = ObserverFakeQuant(start, "int8")
    q8.forward(np.array([[-1.0, 2.0]]))
    assert q8.qparams().dtype.name == "int8"


def test_lsq_initial_step_forward_and_gradients_written_out():
    """LSQ: initial step 2·mean|v| / sqrt(Q_P) (per tensor, or per row with axis 0; at least 1e-8),
    forward round(clip(v / s, −Q_N, Q_P))·s, and eqs. (L2)-(L4) with the step's gradient accumulated."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(3, 4)).astype(np.float32)
    q = LSQQuantizer(128, 127)
    y = q.forward(v)
    s = np.float32(2 * np.abs(v.astype(np.float64)).mean() / np.sqrt(127))
    assert q.step.data.dtype == np.float32 and q.step.data == s
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np.rint(np.clip(v / np.float64(s), -128, 127)) * np.float64(s), rtol=1e-6)
    qc = LSQQuantizer(127, 127, axis=0)
    qc.forward(v)
    np.testing.assert_allclose(qc.step.data, 2 * np.abs(v.astype(np.float64)).mean(axis=1) / np.sqrt(127), rtol=1e-6)
    assert LSQQuantizer(0, 255).forward(np.zeros((2, 2))).shape == (2, 2)
    z = LSQQuantizer(0, 255)
    z.forward(np.zeros((2, 2)))
    np.testing.assert_allclose(z.step.data, 1e-8)
    # per row: steps 0.5 and 0.25, Q_N = 2, Q_P = 3; r = v / s on both edges and inside
    qr = LSQQuantizer(2, 3, axis=0, step=np.array([0.5, 0.25]))
    v = np.array([[1.5, -1.0, 0.3, 2.0], [-0.5, 0.75, 0.1, -0.3]])      # r: [3, -2, .6, 4], [-2, 3, .4, -1.2]
    r = v / np.array([[0.5], [0.25]])
    dy = np.array([[1.0, 2.0, -1.0, 0.5], [0.25, -1.0, 3.0, 2.0]])
    np.testing.assert_allclose(qr.forward(v), np.rint(np.clip(r, -2, 3)) * [[0.5], [0.25]])
    inside = (r > -2) & (r < 3)
    np.testing.assert_array_equal(qr.backward(dy), dy * inside)               # (L2): the edges are outside
    d_s = np.where(inside, np.rint(r) - r, np.clip(r, -2, 3))                  # (L3)
    want = (dy * d_s).sum(axis=1) / np.sqrt(4 * 3)                             # (L4): N = 4 per step
    np.testing.assert_allclose(qr.step.grad, want, rtol=1e-6)
    assert qr.step.grad.dtype == np.float32                                   # the step's dtype
    qr.forward(v)
    qr.backward(dy)
    np.testing.assert_allclose(qr.step.grad, 2 * want, rtol=1e-6)             # accumulated
    qp = qr.qparams("int8")
    assert qp.axis == 0 and qp.dtype.name == "int8" and qp.zero_point.dtype == np.int8
    np.testing.assert_array_equal(qp.scale, np.float32([0.5, 0.25]))
    qt = LSQQuantizer(0, 255, step=np.float32(0.5)).qparams("uint8")
    assert qt.axis is None and qt.scale.shape == () and qt.zero_point.dtype == np.uint8


def test_fake_quantized_weight_accumulates_its_gradient_and_reports_its_step():
    w = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    src = w.copy()
    fw = FakeQuantized(src, PerChannelFakeQuant())
    src[0, 0] = 9.0
    assert fw.data[0, 0] == 0.5 and fw.shape == (2, 2) and fw.dtype == np.float32 and fw.nbytes == 16
    assert fw.named_parameters() == [] and "PerChannelFakeQuant" in repr(fw)
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert fw.to_dense().dtype == np.float32
    fw.accumulate_grad(g)
    fw.accumulate_grad(g)
    assert fw.grad.dtype == np.float32
    np.testing.assert_array_equal(fw.grad, 2 * g)         # every weight is inside the max-abs band
    lsq = FakeQuantized(w, LSQQuantizer(127, 127, axis=0))
    lsq.to_dense()
    (name, step), = lsq.named_parameters()
    assert name == "step" and step is lsq.quantizer.step


def _small_model():
    from refcomp.nn import ReLU, Sequential

    rng = np.random.default_rng(2)
    inner = Sequential(("fc1", Linear(6, 4, rng=rng)), ("relu1", ReLU()))
    return Sequential(("fc0", Linear(5, 6, rng=rng)), ("relu0", ReLU()), ("block", inner),
                      ("fc2", Linear(4, 3, rng=rng)))


@pytest.mark.parametrize("lsq", [False, True])
@pytest.mark.parametrize("nonneg_input", [False, True])
def test_prepare_qat_places_a_quantizer_after_each_stage(lsq, nonneg_input):
    """input_quant first, then each compute layer's quantizer after its ReLU (flat names, "." -> "_");
    observers start from the min-max ranges of the calibration data; LSQ steps start from the first
    batch, uint8 (Q_N = 0) where values are never negative, int8 elsewhere."""
    from refcomp.nn import ReLU

    m = _small_model()
    x = np.random.default_rng(3).normal(size=(20, 5)).astype(np.float32)
    if nonneg_input:
        x = np.abs(x)
        x[0, 0] = 0.0                  # never negative, a zero included
    q, rep = prepare_qat(m, x, lsq=lsq, batch_size=8)
    assert list(q.layers) == ["input_quant", "fc0", "relu0", "fc0_quant", "block_fc1", "block_relu1",
                              "block_fc1_quant", "fc2", "fc2_quant"]
    h0 = np.maximum(m["fc0"].forward(x), 0)
    h1 = np.maximum(m["block"]["fc1"].forward(h0), 0)
    acts = {"input": x, "fc0": h0, "block_fc1": h1, "fc2": m["fc2"].forward(h1)}
    assert set(rep["activation_qparams"]) == set(acts)
    for name, a in acts.items():
        s, z = _asymmetric(a.min(), a.max())
        qp = rep["activation_qparams"][name]
        assert (np.float32(qp.scale), int(qp.zero_point)) == (s, z)
    for name in ("fc0", "block_fc1", "fc2"):
        assert isinstance(q[name].weight, FakeQuantized)
    assert isinstance(q["relu0"], ReLU)
    quant = {name: q["input_quant" if name == "input" else f"{name}_quant"] for name in acts}
    for name, a in acts.items():
        nonneg = name in ("fc0", "block_fc1") or (name == "input" and nonneg_input)
        layer = quant[name]
        if lsq:
            assert isinstance(layer, LSQQuantizer) and (layer.qn, layer.qp) == ((0, 255) if nonneg else (128, 127))
            if name == "input":        # (the later ones see the fake-quantized values of the first batch)
                first = np.abs(a[:8].astype(np.float64)).mean()
                np.testing.assert_allclose(layer.step.data, 2 * first / np.sqrt(layer.qp), rtol=1e-6)
        else:
            assert isinstance(layer, ObserverFakeQuant)
    if lsq:
        w = m["fc0"].weight.to_dense().astype(np.float64)
        wq = q["fc0"].weight.quantizer
        assert (wq.qn, wq.qp, wq.axis) == (127, 127, 0)
        np.testing.assert_allclose(wq.step.data, 2 * np.abs(w).mean(axis=1) / np.sqrt(127), rtol=1e-5)
    else:
        assert isinstance(q["fc0"].weight.quantizer, PerChannelFakeQuant)


def test_train_qat_freezes_observers_from_the_given_epoch():
    """Observers run while epoch < freeze_observers_epoch, and every one is frozen at the end."""
    rng = np.random.default_rng(4)
    data = (rng.normal(size=(32, 5)).astype(np.float32), rng.integers(0, 3, 32))
    for freeze_at, moves in ((0, False), (1, True)):
        q, _ = prepare_qat(_small_model(), data[0])
        before = {n: layer.qparams() for n, layer in q.layers.items() if isinstance(layer, ObserverFakeQuant)}
        hist = train_qat(q, (3 * data[0], data[1]), epochs=1, freeze_observers_epoch=freeze_at, batch_size=8)
        assert len(hist) == 1
        after = {n: layer.qparams() for n, layer in q.layers.items() if isinstance(layer, ObserverFakeQuant)}
        assert (after != before) == moves
        assert all(layer.frozen for layer in q.layers.values() if isinstance(layer, ObserverFakeQuant))


def test_to_integer_exports_the_trained_scales():
    """LSQ: weight codes clip(round(W / s), ±127) with the trained per-row steps, activation parameters
    from the activation steps (uint8 after a ReLU, int8 elsewhere); observers: their (s, z) and the
    int8 grid of the weights. The QAT model is left as it was."""
    x = np.random.default_rng(5).normal(size=(16, 5)).astype(np.float32)
    for lsq in (True, False):
        q, _ = prepare_qat(_small_model(), x, lsq=lsq)
        im, rep = to_integer(q)
        assert set(rep["activation_qparams"]) == {"input", "fc0", "block_fc1", "fc2"}
        layers = dict(integer_layers(im))
        for name in ("fc0", "block_fc1", "fc2"):
            fw = q[name].weight
            assert isinstance(fw, FakeQuantized)                   # untouched
            w = fw.data.astype(np.float64)
            if lsq:
                s = fw.quantizer.step.data
                codes = np.clip(np.rint(w / s.astype(np.float64)[:, None]), -127, 127)
            else:
                s = (np.abs(w).max(axis=1) / 127).astype(np.float32)
                codes = np.clip(np.rint(w / s.astype(np.float64)[:, None]), -127, 127)
            got = layers[f"model.{name}"].weight
            assert got.data.dtype == np.int8
            np.testing.assert_array_equal(got.data, codes)
            np.testing.assert_array_equal(got.qparams.scale, s)
            qp = rep["activation_qparams"][name]
            if lsq:
                act = q[f"{name}_quant"]
                assert qp.dtype.name == ("int8" if name == "fc2" else "uint8")
                np.testing.assert_array_equal(qp.scale, act.step.data.reshape(()))
            else:
                assert qp == q[f"{name}_quant"].qparams()
        assert rep["bytes"] == integer_bytes(im)


def test_prepare_qat_first_batch_default_and_observer_switch():
    """The LSQ steps start from the first 500 samples by default; freeze_observers freezes (by default)
    or restarts every observer."""
    x = np.random.default_rng(6).normal(size=(503, 5)).astype(np.float32)
    x[500:] *= 50                                                 # outside the first batch
    q, _ = prepare_qat(_small_model(), x, lsq=True)
    first = np.abs(x[:500].astype(np.float64)).mean()
    np.testing.assert_allclose(q["input_quant"].step.data, 2 * first / np.sqrt(127), rtol=1e-6)
    o, _ = prepare_qat(_small_model(), x[:20])
    observers = [layer for layer in o.layers.values() if isinstance(layer, ObserverFakeQuant)]
    assert len(observers) == 4 and not any(layer.frozen for layer in observers)
    freeze_observers(o)
    assert all(layer.frozen for layer in observers)
    freeze_observers(o, False)
    assert not any(layer.frozen for layer in observers)


def test_only_prepared_models_are_trained_or_exported():
    """A model is a QAT model when it starts with input_quant and holds a FakeQuantized weight."""
    from refcomp.errors import ValidationError
    from refcomp.nn import ReLU, Sequential

    no_weight = Sequential(("input_quant", ReLU()), ("fc", Linear(3, 2, rng=0)))
    with pytest.raises(ValidationError, match="model"):
        to_integer(no_weight)
    q, _ = prepare_qat(_small_model(), np.ones((4, 5), np.float32))
    renamed = Sequential(*[("first" if n == "input_quant" else n, layer) for n, layer in q.layers.items()])
    with pytest.raises(ValidationError, match="model"):
        to_integer(renamed)


def test_train_qat_defaults():
    """The documented defaults: 2 epochs, observers frozen from epoch 1, lr 0.01, momentum 0.9, batches
    of 64, rng 0: the same weights as with every one of them given."""
    rng = np.random.default_rng(7)
    data = (rng.normal(size=(80, 5)).astype(np.float32), rng.integers(0, 3, 80))
    a, _ = prepare_qat(_small_model(), data[0])
    b, _ = prepare_qat(_small_model(), data[0])
    hist = train_qat(a, data)
    train_qat(b, data, epochs=2, freeze_observers_epoch=1, lr=0.01, momentum=0.9, batch_size=64, rng=0)
    assert len(hist) == 2
    for name in ("fc0", "block_fc1", "fc2"):
        np.testing.assert_array_equal(a[name].weight.data, b[name].weight.data)
