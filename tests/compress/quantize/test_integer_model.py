"""Integer-only inference equals its fake-quant simulation, code for code.

The integer path runs refcomp.ops.integer_linear (matmul_integer / conv_integer,
kernels when registered, and fixed-point requantization) inside the model's own
layers; the simulation runs float refcomp.nn layers on dequantized values
(refcomp.compress.quantize.simulate). The simulation shares the requantization
code with the integer path, so the MLP is also checked against the formulas
written out in Python integers (integer_oracle.oracle_codes), which share no code with it.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.integer_model import integer_layers, output_codes
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.simulate import simulate
from refcomp.errors import DTypeError, ValidationError
from refcomp.formats import Dense, QTensor
from refcomp.nn import AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential, Tanh
from refcomp.nn.layers import DequantizeLinear, QuantizeLinear
from refcomp.ops import conv_integer
from refcomp.ops.integer_linear import requantization_params, requantize_accumulators

from ..models_for_tests import small_cnn, small_mlp
from .integer_oracle import oracle_codes


def _same_codes(im, x):
    a = output_codes(im, x)
    b = simulate(im, x)
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
    im, _ = quantize_static(model, calib, observer=observer, activation_dtype=act)
    # fresh inputs, some outside the calibrated range: saturation must agree too
    x = (rng.normal(size=(16, 1, 10, 10)) * 2 + shift).astype(np.float32)
    _same_codes(im, x)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), act=st.sampled_from(["uint8", "int8"]), scale=st.floats(0.01, 100))
def test_mlp_integer_equals_simulation(seed, act, scale):
    rng = np.random.default_rng(seed)
    model = small_mlp(seed)
    calib = (rng.normal(size=(64, 12)) * scale).astype(np.float32)
    im, _ = quantize_static(model, calib, activation_dtype=act)
    _same_codes(im, (rng.normal(size=(32, 12)) * scale * 1.5).astype(np.float32))


def test_weights_on_grid_and_fused_relu_clamps():
    rng = np.random.default_rng(0)
    model = small_cnn(1)
    im, _ = quantize_static(model, rng.normal(size=(40, 1, 10, 10)).astype(np.float32))
    computes = integer_layers(im)
    assert [n for n, _ in computes] == ["model.conv1", "model.conv2", "model.fc"]
    # the model is the float model with its weights swapped: same layer types, in the same order
    assert [type(m).__name__ for m in im["model"]] == [type(m).__name__ for m in model]
    for (_, s), float_layer in zip(computes, [model["conv1"], model["conv2"], model["fc"]]):
        w = float_layer.weight.to_dense()
        assert isinstance(s.weight, QTensor)
        codes, s_w = s.weight.data, np.asarray(s.weight.qparams.scale, np.float32)
        assert codes.dtype == np.int8 and codes.min() >= -127 and codes.max() <= 127
        assert np.all(s.weight.qparams.zero_point == 0) and s.weight.qparams.axis == 0
        # the largest |w| of every channel lands on ±127; ŵ = q·s_w is within s_w/2 of w
        assert np.all(np.abs(codes.reshape(len(w), -1)).max(axis=1) == 127)
        w_hat = codes.astype(np.float64) * s_w.reshape((-1,) + (1,) * (w.ndim - 1))
        assert np.all(np.abs(w_hat - w) <= s_w.reshape((-1,) + (1,) * (w.ndim - 1)) / 2 * (1 + 1e-6))
        np.testing.assert_array_equal(s.bias.data, float_layer.bias.data)
    # the int32 bias of eq. (I2), written out: round(b / (s_x·s_w)), s_x the scale of conv1's input codes
    conv1 = im["model"]["conv1"]
    s_x = np.float64(np.asarray(im["quantize"].qparams.scale, np.float32))
    unit = s_x * np.asarray(conv1.weight.qparams.scale, np.float32).astype(np.float64)
    q_b, _, _ = requantization_params(
        im["quantize"].qparams.scale, conv1.weight.qparams.scale, conv1.output_qparams.scale, conv1.bias.data)
    assert q_b.dtype == np.int32
    np.testing.assert_array_equal(q_b, np.rint(model["conv1"].bias.data.astype(np.float64) / unit))
    # conv2 is followed by a ReLU: on codes it is the clamp at the zero point
    seen = {}
    im["model"]["relu2"].register_forward_hook(lambda m, inputs, y: seen.update(x=inputs[0], y=y))
    im.forward(rng.normal(size=(8, 1, 10, 10)).astype(np.float32))
    z = im["model"]["conv2"].output_qparams.zero_point
    assert seen["y"].data.min() >= z
    np.testing.assert_array_equal(seen["y"].data, np.maximum(seen["x"].data, z))


def test_integer_model_close_to_float():
    rng = np.random.default_rng(3)
    model = small_mlp(3)
    calib = rng.normal(size=(256, 12)).astype(np.float32)
    im, _ = quantize_static(model, calib)
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
    im, _ = quantize_static(model, calib)
    assert list(im["model"].layers) == ["conv", "flatten", "fc"]
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
    im, _ = quantize_static(model, np.ones((4, 12), np.float32))
    with pytest.raises(DTypeError, match="x"):
        im.forward(np.zeros((2, 12), np.int8))              # codes where the model quantizes a float input
    with pytest.raises(ValidationError):
        im.backward(np.zeros((2, 4)))
    assert isinstance(im["quantize"], QuantizeLinear) and isinstance(im["dequantize"], DequantizeLinear)
    fc = im["model"]["fc0"]
    codes = QTensor(np.zeros((2, 12), np.uint8), im["quantize"].qparams)
    float_fc = model["fc0"]
    with pytest.raises(ValidationError, match="weight"):
        float_fc.forward(codes)                             # codes into a layer whose weight is float
    fc.output_qparams, saved = None, fc.output_qparams
    with pytest.raises(ValidationError, match="output_qparams"):
        fc.forward(codes)                                   # codes into a layer that has no output QParams
    fc.output_qparams = saved
    with pytest.raises(ValidationError, match="model"):
        simulate(model, np.zeros((2, 12), np.float32))      # a float model has no codes to simulate


@pytest.fixture(scope="module")
def lenet5_short(mnist_dir):
    """LeNet-5 trained one epoch on 2,000 images: enough to make real activations."""
    from refcomp.datasets import mnist_fixture
    from refcomp.models import lenet5
    from refcomp.nn import train

    (tr, te) = mnist_fixture(mnist_dir)
    m = lenet5(0)
    train(m, (tr[0][:2000], tr[1][:2000]), epochs=1, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    return m, tr, te


def test_lenet5_integer_equals_simulation_on_mnist_sample(lenet5_short):
    from refcomp.nn import evaluate

    m, tr, te = lenet5_short
    im, _ = quantize_static(m, tr[0][:500])
    x, y = te[0][:300], te[1][:300]
    _same_codes(im, x)
    assert abs(evaluate(im, (x, y))["accuracy"] - evaluate(m, (x, y))["accuracy"]) <= 0.02


@pytest.mark.parametrize("epochs", [pytest.param(15, marks=pytest.mark.slow), 3])
def test_lenet5_integer_equals_simulation_every_test_image(mnist_dir, epochs):
    """The headline on a trained LeNet-5 (15 epochs: slow; 3 epochs in CI, about a minute): all
    2,000 test images give identical codes, and integer accuracy is within 0.3 pp of float."""
    from refcomp.datasets import mnist_fixture
    from refcomp.models import lenet5
    from refcomp.nn import evaluate, train

    (tr, te) = mnist_fixture(mnist_dir)
    m = lenet5(0)
    train(m, tr, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, rng=0, progress=False)
    im, _ = quantize_static(m, tr[0][:1000])
    _same_codes(im, te[0])
    assert abs(evaluate(im, te)["accuracy"] - evaluate(m, te)["accuracy"]) <= 0.003


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 2), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), act=st.sampled_from(["uint8", "int8"]))
def test_conv_by_matmul_equals_conv_integer(seed, padding, stride, dilation, act):
    """The im2col + matmul_integer route gives exactly ConvInteger's accumulators, requantized the same way."""
    rng = np.random.default_rng(seed)
    model = Sequential(("conv", Conv2d(2, 3, 3, stride=stride, padding=padding, dilation=dilation, rng=rng)),
                       ("flatten", Flatten()))
    im, _ = quantize_static(model, rng.normal(size=(8, 2, 9, 9)).astype(np.float32), activation_dtype=act)
    conv = im["model"]["conv"]
    q = im["quantize"].forward((rng.normal(size=(5, 2, 9, 9)) * 2).astype(np.float32))
    x_qp, y_qp = q.qparams, conv.output_qparams
    q_b, m, sh = requantization_params(x_qp.scale, conv.weight.qparams.scale, y_qp.scale, conv.bias.data)
    acc = conv_integer(q.data, conv.weight.data, x_qp.zero_point.reshape(()), None, strides=[stride] * 2,
                       pads=[padding] * 4, dilations=[dilation] * 2)
    acc = (acc.astype(np.int64) + q_b.reshape(-1, 1, 1)).astype(np.int32)
    ref = requantize_accumulators(acc, m, sh, y_qp.zero_point, y_dtype=y_qp.dtype)
    np.testing.assert_array_equal(conv.forward(q).data, ref)


