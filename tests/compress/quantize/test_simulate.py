"""simulate: the float64 fake-quant simulation of an integer-only model gives its output codes.

The codes are checked against integer_oracle.oracle_codes (the formulas written out in Python
integers and fractions, with a direct convolution), which shares no code with the simulation; the
geometry of the convolution (padding, stride, dilation, groups), a bias-free layer, a ReLU that is
not fused, Dropout and saturating inputs each change the codes when the simulation gets them wrong.
"""

import numpy as np
import pytest

from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.simulate import simulate
from refcomp.errors import OverflowRiskError, ValidationError
from refcomp.nn import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tanh

from ..models_for_tests import small_cnn, small_mlp
from .integer_oracle import oracle_codes


def _check(im, x):
    got = simulate(im, x)
    assert got.dtype == im["model"].layers[list(im["model"].layers)[-1]].output_qparams.dtype.np_dtype
    np.testing.assert_array_equal(got.astype(np.int64), oracle_codes(im, x))
    return got


@pytest.mark.parametrize("seed, act", [(0, "uint8"), (1, "int8")])
def test_mlp_codes_equal_the_formulas(seed, act):
    """Linear + fused ReLU layers; the inputs are 1.5× wider than the calibration set, so the input
    quantizer and the requantizations saturate too."""
    rng = np.random.default_rng(seed)
    im, _ = quantize_static(small_mlp(seed), rng.normal(size=(64, 12)).astype(np.float32), activation_dtype=act)
    _check(im, (rng.normal(size=(24, 12)) * 1.5).astype(np.float32))


@pytest.mark.parametrize("act", ["uint8", "int8"])
def test_cnn_codes_equal_the_formulas(act):
    rng = np.random.default_rng(2)
    im, _ = quantize_static(small_cnn(2), rng.normal(size=(40, 1, 10, 10)).astype(np.float32), activation_dtype=act)
    _check(im, (rng.normal(size=(6, 1, 10, 10)) * 1.5).astype(np.float32))


@pytest.mark.parametrize("stride, padding, dilation, groups", [((2, 1), (1, 2), (1, 1), 1), ((1, 1), (0, 1), (2, 1), 2),
                                                                ((1, 2), (1, 0), (1, 2), 1)])
def test_conv_geometry_and_a_bias_free_layer(stride, padding, dilation, groups):
    """Each of stride, padding, dilation and groups is uneven between height and width, so that a
    simulation reading one for another (or dropping one) gives other shapes or other sums."""
    rng = np.random.default_rng(3)
    model = Sequential(("conv", Conv2d(2, 4, (3, 2), stride=stride, padding=padding, dilation=dilation, groups=groups,
                                       rng=rng)),
                       ("flatten", Flatten()))
    n_flat = model.forward(np.zeros((1, 2, 9, 8), np.float32)).shape[1]
    model.add("fc", Linear(n_flat, 3, bias=False, rng=rng))
    im, _ = quantize_static(model, rng.normal(size=(16, 2, 9, 8)).astype(np.float32))
    assert im["model"]["fc"].bias is None
    _check(im, (rng.normal(size=(4, 2, 9, 8)) * 1.5).astype(np.float32))


@pytest.mark.parametrize("act", ["uint8", "int8"])
def test_a_relu_after_pooling_clamps_at_zero_and_dropout_is_the_identity(act):
    """conv → max-pool → ReLU: the ReLU is not fused (it follows the pooling), so the simulation's
    float ReLU max(x̂, 0) must clamp the pooled values, which are negative and positive, and
    non-integer multiples of nothing in particular (scales below 1)."""
    rng = np.random.default_rng(4)
    model = Sequential(("conv", Conv2d(1, 3, 3, rng=rng)), ("pool", MaxPool2d(2)), ("relu", ReLU()),
                       ("drop", Dropout(0.5)), ("flatten", Flatten()), ("fc", Linear(3 * 4 * 4, 4, rng=rng)))
    calib = rng.normal(size=(32, 1, 10, 10)).astype(np.float32)
    im, _ = quantize_static(model, calib, activation_dtype=act)
    assert [type(m).__name__ for m in im["model"]] == ["Conv2d", "MaxPool2d", "ReLU", "Dropout", "Flatten", "Linear"]
    pooled = model["pool"].forward(model["conv"].forward(calib))
    assert pooled.min() < 0 < pooled.max() and float(im["model"]["conv"].output_qparams.scale) < 1
    _check(im, calib[:8])


