"""Constant: outputs its stored value (a copy of what it was given, of one of five dtypes) whatever
its input; a 0-d value is stored as a (1,) buffer and returned as 0-d; built empty from shape and
dtype when a file is loaded; its backward is None (no gradient); bad input."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ValidationError
from refcomp.nn import Constant


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool"])
def test_each_supported_dtype_is_kept_and_returned(dtype):
    value = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    layer = Constant(value)
    y = layer.forward(np.zeros(4))
    assert y.dtype == np.dtype(dtype) and y.shape == (2, 3)
    assert y.tolist() == value.tolist()
    assert layer.config() == {"shape": [2, 3], "dtype": dtype}


@pytest.mark.parametrize("dtype", ["float16", "int8", "uint8", "complex128"])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(DTypeError, match="^value:"):
        Constant(np.zeros(2, dtype=dtype))


def test_the_input_is_ignored_and_the_value_is_a_private_copy():
    value = np.array([1.5, -2.0], np.float64)
    layer = Constant(value)
    value[0] = 9.0
    for x in (None, np.zeros((7, 7)), np.array(["anything"])):
        assert layer.forward(x).tolist() == [1.5, -2.0]
    assert Constant([1, 2, 3]).forward().tolist() == [1, 2, 3]           # a list: int64


def test_a_scalar_is_stored_as_one_element_and_returned_0d():
    layer = Constant(np.float32(2.5))
    assert layer.value.shape == (1,) and layer.value[0] == 2.5       # model files hold no 0-d tensors
    y = layer.forward(None)
    assert y.shape == () and y.dtype == np.float32 and float(y) == 2.5
    assert layer.config() == {"shape": [], "dtype": "float32"}
    assert Constant(**layer.config()).forward().shape == ()
    assert Constant(np.ones((0, 3))).value.shape == (0, 3)              # an empty value keeps its shape


def test_built_empty_from_shape_and_dtype():
    z = Constant(shape=[2, 0, 3])
    assert z.value.shape == (2, 0, 3) and z.value.dtype == np.float32     # float32 by default
    z = Constant(shape=(3, 2), dtype=np.int64)
    assert z.forward().shape == (3, 2) and z.value.dtype == np.int64 and not z.value.any()
    assert Constant(shape=[4], dtype="bool").value.dtype == np.bool_
    assert Constant(shape=[1], dtype=np.dtype("float64")).config() == {"shape": [1], "dtype": "float64"}
    assert Constant(shape=[]).forward().shape == ()
    for shape in (None, 5, "3", np.array([2])):
        with pytest.raises(ValidationError, match="^shape:"):
            Constant(shape=shape)
    for shape in ([-1], [2, 1.5], [True]):
        with pytest.raises(ValidationError, match="^shape:"):
            Constant(shape=shape)
    with pytest.raises(DTypeError, match="^value:"):
        Constant(shape=[2], dtype="float16")


def test_the_value_is_a_buffer_without_gradient():
    layer = Constant(np.ones((2, 2), np.float32))
    assert [n for n, _ in layer.named_buffers()] == ["value"] and not list(layer.named_parameters())
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((2, 2)))
    layer.forward(np.zeros(3))
    assert layer.backward(np.ones((2, 2))) is None
