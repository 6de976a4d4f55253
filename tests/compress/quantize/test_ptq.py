"""PTQ static / weight-only and GPTQ on whole models: accuracy and error sanity on digits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.integer_model import integer_bytes, integer_layers
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.weight_only import model_bytes, quantize_weights
from refcomp.errors import ValidationError
from refcomp.formats.qtensor import QTensor
from refcomp.nn import evaluate

from ..models_for_tests import digits_split, small_cnn, trained_digits_mlp


@pytest.fixture(scope="module")
def digits_model():
    tr, te = digits_split()
    m = trained_digits_mlp()
    return m, tr, te, evaluate(m, te)["accuracy"]


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse", "entropy"])
def test_static_ptq_accuracy_on_digits(digits_model, observer):
    m, tr, te, acc = digits_model
    assert acc >= 0.95
    im, _ = quantize_static(m, tr[0][:500], observer=observer)
    q_acc = evaluate(im, te)["accuracy"]
    assert q_acc >= acc - 0.02, (observer, q_acc, acc)
    # the float model is left untouched
    assert evaluate(m, te)["accuracy"] == acc


def test_weight_only_int8_and_int4_groups(digits_model):
    m, tr, te, acc = digits_model
    float_bytes = model_bytes(m)
    for bits, group, min_ratio in [(8, None, 3.5), (4, 32, 5.0), (4, None, 6.5)]:
        q, rep = quantize_weights(m, bits=bits, group_size=group)
        assert isinstance(q["fc1"].weight, QTensor)
        assert float_bytes / model_bytes(q) >= min_ratio
        assert evaluate(q, te)["accuracy"] >= acc - (0.01 if bits == 8 else 0.05)


def test_gptq_beats_rtn_layer_errors(digits_model):
    """W4 (per channel) and W2 (groups of 16): GPTQ's layer output error is below RTN's on every layer."""
    m, tr, te, acc = digits_model
    for bits, group in [(4, None), (2, 16)]:
        _, rep_rtn = quantize_weights(m, bits=bits, group_size=group, method="rtn", calibration_x=tr[0][:512])
        g, rep_gptq = quantize_weights(m, bits=bits, group_size=group, method="gptq", calibration_x=tr[0][:512])
        for name in rep_rtn:
            assert rep_gptq[name]["output_mse"] < rep_rtn[name]["output_mse"], (bits, name)
    assert evaluate(g, te)["accuracy"] >= 0.8


def test_weight_only_rejects_bad_arguments(digits_model):
    m = digits_model[0]
    with pytest.raises(ValidationError, match="method"):
        quantize_weights(m, method="awq")
    with pytest.raises(ValidationError, match="calibration_x"):
        quantize_weights(m, method="gptq")


def test_static_ptq_conv_weights_per_channel():
    rng = np.random.default_rng(1)
    m = small_cnn(2)
    im, _ = quantize_static(m, rng.normal(size=(32, 1, 10, 10)).astype(np.float32))
    name, conv1 = integer_layers(im)[0]
    assert name == "model.conv1" and conv1.weight.qparams.scale.shape == (3,) and conv1.padding == (0, 0)
    assert integer_bytes(im) < model_bytes(m) / 2


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), bits=st.sampled_from([2, 4, 8]), group=st.sampled_from([None, 4, 8]),
       method=st.sampled_from(["rtn", "gptq"]))
def test_weight_only_weights_lie_on_the_grid(seed, bits, group, method):
    """Every stored weight is s·q with q an integer code in the b-bit range of its (row, group)."""
    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(seed)
    m = small_mlp(seed, sizes=(16, 12, 4))
    q, _ = quantize_weights(m, bits=bits, group_size=group, method=method,
                            calibration_x=rng.normal(size=(64, 16)).astype(np.float32))
    for name in ("fc0", "fc1"):
        w = q[name].weight
        codes = w.data.astype(np.int64)
        assert codes.min() >= -(2 ** (bits - 1)) and codes.max() <= 2 ** (bits - 1) - 1
        scale = np.asarray(w.qparams.scale, dtype=np.float64)
        s_full = scale[:, None] if scale.ndim == 1 else np.repeat(scale, group, axis=1)[:, :codes.shape[1]]
        np.testing.assert_allclose(w.to_dense(), codes * s_full, rtol=1e-6, atol=0)


def test_requantize_float_is_onnx_float32_requantization(tmp_path):
    """requantize="float": each layer's codes are eq. (I4') of its int32 sums, kept in the model file."""
    from refcomp.compress.quantize.integer_model import output_codes
    from refcomp.io import load_model, save_model
    from refcomp.models import digits_mlp
    from refcomp.ops import matmul_integer, requantize
    from refcomp.ops.requantize import real_multiplier

    rng = np.random.default_rng(3)
    x = (rng.random((40, 64)) * 16).astype(np.float32)
    fixed, _ = quantize_static(digits_mlp(0), x)
    qm, _ = quantize_static(digits_mlp(0), x, requantize="float")
    layers = dict(integer_layers(qm))
    assert {m.requantize for m in layers.values()} == {"float"}
    assert {m.requantize for _, m in integer_layers(fixed)} == {"fixed_point"}
    # the last layer by hand: codes of its input (after relu1), int32 sums + bias, float32 multiplier
    seen = []
    h = layers["model.fc2"].register_forward_hook(lambda _m, inp, y: seen.append((inp[0], y)))
    qm.forward(x)
    h.remove()
    q_in, q_out = seen[0]
    fc2 = layers["model.fc2"]
    s_w = fc2.weight.qparams.scale.astype(np.float32)
    acc = matmul_integer(q_in.data, fc2.weight.data.T.copy(), q_in.qparams.zero_point, None)
    q_b = np.rint(fc2.bias.data.astype(np.float64) / (np.float64(q_in.qparams.scale) * s_w.astype(np.float64)))
    acc = (acc.astype(np.int64) + q_b.astype(np.int64)).astype(np.int32)
    M = real_multiplier(q_in.qparams.scale, s_w, fc2.output_qparams.scale)
    want = requantize(acc, M, fc2.output_qparams.zero_point, output_dtype="uint8", method="float", axis=1)
    np.testing.assert_array_equal(q_out.data, want)
    # the choice is part of the layer configuration: saved and loaded
    path = tmp_path / "q.safetensors"
    save_model(qm, path)
    np.testing.assert_array_equal(output_codes(load_model(path), x), output_codes(qm, x))
    with pytest.raises(ValidationError, match="requantize"):
        quantize_static(digits_mlp(0), x, requantize="gemmlowp")


def test_integer_bytes_count_what_each_requantization_stores():
    """Fixed point stores an int32 multiplier and shift per channel, the float form one float32 M."""
    from refcomp.compress.quantize.integer_model import integer_bytes

    rng = np.random.default_rng(7)
    m = small_cnn(2)
    x = rng.normal(size=(16, 1, 10, 10)).astype(np.float32)
    fixed, _ = quantize_static(m, x)
    flt, _ = quantize_static(m, x, requantize="float")
    channels = sum(layer.weight.shape[0] for _, layer in integer_layers(fixed))
    assert integer_bytes(fixed) - integer_bytes(flt) == 4 * channels


# --- the recipe's steps written out (module docstring): small models, independent formulas ---------

def _asymmetric(lo, hi, qmin=0, qmax=255):
    """(scale, zero point) of eq. (5) (refcomp/quant/choose.py): the range widened to hold 0, a float32 scale."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    s = np.float32((hi - lo) / (qmax - qmin))
    return s, int(np.clip(qmin - np.rint(lo / np.float64(s)), qmin, qmax))