def test_per_layer_islands_on_a_residual_graph():
    """integer_only=False: every convolution of a ResNet block (BatchNorm folded) runs on codes between its
    own Quantize / Dequantize; the Add and ReLUs stay float. Each island's codes are the float layer's output
    on the same dequantized values, quantized with its output QParams, within one code (fixed-point vs float
    rounding of the requantization); the block's output is near the float one."""
    from refcomp.nn.blocks import residual_block
    from refcomp.quant import dequantize, quantize

    rng = np.random.default_rng(4)
    block = residual_block(3, 4, stride=2, rng=0)
    x = rng.normal(size=(32, 3, 8, 8)).astype(np.float32)
    qm, report = quantize_static(block, x, integer_only=False)
    assert list(qm.nodes) == ["conv1", "relu1", "conv2", "skip_conv", "add", "relu2"]
    for name in ("conv1", "conv2", "skip_conv"):
        island = qm[name]
        assert list(island.layers) == ["quantize", "layer", "dequantize"]
        assert isinstance(island["layer"].weight, QTensor) and island["layer"].output_qparams is not None
        assert report["activation_qparams"][name]["output"] is island["layer"].output_qparams
    seen = {}
    qm["conv2"]["layer"].register_forward_hook(lambda m, inputs, y: seen.update(x=inputs[0], y=y))
    want = block.eval().forward(x)
    got = qm.forward(x)
    assert np.abs(got - want).max() < 0.03 * np.abs(want).max()
    layer = qm["conv2"]["layer"]
    twin = Conv2d(4, 4, 3, padding=1, rng=0)
    twin.weight = Dense(layer.weight.to_dense())
    twin.bias = layer.bias
    ref = quantize(twin.forward(dequantize(seen["x"].data, seen["x"].qparams)), layer.output_qparams)
    assert np.abs(ref.astype(np.int64) - seen["y"].data.astype(np.int64)).max() <= 1


