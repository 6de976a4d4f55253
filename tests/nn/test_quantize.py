"""The integer-only model's layers: QuantizeLinear / DequantizeLinear, and the layers that run on codes."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import QTensor
from refcomp.nn import Dropout, Flatten, MaxPool2d, ReLU
from refcomp.nn.layers import DequantizeLinear, QuantizeLinear
from refcomp.quant import QParams


@pytest.mark.parametrize("dtype, z", [("uint8", 37), ("int8", -5)])
def test_codes_through_value_layers_equal_the_float_layers(dtype, z):
    """Each layer on codes equals quantize(layer(dequantize(codes))): the quantization map is increasing."""
    rng = np.random.default_rng(0)
    qp = QParams(np.float32(0.05), np.array(z, dtype), dtype)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    q = QuantizeLinear(qp).forward(x)
    assert isinstance(q, QTensor) and q.qparams is qp
    deq = DequantizeLinear()
    for layer in (MaxPool2d(2), ReLU(), Flatten(), Dropout(0.5).eval()):
        y = layer.forward(q)
        assert isinstance(y, QTensor) and y.qparams is qp and y.data.dtype == q.data.dtype
        want = QuantizeLinear(qp).forward(layer.forward(deq.forward(q)))
        np.testing.assert_array_equal(y.data, want.data)


def test_bad_inputs_are_named():
    qp = QParams(np.float32(0.1), np.array(0, np.uint8), "uint8")
    with pytest.raises(ValidationError, match="^qparams:"):
        QuantizeLinear(QParams(np.ones(3, np.float32), np.zeros(3, np.int8), "int8", axis=0))
    with pytest.raises(ValidationError, match="^qparams:"):
        QuantizeLinear(QParams(np.float32(1), np.array(0, np.int32), "int32"))
    with pytest.raises(DTypeError, match="x"):
        QuantizeLinear(qp).forward(np.zeros((2, 2), np.uint8))
    with pytest.raises(DTypeError, match="x"):
        DequantizeLinear().forward(np.zeros((2, 2), np.float32))
    codes = QTensor(np.zeros((2, 4), np.uint8), qp)
    with pytest.raises(ValidationError):
        Dropout(0.5, rng=0).forward(codes)          # training-mode dropout has no meaning on codes


def test_activation_qparams_from_a_file_are_checked():
    from refcomp.nn import Linear

    good = {"scale": 0.5, "zero_point": 3, "dtype": "uint8"}
    assert Linear(2, 2, output_qparams=good).config()["output_qparams"] == good
    assert QuantizeLinear(good).config() == {"qparams": good}
    for bad in ({"scale": 0.5, "zero_point": 300, "dtype": "uint8"}, {"scale": 0.5, "zero_point": 0, "dtype": "int32"},
                {"scale": "x", "zero_point": 0, "dtype": "int8"}, {"scale": -1.0, "zero_point": 0, "dtype": "int8"},
                {"scale": 1.0, "dtype": "int8"}):
        with pytest.raises(ValidationError):
            Linear(2, 2, output_qparams=bad)


def test_an_integer_linear_packs_its_weight_once_and_deep_copies():
    """B of MatMulInteger is a PackedWeight made on the first call and reused; copies drop its cache."""
    import copy

    from refcomp.nn import Linear
    from refcomp.ops import PackedWeight

    rng = np.random.default_rng(1)
    w_qp = QParams(np.full(3, 0.02, np.float32), np.zeros(3, np.int8), "int8", axis=0)
    layer = Linear(5, 3, rng=0, output_qparams={"scale": 0.1, "zero_point": 0, "dtype": "int8"})
    layer.weight = QTensor.quantize(rng.normal(size=(3, 5)).astype(np.float32), w_qp)
    x = QuantizeLinear(QParams(np.float32(0.05), np.array(10, np.uint8), "uint8")).forward(
        rng.normal(size=(4, 5)).astype(np.float32))
    y = layer.forward(x)
    packed = layer._codes_t[1]
    assert isinstance(packed, PackedWeight) and packed.shape == (5, 3)
    np.testing.assert_array_equal(layer.forward(x).data, y.data)
    assert layer._codes_t[1] is packed
    twin = copy.deepcopy(layer)
    np.testing.assert_array_equal(twin.forward(x).data, y.data)


def _qp(scale, z, dtype):
    return QParams(np.float32(scale), np.array(z, dtype), dtype)


@pytest.mark.parametrize("dtype, z", [("uint8", 128), ("int8", 3)])
def test_quantize_and_dequantize_are_the_affine_maps(dtype, z):
    """q = clip(round_half_even(x / s) + z, qmin, qmax); x̂ = (q − z)·s, in float32."""
    qp = _qp(0.25, z, dtype)
    info = np.iinfo(dtype)
    x = np.array([[-1e6, -32.125, -0.375, -0.125, 0.0, 0.125, 0.375, 0.625, 3.1, 1e6]], np.float64)
    want = np.clip(np.array([[round(v / 0.25) for v in row] for row in x]) + z, info.min, info.max)
    q = QuantizeLinear(qp).forward(x)                    # float64 accepted: quantized as float32
    assert q.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(q.data, want)
    y = DequantizeLinear().forward(q)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, (want - z) * 0.25)
    assert repr(QuantizeLinear(qp)) == f"QuantizeLinear({qp!r})"


def test_the_borders_are_inference_only():
    for layer in (QuantizeLinear(_qp(1, 0, "uint8")), DequantizeLinear()):
        with pytest.raises(ValidationError, match=f"^{type(layer).__name__}:"):
            layer.backward(np.ones(2))
    with pytest.raises(DTypeError, match="^x:"):
        QuantizeLinear(_qp(1, 0, "uint8")).forward(QTensor(np.zeros(2, np.uint8), _qp(1, 0, "uint8")))


def test_activation_qparams_json_form_round_trips_exactly():
    from refcomp.nn.layers.quantize import activation_config, check_activation_qparams

    for d in ({"scale": 0.1, "zero_point": 0, "dtype": "uint8"}, {"scale": 3, "zero_point": 255, "dtype": "uint8"},
              {"scale": 1e-3, "zero_point": -128, "dtype": "int8"}, {"scale": 2.5, "zero_point": 127, "dtype": "int8"}):
        qp = check_activation_qparams(d, "q")
        assert qp.scale.dtype == np.float32 and qp.scale == np.float32(d["scale"])
        assert qp.zero_point.dtype == np.dtype(d["dtype"]) and qp.zero_point == d["zero_point"]
        assert qp.dtype.name == d["dtype"] and qp.per_tensor
        back = activation_config(qp)
        assert back == {"scale": float(np.float32(d["scale"])), "zero_point": d["zero_point"], "dtype": d["dtype"]}
        assert type(back["scale"]) is float and type(back["zero_point"]) is int
        assert check_activation_qparams(qp, "q") is qp


@pytest.mark.parametrize("bad, where", [
    ({"scale": 0.5, "zero_point": 0, "dtype": "uint8", "axis": 0}, "q"),
    ({"scale": 0.5, "zero_point": 0}, "q"),
    ({"scale": 0.5, "zero_point": 0, "dtype": "int16"}, "q"),
    ({"scale": 0.5, "zero_point": 256, "dtype": "uint8"}, "q['zero_point']"),
    ({"scale": 0.5, "zero_point": -1, "dtype": "uint8"}, "q['zero_point']"),
    ({"scale": 0.5, "zero_point": 128, "dtype": "int8"}, "q['zero_point']"),
    ({"scale": 0.5, "zero_point": -129, "dtype": "int8"}, "q['zero_point']"),
    ({"scale": 0.5, "zero_point": True, "dtype": "uint8"}, "q['zero_point']"),
    ({"scale": 0.5, "zero_point": 1.0, "dtype": "uint8"}, "q['zero_point']"),
    ({"scale": True, "zero_point": 0, "dtype": "uint8"}, "q['scale']"),
    ({"scale": "0.5", "zero_point": 0, "dtype": "uint8"}, "q['scale']"),
    (0.5, "q"),
    (QParams(np.float32(1), np.array(0, np.int16), "int16"), "q"),
    (QParams(np.ones(2, np.float32), np.zeros(2, np.uint8), "uint8", axis=0), "q"),
])
def test_bad_activation_qparams_are_named(bad, where):
    import re

    from refcomp.nn.layers.quantize import check_activation_qparams

    with pytest.raises(ValidationError, match="^" + re.escape(where) + ":"):
        check_activation_qparams(bad, "q")


def _int_linear(w_qp, out_qp, *, bias=True, requantize="fixed_point", seed=0):
    from refcomp.nn import Linear

    rng = np.random.default_rng(seed)
    layer = Linear(6, 3, bias, rng=seed, output_qparams=out_qp, requantize=requantize)
    layer.weight = QTensor.quantize(rng.normal(size=(3, 6)).astype(np.float32), w_qp)
    return layer


def _oracle(xq, x_qp, w, b, y_qp):
    """clip(round(y / s_y) + z_y) of the real y = x̂·Ŵᵀ + b: the integer path may differ by one code
    (its bias and multiplier are rounded), never by more."""
    xr = (xq.astype(np.float64) - int(x_qp.zero_point)) * float(x_qp.scale)
    info = np.iinfo(y_qp.dtype.name)
    y = xr @ w.T + (0.0 if b is None else b)
    return np.clip(np.rint(y / float(y_qp.scale)) + int(y_qp.zero_point), info.min, info.max)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("method", ["fixed_point", "float"])
def test_an_integer_linear_is_the_float_layer_within_one_code(per_channel, bias, method):
    rng = np.random.default_rng(2)
    w_qp = (QParams(np.array([0.02, 0.05, 0.01], np.float32), np.zeros(3, np.int8), "int8", axis=0) if per_channel
            else QParams(np.float32(0.03), np.array(0, np.int8), "int8"))
    y_qp = _qp(0.04, -10, "int8")
    layer = _int_linear(w_qp, {"scale": 0.04, "zero_point": -10, "dtype": "int8"}, bias=bias, requantize=method)
    x_qp = _qp(0.05, 100, "uint8")
    xq = QuantizeLinear(x_qp).forward(rng.normal(size=(8, 6)).astype(np.float32))
    y = layer.forward(xq)
    assert isinstance(y, QTensor) and y.data.dtype == np.int8 and y.qparams.scale == np.float32(0.04)
    w = layer.weight.data.astype(np.float64) * np.asarray(w_qp.scale, np.float64).reshape(-1, 1)
    want = _oracle(xq.data, x_qp, w, layer.bias.data.astype(np.float64) if bias else None, y_qp)
    assert np.abs(y.data.astype(np.int64) - want).max() <= 1
    assert np.abs(y.data.astype(np.int64) - want).sum() <= 2


@pytest.mark.parametrize("method, want", [("fixed_point", [3, 2, 4]), ("float", [2, 2, 4])])
def test_requantize_method_decides_the_ties(method, want):
    """acc·M = 2.5, 1.5, 3.5 exactly (M = 1/2): gemmlowp's fixed point (eq. I4) rounds a positive tie up,
    ONNX's float form (eq. I4') to even."""
    from refcomp.nn import Linear

    layer = Linear(1, 1, bias=False, output_qparams={"scale": 2.0, "zero_point": 0, "dtype": "int8"},
                   requantize=method)
    layer.weight = QTensor(np.ones((1, 1), np.int8), QParams(np.float32(1), np.array(0, np.int8), "int8"))
    x = QTensor(np.array([[5], [3], [7]], np.int8), _qp(1.0, 0, "int8"))
    np.testing.assert_array_equal(layer.forward(x).data[:, 0], want)


def test_an_integer_conv_is_the_float_layer_within_one_code():
    from refcomp.nn import Conv2d

    rng = np.random.default_rng(3)
    w_qp = QParams(np.array([0.02, 0.03, 0.05, 0.01], np.float32), np.zeros(4, np.int8), "int8", axis=0)
    for groups, stride, pad, dil in ((1, 1, 1, 1), (2, 2, 1, 1), (1, (1, 2), (0, 1), 2)):
        layer = Conv2d(2, 4, 3, stride, pad, dil, groups, rng=groups,
                       output_qparams={"scale": 0.05, "zero_point": 128, "dtype": "uint8"})
        w_float = rng.normal(size=layer.weight.shape).astype(np.float32)
        x = rng.normal(size=(2, 2, 7, 6)).astype(np.float32)
        x_qp = _qp(0.04, 7, "int8")
        xq = QuantizeLinear(x_qp).forward(x)
        xr = DequantizeLinear().forward(xq).astype(np.float64)
        layer.weight = QTensor.quantize(w_float, w_qp)
        ref = Conv2d(2, 4, 3, stride, pad, dil, groups, dtype="float64")
        ref.weight.data[...] = layer.weight.data * w_qp.scale.astype(np.float64).reshape(-1, 1, 1, 1)
        ref.bias.data[...] = layer.bias.data
        y = layer.forward(xq)
        assert isinstance(y, QTensor) and y.data.dtype == np.uint8
        want = np.clip(np.rint(ref.forward(xr) / np.float64(np.float32(0.05))) + 128, 0, 255)
        assert np.abs(y.data.astype(np.int64) - want).max() <= 1, (groups, stride, pad, dil)


@pytest.mark.parametrize("w_qp", [
    QParams(np.float32(0.1), np.array(0, np.uint8), "uint8"),                                  # not int8
    QParams(np.float32(0.1), np.array(2, np.int8), "int8"),                                    # z != 0
    QParams(np.full(3, 0.1, np.float32), np.array([0, 1, 0], np.int8), "int8", axis=0),        # one z != 0
    QParams(np.full(6, 0.1, np.float32), np.zeros(6, np.int8), "int8", axis=1),                # per input
    QParams(np.full((3, 3), 0.1, np.float32), np.zeros((3, 3), np.int8), "int8", axis=1, block_size=2),
])
def test_an_integer_layer_needs_a_symmetric_int8_weight(w_qp):
    layer = _int_linear(w_qp, {"scale": 0.1, "zero_point": 0, "dtype": "int8"})
    xq = QTensor(np.zeros((2, 6), np.uint8), _qp(0.1, 0, "uint8"))
    with pytest.raises(ValidationError, match=r"^Linear\.weight:"):
        layer.forward(xq)


def test_an_integer_layer_names_what_it_lacks():
    from refcomp.nn import Conv2d, Linear

    xq = QTensor(np.zeros((2, 6), np.uint8), _qp(0.1, 0, "uint8"))
    with pytest.raises(ValidationError, match=r"^Linear\.weight:"):
        Linear(6, 3, rng=0, output_qparams={"scale": 0.1, "zero_point": 0, "dtype": "int8"}).forward(xq)
    w_qp = QParams(np.float32(0.1), np.array(0, np.int8), "int8")
    layer = _int_linear(w_qp, None)
    with pytest.raises(ValidationError, match=r"^Linear\.output_qparams:"):
        layer.forward(xq)
    conv = Conv2d(1, 1, 1, output_qparams={"scale": 0.1, "zero_point": 0, "dtype": "int8"})
    conv.weight = QTensor(np.ones((1, 1, 1, 1), np.int8), w_qp)
    with pytest.raises(ValidationError, match=r"^x\.qparams:"):
        conv.forward(QTensor(np.zeros((1, 1, 2, 2), np.int16), QParams(np.float32(1), np.array(0, np.int16), "int16")))
    conv.requantize = "round"
    with pytest.raises(ValidationError, match=r"^Conv2d\.requantize:"):
        conv.forward(QTensor(np.zeros((1, 1, 2, 2), np.uint8), _qp(0.1, 0, "uint8")))


def test_a_new_weight_is_packed_again():
    rng = np.random.default_rng(4)
    w_qp = QParams(np.float32(0.05), np.array(0, np.int8), "int8")
    layer = _int_linear(w_qp, {"scale": 0.1, "zero_point": 0, "dtype": "int8"}, bias=False)
    xq = QuantizeLinear(_qp(0.05, 10, "uint8")).forward(rng.normal(size=(4, 6)).astype(np.float32))
    y1 = layer.forward(xq).data
    layer.weight = QTensor(-layer.weight.data, w_qp)                     # the negated weight
    y2 = layer.forward(xq).data
    assert not np.array_equal(y1, y2)
    assert np.abs(y2.astype(np.int64) + y1).max() <= 1                  # −y up to one rounding


def test_a_float64_input_is_rounded_to_float32_first():
    # ONNX QuantizeLinear's T is the model's float32: 0.125 + 1e-12 is 0.125 in float32, the tie x/s = 0.5
    # that rounds to the even 0 (in float64 it would be above the tie: code 1)
    q = QuantizeLinear(_qp(0.25, 0, "int8")).forward(np.array([0.125 + 1e-12, -0.125 - 1e-12]))
    np.testing.assert_array_equal(q.data, [0, 0])


def test_the_refused_input_is_described():
    qp = _qp(1, 0, "uint8")
    with pytest.raises(DTypeError, match="got a QTensor$"):
        QuantizeLinear(qp).forward(QTensor(np.zeros(2, np.uint8), qp))
    with pytest.raises(DTypeError, match="got dtype int16$"):
        QuantizeLinear(qp).forward(np.zeros(2, np.int16))


def test_a_layer_without_requantize_runs_the_fixed_point_form():
    """integer_forward reads ``requantize`` where the layer has it; "fixed_point" (eq. I4) otherwise."""
    from types import SimpleNamespace

    from refcomp.nn import Linear
    from refcomp.nn.layers.quantize import integer_forward

    layer = Linear(1, 1, bias=False, output_qparams={"scale": 2.0, "zero_point": 0, "dtype": "int8"})
    layer.weight = QTensor(np.ones((1, 1), np.int8), QParams(np.float32(1), np.array(0, np.int8), "int8"))
    bare = SimpleNamespace(weight=layer.weight, bias=None, output_qparams=layer.output_qparams)
    x = QTensor(np.array([[5], [3]], np.int8), _qp(1.0, 0, "int8"))
    np.testing.assert_array_equal(integer_forward(bare, x).data[:, 0], [3, 2])     # 2.5 rounds up: eq. I4


def test_integer_layers_name_themselves_in_errors():
    from refcomp.errors import OverflowRiskError
    from refcomp.nn import Conv2d

    w_qp = QParams(np.float32(1e-3), np.array(0, np.int8), "int8")
    layer = _int_linear(w_qp, {"scale": 0.1, "zero_point": 0, "dtype": "int8"})
    with pytest.raises(ShapeError, match="^Linear input:"):
        layer.forward(QTensor(np.zeros((2, 5), np.uint8), _qp(0.1, 0, "uint8")))
    layer.bias.data[0] = 1e9                       # b / (s_x·s_w) = 1e13: beyond int32
    with pytest.raises(OverflowRiskError, match=r"^Linear\.bias:"):
        layer.forward(QTensor(np.zeros((2, 6), np.uint8), _qp(1e-3, 0, "uint8")))
    conv = Conv2d(2, 1, 3, output_qparams={"scale": 0.1, "zero_point": 0, "dtype": "int8"})
    conv.weight = QTensor(np.ones((1, 2, 3, 3), np.int8), w_qp)
    with pytest.raises(ShapeError, match="^Conv2d input:"):
        conv.forward(QTensor(np.zeros((1, 2, 2, 2), np.uint8), _qp(0.1, 0, "uint8")))