def _assert_qparams(qp, lo, hi, qmin=0, qmax=255):
    s, z = _asymmetric(lo, hi, qmin, qmax)
    np.testing.assert_allclose(np.float64(qp.scale), np.float64(s), rtol=1e-7)
    assert int(qp.zero_point) == z


def _mlp_with_extremes(n=23, seed=0):
    """small_mlp (5, 6, 4, 3) and calibration inputs whose extremes sit in the first and last samples."""
    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    x[0, 0], x[-1, 1] = -9.0, 8.0
    return small_mlp(seed, sizes=(5, 6, 4, 3)), x


def _relu(v):
    return np.maximum(v, 0)


@pytest.mark.parametrize("dtype, qmin, qmax", [("uint8", 0, 255), ("int8", -128, 127)])
def test_calibrate_sees_every_batch_min_max_written_out(dtype, qmin, qmax):
    """Step 2 with the min-max observer: the input's and every stage output's (after its ReLU) range over
    all batches, a last short one included (23 = 5·4 + 3), gives eq. (5)'s scale and zero point."""
    from refcomp.compress.quantize.ptq import calibrate

    m, x = _mlp_with_extremes()
    stages, qp = calibrate(m, x, activation_dtype=dtype, batch_size=4)
    assert [s.name for s in stages if s.kind == "compute"] == ["fc0", "fc1", "fc2"]
    assert set(qp) == {"input", "fc0", "fc1", "fc2"}
    h0 = _relu(m["fc0"].forward(x))
    h1 = _relu(m["fc1"].forward(h0))
    for name, v in (("input", x), ("fc0", h0), ("fc1", h1), ("fc2", m["fc2"].forward(h1))):
        _assert_qparams(qp[name], v.min(), v.max(), qmin, qmax)
    # one batch of everything: the same ranges
    _, qp1 = calibrate(m, x, activation_dtype=dtype, batch_size=len(x))
    assert all(np.float32(qp1[k].scale) == np.float32(qp[k].scale) for k in qp)