def test_per_layer_islands_accept_layers_without_an_integer_stage():
    rng = np.random.default_rng(5)
    model = Sequential(("conv", Conv2d(1, 2, 3, rng=rng)), ("tanh", Tanh()), ("pool", AvgPool2d(2)),
                       ("flatten", Flatten()), ("fc", Linear(2 * 3 * 3, 3, rng=rng)))
    x = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
    qm, _ = quantize_static(model, x, integer_only=False, activation_dtype="int8")
    assert np.abs(qm.forward(x) - model.forward(x)).max() < 0.05 * np.abs(model.forward(x)).max()
    with pytest.raises(ValidationError, match="equalize"):
        quantize_static(model, x, integer_only=False, equalize=True)
    with pytest.raises(ValidationError, match="integer_only"):
        quantize_static(model, x, integer_only="no")


@pytest.mark.parametrize("integer_only", [True, False])
def test_quantized_models_save_and_load_bit_for_bit(tmp_path, integer_only):
    """A quantized model is a model: its QTensor weights, activation QParams and Quantize / Dequantize layers
    go through the model file, and the loaded model gives the same outputs bit for bit."""
    from refcomp.io import load_model, save_model

    rng = np.random.default_rng(6)
    model = small_cnn(6)
    x = rng.normal(size=(16, 1, 10, 10)).astype(np.float32)
    im, _ = quantize_static(model, x, activation_dtype="int8", integer_only=integer_only)
    for suffix in (".safetensors", ".npz", ".rcm"):
        back = load_model(save_model(im, tmp_path / f"m{suffix}"))
        assert back.forward(x).tobytes() == im.forward(x).tobytes()
        got = {n: m.output_qparams for n, m in integer_layers(back)}
        assert got == {n: m.output_qparams for n, m in integer_layers(im)} and len(got) == 3


