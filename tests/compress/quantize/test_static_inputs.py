"""quantize_static_inputs: SmoothQuant's factors and invariance, calibration on the smoothed inputs, whole graphs."""

import numpy as np
import pytest

from refcomp.compress.quantize.static_inputs import quantize_static_inputs, smoothing_factors
from refcomp.errors import ValidationError
from refcomp.formats import Dense, StaticQuantized
from refcomp.nn import Linear, ReLU, Sequential
from refcomp.nn.blocks import transformer_encoder_block


def test_smoothing_factors_by_the_formula():
    xm, wm = np.array([8.0, 1.0, 0.0, 4.0]), np.array([2.0, 4.0, 1.0, 0.0])
    m = smoothing_factors(xm, wm, 0.5)
    np.testing.assert_allclose(m, [8 ** 0.5 / 2 ** 0.5, 1 / 4 ** 0.5, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(smoothing_factors(xm[:2], wm[:2], 0.75), [8 ** 0.75 / 2 ** 0.25, 1 / 4 ** 0.25])


def _mlp():
    return Sequential(("fc1", Linear(16, 24, rng=0)), ("relu", ReLU()), ("fc2", Linear(24, 8, rng=1)))


def test_observers_see_the_smoothed_inputs_and_the_product_is_unchanged_in_float():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16)).astype(np.float32)
    x[:, 3] *= 30                                           # an outlier channel, as transformers have
    model = _mlp()
    q, report = quantize_static_inputs(model, [x[:32], x[32:]], smooth_alpha=0.5)
    w = q["fc1"].weight
    assert isinstance(w, StaticQuantized)
    m = smoothing_factors(np.abs(x).max(axis=0), np.abs(model["fc1"].weight.to_dense()).max(axis=0), 0.5)
    np.testing.assert_array_equal(w.smooth, m)
    xs = x / m                                              # minmax on x/m, widened to contain 0
    lo, hi = min(0.0, xs.min()), max(0.0, xs.max())
    assert report["fc1"]["input_scale"] == pytest.approx((hi - lo) / 255, rel=1e-6)
    # (x/m)·(W·diag(m))ᵀ = x·Wᵀ: the stored weight carries m (up to its int8 rounding)
    np.testing.assert_allclose(w.to_dense(), model["fc1"].weight.to_dense(), atol=w.weight.qparams.scale.max())
    assert np.abs(q(x) - model(x)).max() < 0.05 * np.abs(model(x)).max()


def test_smoothing_helps_an_outlier_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    x[:, 5] *= 100
    model = _mlp()
    err = {a: np.abs(quantize_static_inputs(model, [x], smooth_alpha=a)[0]["fc1"](x) - model["fc1"](x)).mean()
           for a in (None, 0.5)}
    assert err[0.5] < err[None] / 3


def test_two_input_graph_and_calibration_tuples():
    block = transformer_encoder_block(32, 4, 64, rng=0).eval()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 32)).astype(np.float32)
    mask = np.ones((4, 6), np.int64)
    mask[1, 4:] = 0
    q, report = quantize_static_inputs(block, [(x[:2], mask[:2]), (x[2:], mask[2:])], observer="mse")
    assert len(report) == 6 and all(isinstance(w, StaticQuantized) for n, w in q.named_weights()
                                     if n.endswith("proj.weight") or n in ("fc1.weight", "fc2.weight"))
    y, ref = q(x, mask), block(x, mask)
    assert np.abs(y - ref).max() < 0.1 * np.abs(ref).max()


def test_bad_arguments():
    with pytest.raises(ValidationError, match="observer"):
        quantize_static_inputs(_mlp(), [np.ones((2, 16), np.float32)], observer="max")
    with pytest.raises(ValidationError, match="smooth_alpha"):
        quantize_static_inputs(_mlp(), [np.ones((2, 16), np.float32)], smooth_alpha=1.5)
    with pytest.raises(ValidationError, match="calibration"):
        quantize_static_inputs(_mlp(), [])
    with pytest.raises(ValidationError, match="smooth_layers"):
        quantize_static_inputs(_mlp(), [np.ones((2, 16), np.float32)], smooth_alpha=0.5, smooth_layers=["fc9"])


def test_only_the_named_layers_are_smoothed():
    x = np.random.default_rng(3).standard_normal((32, 16)).astype(np.float32)
    q, report = quantize_static_inputs(_mlp(), [x], smooth_alpha=0.5, smooth_layers=["fc1"])
    assert q["fc1"].weight.smooth is not None and q["fc2"].weight.smooth is None
    assert report["fc2"]["smooth_max"] is None


def test_smoothing_factors_are_floored_at_1e_5_and_float32():
    """m_j = max|X_j|^α / max|W_:,j|^(1−α), kept >= 1e-5 (a channel that is almost never active must not
    blow its weight column up by more than 1e5)."""
    m = smoothing_factors([1e-12, 4.0], [1.0, 1.0], 0.5)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, np.float32([1e-5, 2.0]))
    m = smoothing_factors([9.0], [1e8], 0.0)                       # α = 0: 1 / max|W| = 1e-8, floored
    np.testing.assert_array_equal(m, np.float32([1e-5]))
    # float32 maxima (what |W|.max() gives) are widened first: the powers are float64's, rounded once
    rng = np.random.default_rng(0)
    xm, wm = rng.uniform(0.01, 30, 64), rng.uniform(0.01, 3, 64).astype(np.float32)
    want = (xm ** 0.75 / wm.astype(np.float64) ** 0.25).astype(np.float32)
    np.testing.assert_array_equal(smoothing_factors(xm, wm, 0.75), want)