def test_calibrate_passes_observer_kwargs_and_kind():
    """observer_kwargs reach each observer: the 50th percentile keeps the centre of the inputs, far inside
    the min-max range that the default 99.99th nearly spans (every observer: the input and each stage)."""
    from refcomp.compress.quantize.ptq import OBSERVERS, calibrate, make_observer

    m, x = _mlp_with_extremes(n=200)
    _, narrow = calibrate(m, x, observer="percentile", observer_kwargs={"percentile": 50.0})
    _, wide = calibrate(m, x, observer="percentile")
    for name in ("input", "fc0", "fc1", "fc2"):
        assert np.float32(narrow[name].scale) < 0.9 * np.float32(wide[name].scale), name
    # quantize_static hands them on, on both paths
    for integer_only, key in ((True, lambda r: r["input"]), (False, lambda r: r["fc0"]["input"])):
        _, rn = quantize_static(m, x, observer="percentile", observer_kwargs={"percentile": 50.0},
                                integer_only=integer_only)
        _, rw = quantize_static(m, x, observer="percentile", integer_only=integer_only)
        assert np.float32(key(rn["activation_qparams"]).scale) < 0.5 * np.float32(key(rw["activation_qparams"]).scale)
    for kind, cls in OBSERVERS.items():
        obs = make_observer(kind)
        assert type(obs) is cls and obs.dtype.name == "uint8"        # asymmetric uint8 by default
    assert make_observer("minmax", "int8").dtype.name == "int8"
    with pytest.raises(ValidationError, match="observer"):
        make_observer("max")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_codes_written_out(bits):
    """Step 3: s[o] = max|W[o]| / (2^(b−1) − 1) (float32), q = clip(round_half_even(W / s), ±(2^(b−1) − 1)),
    held in int8; per_tensor: one s = max|W| / (2^(b−1) − 1) repeated per channel."""
    from refcomp.compress.quantize.ptq import quantize_weight_per_channel

    rng = np.random.default_rng(bits)
    w = rng.normal(size=(5, 3, 2, 2)).astype(np.float32)
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(w.astype(np.float64)).reshape(5, -1).max(axis=1)
    for per_tensor, s in ((False, (amax / qmax).astype(np.float32)),
                          (True, np.full(5, np.float32(amax.max() / qmax), np.float32))):
        codes, scales = quantize_weight_per_channel(w, bits, per_tensor=per_tensor)
        assert codes.dtype == np.int8 and codes.shape == w.shape and scales.dtype == np.float32
        np.testing.assert_array_equal(scales, s)
        want = np.clip(np.rint(w.astype(np.float64) / s.astype(np.float64).reshape(5, 1, 1, 1)), -qmax, qmax)
        np.testing.assert_array_equal(codes, want)
    with pytest.raises(ValidationError, match="weight_bits"):
        quantize_weight_per_channel(w, 3)


