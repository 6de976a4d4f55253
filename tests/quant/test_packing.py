"""Sub-byte packing: ONNX's layout (first element in the low bits), checked against onnx itself."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError, ValidationError
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


# ---- what is packed: each element's value, whatever the high bits of its storage byte hold
@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2"])
def test_packs_the_values_not_the_storage_bytes(dtype):
    # ml_dtypes reads a sub-byte integer from the low bits of its byte only: an array viewed from
    # arbitrary bytes holds the values of those low bits, and packs as the same values built directly do
    raw = np.random.default_rng(1).integers(0, 256, size=9).astype(np.uint8)
    viewed = raw.view(getattr(ml_dtypes, dtype))
    rebuilt = np.array(viewed.astype(np.float32), dtype=getattr(ml_dtypes, dtype))
    assert pack_bits(viewed).tolist() == pack_bits(rebuilt).tolist()
    bits = SUB_BYTE[dtype]
    expected = [sum((int(c) & (2**bits - 1)) << (bits * i) for i, c in enumerate(raw[j:j + 8 // bits]))
                for j in range(0, raw.size, 8 // bits)]
    assert pack_bits(viewed).tolist() == expected


# ---- bad input: each error names the argument at fault
@pytest.mark.parametrize("call,exc,argument", [
    (lambda: pack_bits([1, 2]), DTypeError, "q"),
    (lambda: pack_bits(np.zeros(3, np.float32)), DTypeError, "q"),            # not a quantized dtype
    (lambda: unpack_bits(np.zeros(1, np.uint8), "int9", (2,)), DTypeError, "dtype"),
    (lambda: unpack_bits(np.zeros(1, np.uint8), "int8", (1,)), DTypeError, "dtype"),   # 8 bits
    (lambda: unpack_bits(np.zeros((1, 1), np.uint8), "int4", (2,)), DTypeError, "packed"),
    (lambda: unpack_bits(np.zeros(1, np.uint8), "int4", ("a",)), ValidationError, "shape"),
    (lambda: unpack_bits(np.zeros(1, np.uint8), "int4", 2), ValidationError, "shape"),
    (lambda: unpack_bits(np.zeros(1, np.uint8), "int4", (-2,)), ValidationError, "shape"),
])
def test_bad_input_names_the_argument(call, exc, argument):
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument


def test_packed_size_is_the_ceiling():
    assert [packed_size(n, 4) for n in (0, 1, 2, 3)] == [0, 1, 1, 2]
    assert [packed_size(n, 2) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]