def test_integer_model_builders_name_what_is_missing():
    from refcomp.compress.quantize.integer_model import integer_model, qdq_model
    from refcomp.quant import QParams

    model = small_mlp(1)
    qp = QParams(np.float32(0.1), np.array(0, np.uint8), "uint8")
    codes = (np.zeros((16, 12), np.int8), np.ones(16, np.float32))
    with pytest.raises(ValidationError, match="weights"):
        integer_model(model, {"input": qp, "fc0": qp}, {"fc0": codes})       # fc1, fc2 have no codes
    with pytest.raises(ValidationError, match="weights"):
        qdq_model(model, {"relu0": qp}, {"relu0": qp}, {"relu0": codes})       # not a Conv2d / Linear


# ---------------------------------------------- an oracle that shares no code with the integer path
# (integer_oracle.oracle_codes: the formulas written out in Python integers)

@pytest.mark.parametrize("seed, act", [(0, "uint8"), (1, "int8"), (2, "uint8")])
def test_mlp_integer_equals_the_formulas_written_out(seed, act):
    """The integer MLP against oracle_codes (no refcomp op in it): the simulation shares the
    requantization code with the integer path, so only this catches a bug common to both."""
    rng = np.random.default_rng(seed)
    model = small_mlp(seed)
    im, _ = quantize_static(model, rng.normal(size=(64, 12)).astype(np.float32), activation_dtype=act)
    x = (rng.normal(size=(24, 12)) * 1.5).astype(np.float32)
    np.testing.assert_array_equal(output_codes(im, x).astype(np.int64), oracle_codes(im, x))


@pytest.mark.parametrize("seed, act", [(0, "uint8"), (1, "int8")])
def test_cnn_integer_equals_the_formulas_written_out(seed, act):
    """The integer CNN (conv, ReLU, max-pool, conv, ReLU, flatten, linear) against oracle_codes,
    whose convolution is the direct sum of conv_reference (no im2col, no refcomp op)."""
    rng = np.random.default_rng(seed)
    model = small_cnn(seed)
    im, _ = quantize_static(model, rng.normal(size=(40, 1, 10, 10)).astype(np.float32), activation_dtype=act)
    x = (rng.normal(size=(6, 1, 10, 10)) * 1.5).astype(np.float32)
    np.testing.assert_array_equal(output_codes(im, x).astype(np.int64), oracle_codes(im, x))


# ---------------------------------------------- the builders, the byte count and the output hook, by hand

def _symmetric_int8(w):
    """Per-output-channel symmetric codes in [-127, 127] of w and their scales max|w_o| / 127, written out
    (int64 codes and float64 scales: the builders store them as int8 and float32)."""
    s = np.abs(w.reshape(len(w), -1)).max(axis=1) / 127.0
    return np.rint(w / s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.int64), s


