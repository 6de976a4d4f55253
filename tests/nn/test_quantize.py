"""The integer-only model's layers: QuantizeLinear / DequantizeLinear, and the layers that run on codes."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ValidationError
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
    with pytest.raises(ValidationError, match="qparams"):
        QuantizeLinear(QParams(np.ones(3, np.float32), np.zeros(3, np.int8), "int8", axis=0))
    with pytest.raises(ValidationError, match="qparams"):
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