def test_weight_codes_are_of_the_float32_weight():
    """Step 3 quantizes the float32 weight: a float64 row below float32's smallest subnormal is a zero
    row, whose scale is 1 (the empty range, eq. 8 of refcomp/quant/choose.py) and codes 0."""
    from refcomp.compress.quantize.ptq import quantize_weight_per_channel

    w = np.array([[1e-46, -1e-46], [0.5, -1.0]])
    for per_tensor in (False, True):
        codes, scales = quantize_weight_per_channel(w[:1] if per_tensor else w, per_tensor=per_tensor)
        assert scales[0] == 1.0 and not codes[0].any()
    np.testing.assert_array_equal(quantize_weight_per_channel(w)[0][1], [64, -127])     # 0.5 / (1 / 127) = 63.5 -> 64


def test_static_ptq_options_are_checked_by_name():
    m, x = _mlp_with_extremes(n=8)
    for kwargs, name in [({"activation_dtype": "int16"}, "activation_dtype"),
                         ({"weight_granularity": "per_row"}, "weight_granularity"),
                         ({"equalize": 1}, "equalize"), ({"bias_correction": "yes"}, "bias_correction"),
                         ({"weight_bits": True}, "weight_bits"), ({"weight_bits": 3}, "weight_bits"),
                         ({"integer_only": 1}, "integer_only"),
                         ({"integer_only": False, "equalize": True}, "equalize"),
                         ({"integer_only": False, "bias_correction": True}, "bias_correction"),
                         ({"batch_size": 0}, "batch_size"), ({"batch_size": True}, "batch_size"),
                         ({"batch_size": 2.0}, "batch_size")]:
        with pytest.raises(ValidationError) as err:
            quantize_static(m, x, **kwargs)
        assert err.value.argument == name
    for bad in (x.astype(np.int32), x[:, 0], x[:0], np.where(x > 1, np.nan, x)):
        with pytest.raises(ValidationError, match="calibration_x"):
            quantize_static(m, bad)
    # the smallest accepted: batches of one sample, a 2-D input, a single sample
    im, rep = quantize_static(m, x, batch_size=1)
    _assert_qparams(rep["activation_qparams"]["input"], x.min(), x.max())
    _, rep = quantize_static(m, x[1:2])
    _assert_qparams(rep["activation_qparams"]["input"], x[1].min(), x[1].max())


def test_calibration_batches_partition_the_data(monkeypatch):
    """Every observer sees the calibration samples once, in order, in batches of batch_size (500 by
    default) with a shorter last one: integer-only and per layer."""
    from refcomp.compress.quantize import ptq
    from refcomp.quant import MinMaxObserver

    seen = []

    class Recording(MinMaxObserver):
        def observe(self, x):
            seen.append((id(self), np.array(x, copy=True)))
            return super().observe(x)

    monkeypatch.setitem(ptq.OBSERVERS, "minmax", Recording)
    m, x = _mlp_with_extremes(n=503)
    for run, want in ((lambda: ptq.calibrate(m, x[:23], batch_size=4), [4, 4, 4, 4, 4, 3]),
                      (lambda: ptq.calibrate(m, x), [500, 3]),
                      (lambda: quantize_static(m, x), [500, 3]),
                      (lambda: quantize_static(m, x[:10], integer_only=False, batch_size=4), [4, 4, 2])):
        seen.clear()
        run()
        first = seen[0][0]                   # the input's observer (integer-only), fc0's input (per layer)
        batches = [b for o, b in seen if o == first]
        assert [len(b) for b in batches] == want
        np.testing.assert_array_equal(np.concatenate(batches), x[:sum(want)])