def test_only_integer_only_models_are_simulated():
    rng = np.random.default_rng(5)
    model = small_mlp(5)
    with pytest.raises(ValidationError, match="model"):
        simulate(model, np.zeros((2, 12), np.float32))                     # a float model: no codes
    im, _ = quantize_static(model, rng.normal(size=(16, 12)).astype(np.float32))
    no_exit = Sequential(("quantize", im["quantize"]), ("model", im["model"]))
    with pytest.raises(ValidationError, match="model"):
        simulate(no_exit, np.zeros((2, 12), np.float32))                    # no DequantizeLinear at the end
    im["model"].add("tanh", Tanh())
    with pytest.raises(ValidationError, match="model layer 'model.tanh'"):
        simulate(im, np.zeros((2, 12), np.float32))                         # no integer stage for a Tanh
    head_only = Sequential(("model", im["model"]), ("dequantize", im["dequantize"]))
    with pytest.raises(ValidationError, match="model"):
        simulate(head_only, np.zeros((2, 12), np.float32))                  # no QuantizeLinear at the start


def test_integer_inputs_are_read_as_float32():
    """x is taken as float32 whatever its type (pixel values as ints): the same codes as its float32 copy."""
    rng = np.random.default_rng(6)
    im, _ = quantize_static(small_mlp(6), (rng.normal(size=(32, 12)) * 3).astype(np.float32))
    x = rng.integers(-4, 5, size=(8, 12))
    np.testing.assert_array_equal(simulate(im, x), simulate(im, x.astype(np.float32)))
    np.testing.assert_array_equal(simulate(im, x).astype(np.int64), oracle_codes(im, x.astype(np.float32)))


def test_a_bias_beyond_int32_names_its_layer():
    """round(b / (s_x·s_w)) must fit int32 (eq. I2): the error names the dotted layer whose bias does not."""
    rng = np.random.default_rng(7)
    im, _ = quantize_static(small_mlp(7), rng.normal(size=(32, 12)).astype(np.float32))
    im["model"]["fc1"].bias.data[0] = 1e12
    with pytest.raises(OverflowRiskError, match=r"model\.fc1\.bias"):
        simulate(im, np.zeros((2, 12), np.float32))


def test_an_accumulator_off_the_integers_is_refused(monkeypatch):
    """Eq. (S1) recovers the integer accumulator only when y / (s_x·s_w) is within float64 rounding of an
    integer; a distance above 1e-3 of a step means the float layer did not compute the integer one, and the
    simulation refuses to round it. Here the float twin of the first layer adds 0.002 steps to its output."""
    import refcomp.compress.quantize.simulate as sim

    rng = np.random.default_rng(8)
    im, _ = quantize_static(small_mlp(8), rng.normal(size=(32, 12)).astype(np.float32))
    s_x = np.float64(np.float32(im["quantize"].qparams.scale))
    float_layer = sim._float_layer

    def off_by(steps):
        def twin(layer, s_w, w_codes, q_b):
            t = float_layer(layer, s_w, w_codes, q_b)
            if layer is im["model"]["fc0"]:
                forward = t.forward
                t.forward = lambda x: forward(x) + steps * s_x * s_w.astype(np.float64)
            return t
        return twin

    x = rng.normal(size=(4, 12)).astype(np.float32)
    monkeypatch.setattr(sim, "_float_layer", off_by(0.0009))      # within the tolerance: rounded, accepted
    simulate(im, x)
    monkeypatch.setattr(sim, "_float_layer", off_by(0.002))
    with pytest.raises(ValidationError, match="model.fc0 simulation"):
        simulate(im, x)