def test_integer_model_from_hand_made_tables_equals_the_formulas_written_out():
    """integer_model alone (no PTQ): uint8 input codes, the given int8 weight codes with float32 scales per
    output channel (z_w = 0), each compute stage's output QParams, and a bias table that replaces a bias and
    gives a bias-free layer one; its codes are oracle_codes' (formulas in Python integers). The float
    model is not modified, and the integer one is ``quantize / model / dequantize``."""
    from refcomp.compress.quantize.integer_model import integer_model
    from refcomp.quant import QParams

    rng = np.random.default_rng(7)
    model = Sequential(("fc0", Linear(6, 5, rng=rng)), ("fc1", Linear(5, 3, bias=False, rng=rng)))
    w0 = model["fc0"].weight.to_dense().copy()
    weights = {n: _symmetric_int8(model[n].weight.to_dense().astype(np.float64)) for n in ("fc0", "fc1")}
    qparams = {"input": QParams(np.float32(0.02), np.array(128, np.uint8), "uint8"),
               "fc0": QParams(np.float32(0.05), np.array(120, np.uint8), "uint8"),
               "fc1": QParams(np.float32(0.03), np.array(-3, np.int8), "int8")}
    biases = {"fc1": np.array([0.25, -0.5, 0.125])}                      # float64 in, float32 inside
    im = integer_model(model, qparams, weights, biases=biases)
    assert list(im.layers) == ["quantize", "model", "dequantize"]
    fc0, fc1 = im["model"]["fc0"], im["model"]["fc1"]
    assert fc1.bias.data.dtype == np.float32 and fc1.bias.data.tolist() == [0.25, -0.5, 0.125]
    np.testing.assert_array_equal(fc0.bias.data, model["fc0"].bias.data)
    for layer, (codes, s) in ((fc0, weights["fc0"]), (fc1, weights["fc1"])):
        np.testing.assert_array_equal(layer.weight.data, codes)
        assert layer.weight.data.dtype == np.int8 and layer.weight.qparams.axis == 0
        assert np.asarray(layer.weight.qparams.scale).dtype == np.float32
        np.testing.assert_array_equal(layer.weight.qparams.scale, s.astype(np.float32))
        assert np.all(np.asarray(layer.weight.qparams.zero_point) == 0)
    assert fc0.output_qparams is qparams["fc0"] and fc1.output_qparams is qparams["fc1"]
    # scales of another float dtype or shape, holding one value per output channel: float32 (O,) all the same
    codes0, s0 = weights["fc0"]
    other = integer_model(model, qparams, {"fc0": (codes0, s0.astype(np.float16).reshape(-1, 1)), "fc1": weights["fc1"]})
    scale = other["model"]["fc0"].weight.qparams.scale
    assert scale.dtype == np.float32 and scale.shape == (5,)
    np.testing.assert_array_equal(scale, s0.astype(np.float16).astype(np.float32))
    x = rng.normal(size=(9, 6)).astype(np.float32)
    np.testing.assert_array_equal(output_codes(im, x).astype(np.int64), oracle_codes(im, x))
    # the float model keeps its float weights and its missing bias
    assert model["fc1"].bias is None and isinstance(model["fc0"].weight, Dense)
    np.testing.assert_array_equal(model["fc0"].weight.to_dense(), w0)


def test_integer_model_names_the_missing_table():
    from refcomp.compress.quantize.integer_model import integer_model
    from refcomp.quant import QParams

    model = small_mlp(1)
    qp = QParams(np.float32(0.1), np.array(0, np.uint8), "uint8")
    codes = {n: (np.zeros(model[n].weight.shape, np.int8), np.ones(model[n].weight.shape[0], np.float32))
             for n in ("fc0", "fc1", "fc2")}
    with pytest.raises(ValidationError, match="^weights: "):
        integer_model(model, {"input": qp, "fc0": qp, "fc1": qp, "fc2": qp}, {"fc0": codes["fc0"]})
    with pytest.raises(ValidationError, match="^qparams: "):
        integer_model(model, {"input": qp, "fc0": qp}, codes)


def test_qdq_model_wraps_only_the_named_layers_and_refuses_the_root():
    from refcomp.compress.quantize.integer_model import integer_layers, qdq_model
    from refcomp.quant import QParams

    model = small_mlp(2)
    qp = QParams(np.float32(0.1), np.array(0, np.uint8), "uint8")
    codes, s = _symmetric_int8(model["fc1"].weight.to_dense().astype(np.float64))
    qm = qdq_model(model, {"fc1": qp}, {"fc1": qp}, {"fc1": (codes, s)})
    assert list(qm["fc1"].layers) == ["quantize", "layer", "dequantize"]
    assert [n for n, _ in integer_layers(qm)] == ["fc1.layer"]
    assert isinstance(model["fc1"].weight, Dense)                      # the model is not modified
    lone = Linear(3, 2, rng=0)                                          # the model itself is no named layer
    with pytest.raises(ValidationError, match="^weights: "):
        qdq_model(lone, {"": qp}, {"": qp}, {"": _symmetric_int8(lone.weight.to_dense().astype(np.float64))})


