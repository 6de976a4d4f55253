"""quantize_static_inputs: SmoothQuant's factors and invariance, calibration on the smoothed inputs, whole graphs."""

import numpy as np
import pytest

from refcomp.compress.quantize.static_inputs import quantize_static_inputs, smoothing_factors
from refcomp.errors import ValidationError
from refcomp.formats import StaticQuantized
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