def test_static_ptq_int8_activations_and_per_tensor_low_bit_weights():
    """activation_dtype="int8" gives eq. (5) on [−128, 127]; weight_bits=4 per tensor one scale
    max|W| / 7 for every channel of a layer, codes in [−7, 7]."""
    m, x = _mlp_with_extremes(n=16)
    im, rep = quantize_static(m, x, activation_dtype="int8", weight_bits=4, weight_granularity="per_tensor")
    _assert_qparams(rep["activation_qparams"]["input"], x.min(), x.max(), -128, 127)
    assert {qp.dtype.name for qp in rep["activation_qparams"].values()} == {"int8"}
    for name, layer in integer_layers(im):
        w = m[name.split(".")[-1]].weight.to_dense().astype(np.float64)
        np.testing.assert_array_equal(layer.weight.qparams.scale, np.full(w.shape[0], np.float32(np.abs(w).max() / 7)))
        assert np.abs(layer.weight.data.astype(np.int64)).max() == 7
    plain, per_channel = quantize_static(m, x)
    assert "bias_shift" not in per_channel and "equalized_chains" not in per_channel    # both off by default
    assert per_channel["bytes"] == integer_bytes(plain)


def test_bias_correction_written_out():
    """Eq. (BC1): each layer's bias minus E[(Ŵ − W) x] over the float model's inputs to that layer
    (batches of 7 over 30 samples); a bias-free layer gets −E[(Ŵ − W) x] as its bias."""
    from refcomp.nn import Linear, ReLU, Sequential

    rng = np.random.default_rng(11)
    m = Sequential(("fc0", Linear(5, 6, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(6, 4, bias=False, rng=rng)),
                   ("relu1", ReLU()), ("fc2", Linear(4, 3, rng=rng)))
    x = rng.normal(size=(30, 5)).astype(np.float32)
    im, rep = quantize_static(m, x, bias_correction=True, batch_size=7)
    layers = dict(integer_layers(im))
    a = x
    for name in ("fc0", "fc1", "fc2"):
        layer = m[name]
        w = layer.weight.to_dense().astype(np.float64)
        s = (np.abs(w).max(axis=1) / 127).astype(np.float32).astype(np.float64)[:, None]
        w_hat = np.clip(np.rint(w / s), -127, 127) * s
        shift = (a.astype(np.float64) @ (w_hat - w).T).mean(axis=0)
        np.testing.assert_allclose(rep["bias_shift"][name], shift, rtol=1e-9, atol=1e-12)
        b = np.zeros(w.shape[0]) if layer.bias is None else layer.bias.data.astype(np.float64)
        got = layers[f"model.{name}"].bias.data
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, (b - shift).astype(np.float32), rtol=1e-6)
        a = layer.forward(a)
        a = _relu(a) if name != "fc2" else a


