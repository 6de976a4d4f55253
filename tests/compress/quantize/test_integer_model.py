"""Integer-only inference equals its fake-quant simulation, code for code.

The integer path runs refcomp.ops.matmul_integer / conv_integer (kernels when
registered) and fixed-point requantization; the simulation runs the float
refcomp.nn layers on dequantized values (refcomp.compress.quantize.simulate).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.integer_model import IntegerCompute, IntegerModel
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.simulate import simulate
from refcomp.errors import DTypeError, ValidationError
from refcomp.nn import AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Sequential, Tanh

from ..models_for_tests import small_cnn, small_mlp


def _same_codes(im, x):
    a = im.forward_int(im.quantize_input(x))
    b = simulate(im).forward_codes(x)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
    return a


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 1), stride=st.integers(1, 2),
       relu=st.booleans(), act=st.sampled_from(["uint8", "int8"]),
       observer=st.sampled_from(["minmax", "percentile"]), shift=st.floats(-1, 1))
def test_cnn_integer_equals_simulation(seed, padding, stride, relu, act, observer, shift):
    rng = np.random.default_rng(seed)
    model = small_cnn(seed, padding=padding, stride=stride, relu_after_conv=relu)
    calib = (rng.normal(size=(40, 1, 10, 10)) + shift).astype(np.float32)
    im = quantize_static(model, calib, observer=observer, activation_dtype=act)
    # fresh inputs, some outside the calibrated range: saturation must agree too
    x = (rng.normal(size=(16, 1, 10, 10)) * 2 + shift).astype(np.float32)
    _same_codes(im, x)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), act=st.sampled_from(["uint8", "int8"]), scale=st.floats(0.01, 100))
def test_mlp_integer_equals_simulation(seed, act, scale):
    rng = np.random.default_rng(seed)
    model = small_mlp(seed)
    calib = (rng.normal(size=(64, 12)) * scale).astype(np.float32)
    im = quantize_static(model, calib, activation_dtype=act)
    _same_codes(im, (rng.normal(size=(32, 12)) * scale * 1.5).astype(np.float32))


def test_weights_on_grid_and_fused_relu_clamps():
    rng = np.random.default_rng(0)
    model = small_cnn(1)
    im = quantize_static(model, rng.normal(size=(40, 1, 10, 10)).astype(np.float32))
    computes = [s for s in im.stages if isinstance(s, IntegerCompute)]
    assert [s.name for s in computes] == ["conv1", "conv2", "fc"]
    for s, float_layer in zip(computes, [model["conv1"], model["conv2"], model["fc"]]):
        w = float_layer.weight.to_dense()
        assert s.weight.dtype == np.int8 and s.weight.min() >= -127 and s.weight.max() <= 127
        # the largest |w| of every channel lands on ±127; ŵ = q·s_w is within s_w/2 of w
        assert np.all(np.abs(s.weight.reshape(len(w), -1)).max(axis=1) == 127)
        w_hat = s.weight.astype(np.float64) * s.weight_scale.reshape((-1,) + (1,) * (w.ndim - 1))
        assert np.all(np.abs(w_hat - w) <= s.weight_scale.reshape((-1,) + (1,) * (w.ndim - 1)) / 2 * (1 + 1e-6))
        assert s.bias.dtype == np.int32
        unit = np.float64(s.x_qparams.scale) * s.weight_scale.astype(np.float64)
        np.testing.assert_array_equal(s.bias, np.rint(float_layer.bias.data / unit))
    # conv2 has a fused ReLU: its output codes never go below the zero point
    q = im.quantize_input(rng.normal(size=(8, 1, 10, 10)).astype(np.float32))
    for s in im.stages:
        q = s.forward_int(q)
        if s.name == "conv2":
            assert q.min() >= s.y_qparams.zero_point


def test_integer_model_close_to_float():
    rng = np.random.default_rng(3)
    model = small_mlp(3)
    calib = rng.normal(size=(256, 12)).astype(np.float32)
    im = quantize_static(model, calib)
    y = model.forward(calib)
    err = np.abs(im.forward(calib) - y).max()
    assert err < 0.05 * np.abs(y).max()


def test_batchnorm_is_folded_first():
    rng = np.random.default_rng(0)
    model = Sequential(("conv", Conv2d(1, 3, 3, rng=rng)), ("bn", BatchNorm2d(3)), ("flatten", Flatten()),
                       ("fc", Linear(3 * 8 * 8, 4, rng=rng)))
    bn = model["bn"]
    bn.running_mean[...] = [0.1, -0.2, 0.3]
    bn.running_var[...] = [0.5, 2.0, 1.5]
    calib = rng.normal(size=(32, 1, 10, 10)).astype(np.float32)
    im = quantize_static(model, calib)
    assert [s.name for s in im.stages] == ["conv", "flatten", "fc"]
    _same_codes(im, calib)


@pytest.mark.parametrize("layer", [AvgPool2d(2), Tanh()])
def test_layers_without_exact_integer_stage_raise(layer):
    rng = np.random.default_rng(0)
    model = Sequential(("conv", Conv2d(1, 2, 3, rng=rng)), ("x", layer), ("flatten", Flatten()))
    with pytest.raises(ValidationError, match="model layer 'x'"):
        quantize_static(model, rng.normal(size=(4, 1, 8, 8)).astype(np.float32))


def test_bad_arguments():
    model = small_mlp(0)
    with pytest.raises(ValidationError, match="calibration_x"):
        quantize_static(model, np.array([[np.nan] * 12], np.float32))
    with pytest.raises(ValidationError, match="activation_dtype"):
        quantize_static(model, np.zeros((4, 12), np.float32), activation_dtype="int16")
    with pytest.raises(ValidationError, match="observer"):
        quantize_static(model, np.zeros((4, 12), np.float32), observer="median")
    im = quantize_static(model, np.ones((4, 12), np.float32))
    with pytest.raises((ValidationError, DTypeError)):
        im.forward_int(np.zeros((2, 12), np.int8))          # codes of the wrong dtype (input is uint8)
    with pytest.raises(ValidationError):
        im.backward(np.zeros((2, 4)))
    assert isinstance(im, IntegerModel)


@pytest.fixture(scope="module")
def lenet5_short(mnist_dir):
    """LeNet-5 trained one epoch on 2,000 images: enough to make real activations."""
    from refcomp.datasets import mnist_split
    from refcomp.models import lenet5
    from refcomp.nn import train

    (tr, te) = mnist_split(mnist_dir)
    m = lenet5(0)
    train(m, (tr[0][:2000], tr[1][:2000]), epochs=1, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    return m, tr, te


def test_lenet5_integer_equals_simulation_on_mnist_sample(lenet5_short):
    from refcomp.nn import evaluate

    m, tr, te = lenet5_short
    im = quantize_static(m, tr[0][:500])
    x, y = te[0][:300], te[1][:300]
    _same_codes(im, x)
    assert abs(evaluate(im, (x, y))["accuracy"] - evaluate(m, (x, y))["accuracy"]) <= 0.02


@pytest.mark.slow
def test_lenet5_integer_equals_simulation_every_test_image(mnist_dir):
    """The issue's criterion on the trained LeNet-5 (15 epochs, about 3 min): all 2,000 images
    give identical codes, and integer accuracy is within 0.3 pp of float."""
    from refcomp.datasets import mnist_split
    from refcomp.models import lenet5
    from refcomp.nn import evaluate, train

    (tr, te) = mnist_split(mnist_dir)
    m = lenet5(0)
    train(m, tr, epochs=15, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    im = quantize_static(m, tr[0][:1000])
    _same_codes(im, te[0])
    assert abs(evaluate(im, te)["accuracy"] - evaluate(m, te)["accuracy"]) <= 0.003


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 2), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), act=st.sampled_from(["uint8", "int8"]))
def test_conv_by_matmul_equals_conv_integer(seed, padding, stride, dilation, act):
    """The im2col + matmul_integer route gives exactly ConvInteger's accumulators."""
    import dataclasses

    rng = np.random.default_rng(seed)
    model = Sequential(("conv", Conv2d(2, 3, 3, stride=stride, padding=padding, dilation=dilation, rng=rng)),
                       ("flatten", Flatten()))
    im = quantize_static(model, rng.normal(size=(8, 2, 9, 9)).astype(np.float32), activation_dtype=act)
    s = im.stages[0]
    q = im.quantize_input((rng.normal(size=(5, 2, 9, 9)) * 2).astype(np.float32))
    ref = dataclasses.replace(s, conv_impl="conv_integer")
    np.testing.assert_array_equal(s.accumulate(q), ref.accumulate(q))