def test_weights_and_input_qparams_by_the_formulas():
    """Step 3 written out: s_w[o] = max|W[o]| / 127, q_w = round_half_even(W / s_w), z_w = 0; step 2 (minmax,
    uint8): the range [min(0, x_min), max(0, x_max)], s_x = (hi − lo) / 255, z_x = round(−lo / s_x); the report
    gives the bytes of the int8 codes and float32 scales against the float32 weight."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((40, 16)) + 0.5).astype(np.float32)
    model = _mlp()
    q, report = quantize_static_inputs(model, [x])
    w = model["fc1"].weight.to_dense().astype(np.float64)
    qw = q["fc1"].weight.weight
    s_w = np.float32(np.abs(w).max(axis=1) / 127)
    np.testing.assert_allclose(qw.qparams.scale, s_w, rtol=1e-7)
    np.testing.assert_array_equal(qw.qparams.zero_point, 0)
    np.testing.assert_array_equal(qw.data, np.rint(w / s_w.astype(np.float64)[:, None]))
    assert np.all(np.abs(qw.data).max(axis=1) == 127)
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    s_x = (hi - lo) / 255
    r = report["fc1"]
    assert r["input_scale"] == pytest.approx(s_x, rel=1e-6) and r["input_zero_point"] == round(-lo / s_x)
    assert r["smooth_max"] is None and q["fc1"].weight.smooth is None
    assert r["float_bytes"] == 24 * 16 * 4 and r["bytes"] == q["fc1"].weight.nbytes
    # fc2's input is the ReLU's output: its range starts at 0, so its zero point is 0
    h = np.maximum(model["fc1"](x), 0)
    assert report["fc2"]["input_zero_point"] == 0
    assert report["fc2"]["input_scale"] == pytest.approx(float(h.max()) / 255, rel=1e-6)
    # the float model is not modified
    assert isinstance(model["fc1"].weight, Dense)


def test_the_channel_maxima_are_of_the_absolute_values_over_every_batch():
    """max|X_j| over all batches: a channel whose outlier is negative, in the second batch only."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (32, 16)).astype(np.float32)
    x[20, 3] = -50.0
    model = _mlp()
    q, report = quantize_static_inputs(model, [x[:16], x[16:]], smooth_alpha=0.5)
    x_max = np.abs(x).max(axis=0).astype(np.float64)
    w_max = np.abs(model["fc1"].weight.to_dense()).max(axis=0).astype(np.float64)
    want = np.maximum(x_max ** 0.5 / w_max ** 0.5, 1e-5).astype(np.float32)     # in float64, rounded once
    np.testing.assert_array_equal(q["fc1"].weight.smooth, want)
    assert report["fc1"]["smooth_max"] == pytest.approx(float(want.max()), rel=1e-6)


def test_observer_arguments_reach_the_observers():
    """observer_kwargs go to every layer's observer: the 50th percentile clips far more than the 100th."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    narrow = quantize_static_inputs(_mlp(), [x], observer="percentile", observer_kwargs={"percentile": 60.0})[1]
    wide = quantize_static_inputs(_mlp(), [x], observer="percentile", observer_kwargs={"percentile": 100.0})[1]
    assert narrow["fc1"]["input_scale"] < 0.5 * wide["fc1"]["input_scale"]
    assert wide["fc1"]["input_scale"] == pytest.approx((x.max() - x.min()) / 255, rel=0.02)


@pytest.mark.parametrize("alpha", [0, 1, 0.0, 1.0])
def test_alpha_may_be_either_end_of_its_range(alpha):
    """α = 0 puts all of the range into x (m = 1 / max|W|), α = 1 into W (m = max|X|)."""
    x = np.random.default_rng(10).standard_normal((16, 16)).astype(np.float32)
    model = _mlp()
    q, _ = quantize_static_inputs(model, [x], smooth_alpha=alpha, smooth_layers=["fc1"])
    w_max = np.abs(model["fc1"].weight.to_dense()).max(axis=0).astype(np.float64)
    want = np.abs(x).max(axis=0).astype(np.float64) if alpha == 1 else 1 / w_max
    np.testing.assert_allclose(q["fc1"].weight.smooth, want.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("alpha", [True, "0.5", -0.1, 1.01, None])
def test_alpha_must_be_a_number_in_the_unit_interval(alpha):
    x = np.ones((2, 16), np.float32)
    if alpha is None:       # smooth_layers without an α to smooth them with
        with pytest.raises(ValidationError, match="smooth_layers"):
            quantize_static_inputs(_mlp(), [x], smooth_layers=["fc1"])
        return
    with pytest.raises(ValidationError, match="smooth_alpha"):
        quantize_static_inputs(_mlp(), [x], smooth_alpha=alpha)


def test_calibration_and_model_must_have_something_to_quantize():
    x = np.ones((2, 16), np.float32)
    with pytest.raises(ValidationError, match="calibration"):
        quantize_static_inputs(_mlp(), 5)                               # not an iterable of batches
    q, _ = quantize_static_inputs(_mlp(), [x])
    with pytest.raises(ValidationError, match="model"):
        quantize_static_inputs(q, [x])                                   # no float Linear left
    with pytest.raises(ValidationError, match="model"):
        quantize_static_inputs(Sequential(("relu", ReLU())), [x])