def test_equalize_balances_the_ranges_of_a_pair():
    """Cross-layer equalization (Nagel et al. 2019, eq. 6): for W1 → ReLU → W2, channel i is scaled by
    s_i = sqrt(r1_i / r2_i) (r1_i = max|W1[i, :]|, r2_i = max|W2[:, i]|), so W1's row i spans
    sqrt(r1_i · r2_i) and its per-channel int8 scale is that over 127."""
    from refcomp.nn import Linear, ReLU, Sequential

    rng = np.random.default_rng(12)
    m = Sequential(("fc0", Linear(5, 6, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(6, 3, rng=rng)))
    m["fc0"].weight.data[...] *= np.array([8, 1, 1, 0.1, 1, 3], np.float32)[:, None]
    x = rng.normal(size=(20, 5)).astype(np.float32)
    w0, w1 = (m[n].weight.to_dense().astype(np.float64) for n in ("fc0", "fc1"))
    r1, r2 = np.abs(w0).max(axis=1), np.abs(w1).max(axis=0)
    im, rep = quantize_static(m, x, equalize=True)
    assert "equalized_chains" in rep
    np.testing.assert_allclose(dict(integer_layers(im))["model.fc0"].weight.qparams.scale, np.sqrt(r1 * r2) / 127,
                               rtol=1e-5)
    plain, _ = quantize_static(m, x)
    np.testing.assert_allclose(dict(integer_layers(plain))["model.fc0"].weight.qparams.scale, r1 / 127, rtol=1e-6)


def test_per_layer_ptq_observes_each_layers_input_and_output():
    """integer_only=False: each Linear gets eq. (5) on its own input's and output's range (over all
    batches), per-tensor weight scales when asked, and the report counts the float LayerNorm's
    parameters (2 × 6 float32) on top of the integer layers."""
    from refcomp.nn import LayerNorm, Linear, ReLU, Sequential

    rng = np.random.default_rng(13)
    m = Sequential(("fc0", Linear(5, 6, rng=rng)), ("norm", LayerNorm(6)), ("relu", ReLU()),
                   ("fc1", Linear(6, 3, rng=rng)))
    x = rng.normal(size=(23, 5)).astype(np.float32)
    x[0, 0], x[-1, 1] = -9.0, 8.0
    qm, rep = quantize_static(m, x, integer_only=False, batch_size=4, weight_bits=4,
                              weight_granularity="per_tensor")
    y0 = m["fc0"].forward(x)
    a1 = _relu(m["norm"].forward(y0))
    seen = rep["activation_qparams"]
    assert set(seen) == {"fc0", "fc1"}
    for name, inp, out in (("fc0", x, y0), ("fc1", a1, m["fc1"].forward(a1))):
        _assert_qparams(seen[name]["input"], inp.min(), inp.max())
        _assert_qparams(seen[name]["output"], out.min(), out.max())
    assert [name for name, _ in integer_layers(qm)] == ["fc0.layer", "fc1.layer"]
    for name, layer in integer_layers(qm):
        w = m[name.split(".")[0]].weight.to_dense().astype(np.float64)
        np.testing.assert_array_equal(layer.weight.qparams.scale, np.full(w.shape[0], np.float32(np.abs(w).max() / 7)))
    assert rep["bytes"] == integer_bytes(qm) + 2 * 6 * 4
    # int8 activations on both sides of each layer, observer options on both sides too
    _, r8 = quantize_static(m, x, integer_only=False, activation_dtype="int8")
    _assert_qparams(r8["activation_qparams"]["fc0"]["input"], x.min(), x.max(), -128, 127)
    _assert_qparams(r8["activation_qparams"]["fc0"]["output"], y0.min(), y0.max(), -128, 127)
    kw = {"observer": "percentile", "integer_only": False}
    _, rn = quantize_static(m, x, observer_kwargs={"percentile": 50.0}, **kw)
    _, rw = quantize_static(m, x, **kw)
    for side in ("input", "output"):
        narrow, wide = (r["activation_qparams"]["fc0"][side] for r in (rn, rw))
        assert np.float32(narrow.scale) < 0.9 * np.float32(wide.scale), side
    with pytest.raises(ValidationError, match="model"):
        quantize_static(Linear(5, 3, rng=0), x, integer_only=False)     # no layer inside a container


def test_two_bit_weights_and_bias_correction_batches(monkeypatch):
    """weight_bits=2 gives codes in [−1, 1]; bias correction measures on batches of batch_size."""
    from refcomp.compress.quantize import ptq

    m, x = _mlp_with_extremes(n=12)
    im, _ = quantize_static(m, x, weight_bits=2)
    assert {int(v) for _, layer in integer_layers(im) for v in np.unique(layer.weight.data)} <= {-1, 0, 1}
    sizes = []
    real = ptq.empirical_output_shift

    def spy(*args, batch_size=500, **kwargs):
        sizes.append(batch_size)
        return real(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(ptq, "empirical_output_shift", spy)
    quantize_static(m, x, bias_correction=True, batch_size=5)
    assert sizes == [5]