@pytest.mark.parametrize("requantize", ["fixed_point", "float"])
def test_integer_bytes_counts_codes_int32_biases_and_the_requantization(requantize):
    """One byte per int8 code, an int32 bias per output channel (bias-free layers: none), and per output
    channel an int32 multiplier and shift (8 bytes, eq. I3) or one float32 M (4 bytes, I3')."""
    from refcomp.compress.quantize.integer_model import integer_bytes

    rng = np.random.default_rng(8)
    model = Sequential(("fc0", Linear(12, 16, rng=rng)), ("relu0", ReLU()), ("fc1", Linear(16, 4, bias=False, rng=rng)))
    im, _ = quantize_static(model, rng.normal(size=(32, 12)).astype(np.float32), requantize=requantize)
    per_channel = 4 if requantize == "float" else 8
    assert integer_bytes(im) == (12 * 16 + per_channel * 16 + 4 * 16) + (16 * 4 + per_channel * 4)
    assert type(integer_bytes(im)) is int


def test_output_codes_reads_the_one_dequantize_input_of_a_float64_batch_too():
    from refcomp.compress.quantize.integer_model import qdq_model
    from refcomp.quant import QParams

    rng = np.random.default_rng(9)
    model = small_mlp(9)
    im, _ = quantize_static(model, rng.normal(size=(32, 12)).astype(np.float32))
    x = rng.normal(size=(5, 12))
    np.testing.assert_array_equal(output_codes(im, x), output_codes(im, x.astype(np.float32)))
    np.testing.assert_array_equal(output_codes(im, x).astype(np.int64), oracle_codes(im, x.astype(np.float32)))
    with pytest.raises(ValidationError, match="^model: "):
        output_codes(model, x)                                         # a float model: no DequantizeLinear
    qp = QParams(np.float32(0.1), np.array(0, np.uint8), "uint8")
    two = qdq_model(model, {"fc0": qp, "fc1": qp}, {"fc0": qp, "fc1": qp},
                    {n: _symmetric_int8(model[n].weight.to_dense().astype(np.float64)) for n in ("fc0", "fc1")})
    with pytest.raises(ValidationError, match="^model: "):
        output_codes(two, x)                                           # two islands: which exit?


def test_output_codes_quantize_a_float64_or_integer_batch_as_float32():
    """The batch is read as float32 first (as the integer model's QuantizeLinear defines it): x = (k + ½)·s·
    (1 + 2^-30) is (k + ½)·s exactly in float32, a tie that rounds to even, while in float64 it lies above the
    tie. A one-Linear model whose output code is its input code (ŵ = 1, s_y = s_x) shows the input codes."""
    from refcomp.compress.quantize.integer_model import integer_model
    from refcomp.quant import QParams

    model = Sequential(("fc", Linear(1, 1, bias=False, rng=0)))
    qp = QParams(np.float32(0.0625), np.array(0, np.int8), "int8")
    im = integer_model(model, {"input": qp, "fc": qp}, {"fc": (np.array([[127]]), np.array([1 / 127]))})
    k = np.arange(10.0)
    x = ((k + 0.5) * 0.0625 * (1 + 2.0**-30)).reshape(-1, 1)
    np.testing.assert_array_equal(output_codes(im, x)[:, 0], np.rint(k + 0.5))      # 0, 2, 2, 4, 4, ...
    # an integer batch (pixel values, say) is a float32 batch too: code 16·k, clipped to int8
    k = np.arange(-9, 10)
    np.testing.assert_array_equal(output_codes(im, k.reshape(-1, 1))[:, 0], np.clip(16 * k, -128, 127))
