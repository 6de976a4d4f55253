"""The quantized-dtype table against the storage types' own limits (numpy / ml_dtypes iinfo and finfo)
and ONNX's TensorProto enum, and qdtype's lookups."""

import ml_dtypes
import numpy as np
import onnx
import pytest

from refcomp.errors import DTypeError
from refcomp.numerics.dtypes import ONNX_FLOAT_TYPES, QDTYPES, QDType, _flt, _int, qdtype

INTS = [q for q in QDTYPES.values() if not q.is_float]
FLOATS = [q for q in QDTYPES.values() if q.is_float]


@pytest.mark.parametrize("q", INTS, ids=repr)
def test_integer_rows_are_their_storage_types_limits(q):
    info = ml_dtypes.iinfo(q.np_dtype)
    assert (q.qmin, q.qmax, q.bits) == (info.min, info.max, info.bits)
    assert q.signed == (info.min < 0) and not q.is_float
    # the row is what _int builds from (bits, signed), so a wrong range formula shows here too
    assert _int(q.name, q.onnx, q.np_dtype, q.bits, q.signed) == q


@pytest.mark.parametrize("q", FLOATS, ids=repr)
def test_float_rows_are_their_storage_types_finite_limits(q):
    info = ml_dtypes.finfo(q.np_dtype)
    assert (q.qmin, q.qmax, q.bits) == (float(info.min), float(info.max), info.bits)
    assert q.is_float and q.signed
    assert _flt(q.name, q.onnx, q.np_dtype, q.bits) == q


@pytest.mark.parametrize("q", list(QDTYPES.values()), ids=repr)
def test_each_row_carries_onnx_enum_and_storage(q):
    onnx_name = {"float4_e2m1fn": "FLOAT4E2M1"}.get(q.name, q.name.replace("_", "").upper())
    assert q.onnx == getattr(onnx.TensorProto, onnx_name)
    assert isinstance(q.np_dtype, np.dtype) and q.name == repr(q)
    assert qdtype(q) is q and qdtype(q.name) is q and qdtype(q.onnx) is q and qdtype(q.np_dtype) is q
    assert qdtype(np.int64(q.onnx)) is q and qdtype(q.name.upper()) is q


def test_aliases_any_case():
    assert qdtype("fp16") is qdtype("FP16") is QDTYPES["float16"]
    assert qdtype("BF16") is QDTYPES["bfloat16"]
    assert qdtype("float8e4m3fn") is QDTYPES["float8_e4m3fn"]
    assert qdtype("Float4E2M1") is qdtype("float4_e2m1") is QDTYPES["float4_e2m1fn"]
    assert ONNX_FLOAT_TYPES == {1: np.float32, 10: np.float16, 16: np.dtype(ml_dtypes.bfloat16)}


@pytest.mark.parametrize("spec", ["int3", "", True, 1, 999, np.float32, "float32", object(), [1], None])
def test_anything_else_is_refused_naming_the_argument(spec):
    with pytest.raises(DTypeError, match="^weight dtype: expected a quantized dtype"):
        qdtype(spec, "weight dtype")
    with pytest.raises(DTypeError, match="^dtype: "):
        qdtype(spec)


def test_qdtype_is_frozen_and_short_in_messages():
    q = QDTYPES["int8"]
    with pytest.raises(AttributeError):
        q.qmin = 0
    assert f"{q!r}" == "int8" and isinstance(q, QDType)
