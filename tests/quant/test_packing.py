"""Sub-byte packing: ONNX's layout (first element in the low bits), checked against onnx itself."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError
from refcomp.quant.packing import pack_bits, packed_size, unpack_bits

SUB_BYTE = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2, "float4_e2m1fn": 4}


def _codes(rng, dtype, n):
    bits = SUB_BYTE[dtype]
    return rng.integers(0, 2**bits, size=n).astype(np.uint8).view(getattr(ml_dtypes, dtype))


def test_layout_by_hand():
    a = np.array([-1, 2, -8, 7, 3], dtype=ml_dtypes.int4)  # codes 0xF, 0x2, 0x8, 0x7, 0x3
    assert pack_bits(a).tolist() == [0x2F, 0x78, 0x03]
    u = np.array([1, 2, 3, 0, 1], dtype=ml_dtypes.uint2)
    assert pack_bits(u).tolist() == [0b00111001, 0b01]


@settings(max_examples=40)
@given(dtype=st.sampled_from(sorted(SUB_BYTE)), shape=st.lists(st.integers(0, 5), min_size=0, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_unpack_inverts_pack(dtype, shape, seed):
    a = _codes(np.random.default_rng(seed), dtype, int(np.prod(shape, dtype=np.int64))).reshape(shape)
    p = pack_bits(a)
    assert p.size == packed_size(a.size, SUB_BYTE[dtype])
    b = unpack_bits(p, dtype, tuple(shape))
    assert b.dtype == a.dtype and np.array_equal(b.view(np.uint8), a.view(np.uint8))


@pytest.mark.parametrize("dtype", sorted(SUB_BYTE))
def test_same_bytes_as_onnx(dtype):
    numpy_helper = pytest.importorskip("onnx.numpy_helper")
    rng = np.random.default_rng(0)
    for n in (1, 3, 8, 33):
        a = _codes(rng, dtype, n)
        assert numpy_helper.from_array(a).raw_data == pack_bits(a).tobytes()


def test_bad_input():
    with pytest.raises(DTypeError) as info:
        pack_bits(np.zeros(3, np.int8))
    assert info.value.argument == "q"
    with pytest.raises(ShapeError) as info:
        unpack_bits(np.zeros(3, np.uint8), "int4", (7,))
    assert info.value.argument == "packed"
    with pytest.raises(DTypeError) as info:
        unpack_bits(np.zeros(4, np.int8), "int4", (7,))
    assert info.value.argument == "packed"
