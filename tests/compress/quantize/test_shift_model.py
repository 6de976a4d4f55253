"""Power-of-two models with shift-only inference: the integer path equals a float64 simulation written
out here (real activations 2^f·q, weights ±2^e, round half up, clip), and it classifies like the float model."""

import numpy as np
import pytest

from refcomp.compress.quantize.shift_model import power_of_two_model, prepare_power_of_two
from refcomp.errors import OverflowRiskError, ValidationError
from refcomp.nn import Linear, ReLU, Sequential, evaluate, train

from ..models_for_tests import small_cnn, small_mlp


def _direct_conv(x, w, b):
    """Valid, stride-1 convolution by its definition (float64): y[n,o,i,j] = Σ w[o,c,u,v]·x[n,c,i+u,j+v] + b[o]."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    y = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for u in range(kh):
        for v in range(kw):
            y += np.einsum("oc,nchw->nohw", w[:, :, u, v], x[:, :, u:u + h - kh + 1, v:v + wd - kw + 1])
    return y + b.reshape(1, -1, 1, 1)


def simulate(sm, model, x):
    """float64: v = real input · ŵ + bias (at the accumulator scale); codes = clip(floor(v / 2^f_y + 1/2))."""
    q = np.clip(np.rint(x.astype(np.float64) * 2.0 ** -sm.f_in), *sm.in_range)
    f = sm.f_in
    for st in sm.stages:
        if st["kind"] == "maxpool":
            n, c, h, w = q.shape
            q = q[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
            continue
        if st["kind"] == "flatten":
            q = q.reshape(q.shape[0], -1)
            continue
        if st["kind"] == "relu":                  # a ReLU on its own (not after a compute layer): codes >= 0
            q = np.maximum(q, 0)
            continue
        if st["kind"] != "compute":
            continue
        w_hat = (st["sign"] * 2.0 ** (st["e_min"] + st["shift"])).reshape(model[st["name"]].weight.to_dense().shape)
        b = 0.0 if st["bias"] is None else st["bias"] * 2.0 ** st["acc_exponent"]
        real = q * 2.0 ** f
        if w_hat.ndim == 2:
            v = real @ w_hat.T + b
        else:                                     # padding, stride, dilation: pad, dilate the kernel, subsample
            layer = model[st["name"]]
            (ph, pw), (sh, sw), (dh, dw) = layer.padding, layer.stride, layer.dilation
            o, c, kh, kw = w_hat.shape
            wd = np.zeros((o, c, (kh - 1) * dh + 1, (kw - 1) * dw + 1))
            wd[:, :, ::dh, ::dw] = w_hat
            v = _direct_conv(np.pad(real, ((0, 0), (0, 0), (ph, ph), (pw, pw))), wd, b)[:, :, ::sh, ::sw]
        if st["last"]:
            return v
        q = np.clip(np.floor(v / 2.0 ** st["f_out"] + 0.5), *st["range"])
        f = st["f_out"]
    raise AssertionError("no last layer")


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_mlp_integer_path_equals_float64_simulation(digits, bits):
    _, tr, te, _ = digits
    m = small_mlp(0, (64, 40, 30, 10))
    train(m, tr, epochs=10, lr=0.05, momentum=0.9, rng=0, progress=False)
    sm, rep = power_of_two_model(m, tr[0][:300], bits=bits)
    got = sm.forward(te[0])
    np.testing.assert_array_equal(got, simulate(sm, m, te[0]))
    assert rep["layers"] == ["fc0", "fc1", "fc2"]
    # the 8-bit activations cost (almost) nothing beyond the power-of-two weights themselves, which lose
    # 3 points at 4-6 bits and 20 at 3 bits here before fine-tuning (log rounding errs by up to 41 %)
    pot_float = evaluate(prepare_power_of_two(m, bits), te)["accuracy"]
    assert np.mean(np.argmax(got, 1) == te[1]) >= pot_float - 0.01


def test_cnn_integer_path_equals_direct_convolution_simulation():
    rng = np.random.default_rng(0)
    m = small_cnn(1, relu_after_conv=False)
    x = rng.uniform(0, 1, (6, 1, 10, 10)).astype(np.float32)
    sm, _ = power_of_two_model(m, x, bits=4)
    np.testing.assert_array_equal(sm.forward(x), simulate(sm, m, x))
    assert [s["kind"] for s in sm.stages] == ["compute", "maxpool", "compute", "flatten", "compute"]


def test_weights_are_signed_powers_of_two_and_bytes():
    m = small_mlp(3, (16, 8, 4))
    x = np.random.default_rng(0).uniform(0, 1, (20, 16)).astype(np.float32)
    sm, rep = power_of_two_model(m, x, bits=4)
    st = sm.stages[0]
    assert st["shift"].min() >= 0 and st["shift"].max() <= 6 and set(np.unique(st["sign"])) <= {-1, 0, 1}
    # 4 bits per weight + e_max byte per layer, int32 biases, one exponent byte per activation (input, hidden)
    assert rep["bytes"] == (16 * 8 * 4 // 8 + 1) + (8 * 4 * 4 // 8 + 1) + 4 * (8 + 4) + 2


def test_fine_tuning_keeps_the_power_of_two_weights(digits):
    _, tr, te, _ = digits
    m = small_mlp(0, (64, 40, 10))
    train(m, tr, epochs=5, lr=0.05, momentum=0.9, rng=0, progress=False)
    q = prepare_power_of_two(m, bits=3)
    before = np.mean(np.argmax(power_of_two_model(q, tr[0][:300], bits=3)[0].forward(te[0]), 1) == te[1])
    train(q, tr, epochs=5, lr=0.01, momentum=0.9, rng=0, progress=False)
    w = q["fc0"].weight.to_dense()
    nz = np.abs(w[w != 0])
    np.testing.assert_array_equal(np.log2(nz), np.round(np.log2(nz)))
    sm, _ = power_of_two_model(q, tr[0][:300], bits=3)
    after = np.mean(np.argmax(sm.forward(te[0]), 1) == te[1])
    assert after >= before - 0.01
    np.testing.assert_array_equal(sm.forward(te[0]), simulate(sm, q, te[0]))


def test_bad_arguments():
    m = Sequential(("fc", Linear(3, 2, rng=0)), ("r", ReLU()))
    with pytest.raises(ValidationError, match="bits"):
        power_of_two_model(m, np.ones((2, 3), np.float32), bits=1)
    with pytest.raises(ValidationError, match="calibration_x"):
        power_of_two_model(m, np.ones((0, 3), np.float32))


def _pot(w, bits):
    """Power-of-two rounding written out (Miyashita et al. 2016 §3): e_max = round(log2 max|w|), e_min =
    e_max − 2^(bits−1) + 2, e = round(log2 |w|); ŵ = sign(w)·2^min(e, e_max) where e >= e_min, else 0."""
    w = np.asarray(w, np.float64)
    e_max = int(np.rint(np.log2(np.abs(w).max())))
    e_min = e_max - 2 ** (bits - 1) + 2
    with np.errstate(divide="ignore"):
        e = np.rint(np.log2(np.abs(w)))
    return np.where(e >= e_min, np.sign(w) * 2.0 ** np.minimum(e, e_max), 0.0), e_min, e_max


def test_power_of_two_weight_forward_and_saturating_gradient_written_out():
    """The trainable layer computes with ŵ (in its float32) and hands back g·1{|w| <= 2^e_max} (the saturating
    STE): the weight 1.3 rounds to 2^0 = e_max and its gradient is cut; 4 bits is the default."""
    m = small_mlp(0, (6, 5, 3))
    m["fc0"].weight.data[0, 0] = 1.3                         # the peak: e_max = round(log2 1.3) = 0 < log2 1.3
    m["fc0"].weight.data[0, 1] = 0.005                       # 2^-8 after rounding: below 4 bits' e_min = -6, flushed
    w = m["fc0"].weight.to_dense()
    for bits, q in ((3, prepare_power_of_two(m, bits=3)), (4, prepare_power_of_two(m))):
        want, _, e_max = _pot(w, bits)
        got = q["fc0"].weight.to_dense()
        assert got.dtype == np.float32 and e_max == 0
        np.testing.assert_array_equal(got, want)
        g = np.random.default_rng(bits).normal(size=w.shape).astype(np.float32)
        q["fc0"].weight.accumulate_grad(g)
        assert q["fc0"].weight.grad.dtype == np.float32
        np.testing.assert_array_equal(q["fc0"].weight.grad, g * (np.abs(w) <= 1.0))
        assert q["fc0"].weight.grad[0, 0] == 0
    q64 = prepare_power_of_two(Sequential(("fc", Linear(6, 5, rng=1, dtype="float64"))))
    assert q64["fc"].weight.to_dense().dtype == np.float64           # the layer's own dtype


def test_activation_exponents_ranges_and_integer_biases_written_out():
    """f = ceil(log2(max|v| / qmax)) for the input and every stage but the last (v: the float model with
    ±2^e weights on the calibration batch); ranges unsigned after a ReLU and for a non-negative input, signed
    otherwise; the bias at the accumulator's scale 2^(f_x + e_min), rounded; r = f_y − f_x − e_min. The integer
    path equals the float64 simulation on fresh inputs."""
    from math import ceil, log2

    rng = np.random.default_rng(5)
    m = Sequential(("fc0", Linear(12, 10, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(10, 6, rng=rng)),
                   ("fc2", Linear(6, 4, rng=rng)))
    for x, act_bits, bits in ((rng.normal(size=(40, 12)).astype(np.float32), 8, 4),
                              (rng.uniform(0, 3, (40, 12)).astype(np.float32), 5, 6),
                              (rng.uniform(0, 0.5, (40, 12)).astype(np.float32), 8, 3)):
        sm, rep = power_of_two_model(m, x, bits=bits, act_bits=act_bits)
        assert rep["bits"] == bits and rep["act_bits"] == act_bits and rep["layers"] == ["fc0", "fc1", "fc2"]
        top, half = 2**act_bits - 1, 2 ** (act_bits - 1)
        unsigned = x.min() >= 0
        assert sm.in_range == ((0, top) if unsigned else (-half, half - 1))
        f = ceil(log2(np.abs(x).max() / (top if unsigned else half - 1)))
        assert sm.f_in == f
        np.testing.assert_array_equal(sm.quantize_input(x), np.clip(np.rint(x.astype(np.float64) * 2.0 ** -f),
                                                                    *sm.in_range))
        v = x.astype(np.float64)
        for st, relu in zip(sm.stages, (True, False, False)):
            w_hat, e_min, _ = _pot(m[st["name"]].weight.to_dense(), bits)
            b = m[st["name"]].bias.data.astype(np.float64)
            v = v @ w_hat.T + b
            v = np.maximum(v, 0) if relu else v
            assert st["e_min"] == e_min and st["acc_exponent"] == f + e_min and st["f_in"] == f
            np.testing.assert_array_equal(st["bias"], np.rint(b * 2.0 ** -(f + e_min)))
            if st["last"]:                        # the accumulator itself: no requantization, no clip
                assert st["r"] == 0 and st["name"] == "fc2" and st["f_out"] is None
                assert st["range"] == (-(2**62), 2**62 - 1)
                break
            qmax = top if relu else half - 1
            assert st["range"] == ((0, top) if relu else (-half, half - 1))
            f_out = ceil(log2(np.abs(v).max() / qmax))
            assert st["f_out"] == f_out and st["r"] == f_out - (f + e_min)
            f = f_out
        x_new = (x * 1.3).astype(np.float32)
        np.testing.assert_array_equal(sm(x_new), simulate(sm, m, x_new))


def test_defaults_zero_calibration_and_a_relu_on_its_own():
    """bits = 4 and act_bits = 8 by default; an all-zero batch gives the exponent 0; a ReLU after a max-pool
    (not fused into a compute stage) clamps the codes at 0."""
    from refcomp.nn import Conv2d, Flatten, MaxPool2d

    rng = np.random.default_rng(6)
    m = Sequential(("conv", Conv2d(1, 3, 3, rng=rng)), ("pool", MaxPool2d(2)), ("relu", ReLU()),
                   ("flatten", Flatten()), ("fc", Linear(3 * 3 * 3, 4, rng=rng)))
    x = rng.normal(size=(8, 1, 8, 8)).astype(np.float32)
    sm, rep = power_of_two_model(m, x)
    assert rep["bits"] == 4 and rep["act_bits"] == 8 and sm.in_range == (-128, 127)
    assert [s["kind"] for s in sm.stages] == ["compute", "maxpool", "relu", "flatten", "compute"]
    assert sm.stages[0]["range"] == (-128, 127)                # the conv itself has no fused ReLU
    np.testing.assert_array_equal(sm.forward(x), simulate(sm, m, x))
    zero, _ = power_of_two_model(m, np.zeros((2, 1, 8, 8), np.float32))
    assert zero.f_in == 0 and zero.in_range == (0, 255)


def test_bias_bytes_int64_when_the_accumulator_scale_is_tiny_and_grouped_convs_refused():
    """A bias of 1e3 at an accumulator scale of about 2^-33 needs int64 (8 bytes each): 1 input exponent byte
    + (⌈4 weights · 4 bits / 8⌉ + 1 e_max byte) + 2 · 8."""
    from refcomp.nn import Conv2d, Flatten

    m = Sequential(("fc", Linear(2, 2, rng=0)))
    m["fc"].weight.data[...] = [[1e-6, -2e-6], [3e-6, 1e-6]]
    m["fc"].bias.data[...] = [1e3, -1e3]
    sm, rep = power_of_two_model(m, np.random.default_rng(0).uniform(0.5, 1, (4, 2)).astype(np.float32))
    assert np.abs(sm.stages[0]["bias"]).max() >= 2**31
    assert rep["bytes"] == 1 + (2 + 1) + 2 * 8
    # 1e30 / 2^-33 is past 2^62, what the shift-only kernel can add exactly: refused, naming the layer
    m["fc"].bias.data[...] = [1e30, 0]
    with pytest.raises(OverflowRiskError) as e:
        power_of_two_model(m, np.random.default_rng(0).uniform(0.5, 1, (4, 2)).astype(np.float32))
    assert e.value.argument == "model layer 'fc' bias"
    g = Sequential(("conv", Conv2d(2, 2, 1, groups=2, rng=0)), ("flatten", Flatten()))
    with pytest.raises(ValidationError, match="model layer 'conv'"):
        power_of_two_model(g, np.ones((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize("padding, stride, dilation", [(1, 1, 1), (2, 2, 1), (1, 1, 2)])
def test_conv_geometry_equals_the_direct_convolution(padding, stride, dilation):
    """Padding is code 0 (the real 0), stride and dilation read the same receptive fields as the float model."""
    from refcomp.nn import Conv2d, Flatten

    rng = np.random.default_rng(padding + 3 * stride + 7 * dilation)
    m = Sequential(("conv", Conv2d(2, 3, 3, stride=stride, padding=padding, dilation=dilation, rng=rng)),
                   ("relu", ReLU()), ("flatten", Flatten()))
    n_flat = m.forward(np.zeros((1, 2, 9, 9), np.float32)).shape[1]
    m.add("fc", Linear(n_flat, 4, rng=rng))
    x = rng.normal(size=(5, 2, 9, 9)).astype(np.float32)
    sm, _ = power_of_two_model(m, x)
    np.testing.assert_array_equal(sm.forward(x), simulate(sm, m, x))


def test_bias_free_layers_bias_widths_and_sparse_weights():
    """A layer without a bias adds none (and no bytes); a bias of exactly 2^31 at the accumulator's scale
    needs int64 (8 bytes), 2^30 fits int32 (4); a weight in another format (CSR) is read as its dense values."""
    from refcomp.formats import Dense
    from refcomp.formats.csr import CSRMatrix

    rng = np.random.default_rng(11)
    m = Sequential(("fc0", Linear(6, 5, bias=False, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(5, 3, rng=rng)))
    x = rng.normal(size=(10, 6)).astype(np.float32)
    sm, rep = power_of_two_model(m, x)
    assert sm.stages[0]["bias"] is None
    np.testing.assert_array_equal(sm.forward(x), simulate(sm, m, x))
    w0 = m["fc0"].weight.to_dense()
    assert rep["bytes"] == 1 + (-(-30 * 4 // 8) + 1) + 1 + (-(-15 * 4 // 8) + 1) + 3 * 4
    for bias, width in ((2.0**31, 8), (2.0**30, 4)):
        one = Sequential(("fc", Linear(6, 3, rng=0)))
        one["fc"].weight = Dense(w0[:3].copy())
        acc_e = power_of_two_model(one, x)[0].stages[0]["acc_exponent"]
        one["fc"].bias.data[...] = [bias * 2.0**acc_e, 0.0, 0.0]
        sm1, rep1 = power_of_two_model(one, x)
        assert int(np.abs(sm1.stages[0]["bias"]).max()) == int(bias)
        assert rep1["bytes"] == 1 + (-(-18 * 4 // 8) + 1) + 3 * width
    sparse = Sequential(("fc0", Linear(6, 5, bias=False, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(5, 3, rng=rng)))
    sparse["fc0"].weight = CSRMatrix.from_dense(np.where(np.abs(w0) > 0.2, w0, 0.0).astype(np.float32))
    sparse["fc1"].weight, sparse["fc1"].bias = m["fc1"].weight, m["fc1"].bias
    dense = Sequential(("fc0", Linear(6, 5, bias=False, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(5, 3, rng=rng)))
    dense["fc0"].weight.data[...] = sparse["fc0"].weight.to_dense()
    dense["fc1"].weight, dense["fc1"].bias = m["fc1"].weight, m["fc1"].bias
    np.testing.assert_array_equal(power_of_two_model(sparse, x)[0].forward(x), power_of_two_model(dense, x)[0].forward(x))


def test_bits_and_act_bits_bounds():
    """bits in [2, 8] (prepare_power_of_two refuses at once, not at the first forward), act_bits in [2, 16];
    a one-value calibration batch is a batch."""
    m = Sequential(("fc", Linear(1, 2, bias=False, rng=0)))
    m["fc"].weight.data[...] = [[1.0], [-0.5]]                  # e_max = 0: 8 bits reach 2^-126, float32's least
    x = np.ones((1, 1), np.float32)
    for bits, act_bits in ((2, 2), (8, 16)):
        _, rep = power_of_two_model(m, x, bits=bits, act_bits=act_bits)
        assert (rep["bits"], rep["act_bits"]) == (bits, act_bits)
        prepare_power_of_two(m, bits)
    for kwargs, name in (({"bits": 9}, "bits"), ({"act_bits": 1}, "act_bits"), ({"act_bits": 17}, "act_bits")):
        with pytest.raises(ValidationError, match=f"^{name}: "):
            power_of_two_model(m, x, **kwargs)
    for bits in (1, 9):
        with pytest.raises(ValidationError, match="^bits: "):
            prepare_power_of_two(m, bits)


def test_latent_weights_and_integer_calibration():
    """A model from prepare_power_of_two is read through its latent float weights (its 3-bit rounding is not
    rounded again at 4 bits), and an integer calibration batch is read as float32."""
    rng = np.random.default_rng(12)
    m = small_mlp(12, (8, 6, 3))
    x = rng.integers(-3, 4, (16, 8))
    plain, _ = power_of_two_model(m, x.astype(np.float32), bits=4)
    from_q, _ = power_of_two_model(prepare_power_of_two(m, bits=3), x, bits=4)
    for a, b in zip(plain.stages, from_q.stages):
        np.testing.assert_array_equal(a["sign"], b["sign"])
        np.testing.assert_array_equal(a["shift"], b["shift"])
        assert a["f_in"] == b["f_in"] and a["f_out"] == b["f_out"]
    np.testing.assert_array_equal(plain.forward(x), from_q.forward(x))
