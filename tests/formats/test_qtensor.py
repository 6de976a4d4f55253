"""QTensor: a WeightFormat of codes + QParams."""

import json

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, RefcompError, ShapeError, ValidationError
from refcomp.formats import QTensor, WeightFormat
from refcomp.quant import QDTYPES, QParams, choose_qparams, dequantize

QUANTIZABLE = [n for n in QDTYPES if n not in ("int32", "float16", "bfloat16")]


def _weight(seed=0, shape=(6, 64)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("dtype", QUANTIZABLE)
def test_quantize_dense_matmul_fields(dtype):
    w = _weight()
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), dtype, axis=0)
    qt = QTensor.quantize(w, qp)
    assert isinstance(qt, WeightFormat) and qt.shape == w.shape and not qt.trainable
    np.testing.assert_array_equal(qt.to_dense(), dequantize(qt.data, qp))
    x = _weight(1, (3, 64))
    np.testing.assert_allclose(qt.matmul(x), x @ qt.to_dense().T, rtol=1e-6)
    again = QTensor.from_fields(qt.fields())
    assert again.qparams == qp
    np.testing.assert_array_equal(again.to_dense(), qt.to_dense())
    for name, a in qt.fields().items():
        assert a.dtype.kind in "iuf", (name, a.dtype)  # plain NumPy dtypes: any file format can hold them


def test_sizes_count_packed_bits_scales_and_nonzero_zero_points():
    w = _weight(shape=(8, 64))
    sym4 = QTensor.quantize(w, choose_qparams(w.min(axis=1), w.max(axis=1), "int4", symmetric=True, axis=0))
    assert sym4.storage_bits == 8 * 64 * 4 + 8 * 32  # codes + float32 scales; zero points all 0: not stored
    assert sym4.nbytes == 8 * 64 // 2 + 8 * 4
    asym8 = QTensor.quantize(w, choose_qparams(w.min(), w.max(), "uint8"))
    assert asym8.nbytes == 8 * 64 + 4 + 1
    odd = QTensor(np.zeros(3, QDTYPES["int4"].np_dtype), QParams(1.0, 1, "int4"))
    assert odd.storage_bits == 3 * 4 + 32 + 4 and odd.nbytes == 2 + 4 + 1


def test_bad_input():
    qp = QParams(1.0, 0, "int8", qmin=-127, qmax=127)
    with pytest.raises(DTypeError) as info:
        QTensor(np.zeros(3, np.uint8), qp)
    assert info.value.argument == "data"
    with pytest.raises(ValidationError) as info:
        QTensor(np.array([-128], np.int8), qp)  # outside the restricted range
    assert info.value.argument == "data"
    with pytest.raises(ShapeError) as info:
        QTensor(np.zeros((2, 3), np.int8), QParams([1.0, 1.0], None, "int8", axis=1))
    assert info.value.argument == "scale"
    with pytest.raises(DTypeError) as info:
        QTensor(np.zeros(3, np.int8), {"scale": 1.0})
    assert info.value.argument == "qparams"


def test_from_fields_rejects_foreign_input():
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8"))
    f = qt.fields()
    with pytest.raises(FileFormatError):
        QTensor.from_fields({k: v for k, v in f.items() if k != "header"})
    with pytest.raises(FileFormatError):
        QTensor.from_fields({**f, "header": np.frombuffer(b"\xff\xfe", np.uint8)})
    with pytest.raises(FileFormatError):
        QTensor.from_fields({**f, "header": np.frombuffer(b'{"version": 99}', np.uint8)})
    with pytest.raises(FileFormatError):
        QTensor.from_fields({**f, "data": f["data"].astype(np.int16)})
    with pytest.raises(RefcompError):
        QTensor.from_fields({**f, "scale": np.array(-1.0, np.float32)})


@pytest.mark.parametrize("dtype", QUANTIZABLE)
@pytest.mark.parametrize("symmetric", [False, True])
def test_nbytes_is_what_the_fields_hold(dtype, symmetric):
    w = _weight(shape=(5, 7))  # odd sizes: the last packed byte is partly padding
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), dtype, axis=0, symmetric=symmetric)
    qt = QTensor.quantize(w, qp)
    f = qt.fields()
    stored = f["data"].nbytes + f["scale"].nbytes + (f["zero_point"].nbytes if qt._stores_zero_point() else 0)
    assert qt.nbytes == stored


def test_fields_reject_inconsistent_packed_sizes():
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int4"))
    f = qt.fields()
    with pytest.raises(FileFormatError):
        QTensor.from_fields({**f, "data": f["data"][:-1]})


# --- what the constructor takes, and what the fields hold


def test_float16_and_bfloat16_are_refused_as_dense_weights():
    # a 16-bit float "quantization" is a cast, not codes + scale: such weights are Dense
    for name in ("float16", "bfloat16"):
        with pytest.raises(DTypeError) as e:
            QTensor(np.zeros(2, QDTYPES[name].np_dtype), QParams(1.0, 0, name))
        assert e.value.argument == "qparams.dtype", name


def test_a_float16_file_is_read_through_its_bit_patterns_and_refused_as_dense():
    # a header saying float16 holds 16-bit patterns (uint16): they are read, then refused like the
    # constructor refuses float16 (not mistaken for a file of another container dtype)
    f = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8")).fields()
    meta = json.loads(f["header"].tobytes())
    header = np.frombuffer(json.dumps({**meta, "dtype": "float16", "shape": [2]}).encode(), np.uint8)
    with pytest.raises(DTypeError) as e:
        QTensor.from_fields({"data": np.zeros(2, np.uint16), "scale": np.float32(1.0), "zero_point": np.uint16(0),
                             "header": header})
    assert e.value.argument == "qparams.dtype"


def test_empty_codes_need_no_range_check():
    # no code to check: an empty int8 array with the restricted range [-127, 127], and an empty int4 array
    assert QTensor(np.zeros(0, np.int8), QParams(1.0, 0, "int8", qmin=-127, qmax=127)).to_dense().shape == (0,)
    assert QTensor(np.zeros((0, 3), QDTYPES["int4"].np_dtype), QParams(1.0, 0, "int4")).shape == (0, 3)


def test_a_code_outside_the_range_is_reported_with_the_range_found():
    with pytest.raises(ValidationError, match=r"codes in \[-127, 127\], got range \[-128, 5\]"):
        QTensor(np.array([5, -128], np.int8), QParams(1.0, 0, "int8", qmin=-127, qmax=127))


def test_the_codes_are_read_only():
    # the QTensor owns its codes: a caller cannot change the weight behind its back
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8"))
    assert not qt.data.flags.writeable
    with pytest.raises(ValueError):
        qt.data[0, 0] = 0


def test_quantize_passes_the_rounding_on():
    # 0.5 and -1.5 at scale 1: half to even gives 0 and -2, half away from zero 1 and -2
    qp = QParams(1.0, 0, "int8")
    x = np.array([0.5, -1.5, 2.5], np.float32)
    assert QTensor.quantize(x, qp).data.tolist() == [0, -2, 2]
    assert QTensor.quantize(x, qp, rounding="half_away").data.tolist() == [1, -2, 3]


def test_the_header_is_sorted_json_of_the_layout_only():
    # scale and zero point are arrays of their own (what nbytes counts); the header holds the layout, its
    # keys sorted so that the same QTensor always gives the same bytes
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 2.0, "uint8"))
    text = qt.fields()["header"].tobytes().decode("utf-8")
    meta = json.loads(text)
    assert "scale" not in meta and "zero_point" not in meta
    assert meta["dtype"] == "uint8" and meta["shape"] == [6, 64] and meta["version"] == 1
    assert list(meta) == sorted(meta) and text == json.dumps(meta, sort_keys=True)


def test_integer_fields_are_copies_and_from_fields_copies_them_back():
    # writing into a file's arrays after the fact changes neither the QTensor that gave them nor the one read
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8"))
    f = qt.fields()
    assert not np.shares_memory(f["data"], qt.data)
    back = QTensor.from_fields(f)
    before = back.to_dense().copy()
    f["data"][...] = 0
    np.testing.assert_array_equal(back.to_dense(), before)


def test_a_header_given_as_byte_values_reads_the_same():
    # a container that hands the header back as plain integers (a list, int64): the same bytes
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8"))
    f = qt.fields()
    for header in (f["header"].tolist(), f["header"].astype(np.int64)):
        assert QTensor.from_fields({**f, "header": header}).qparams == qt.qparams


_DROP = object()


def _with_header(f, **changes):
    meta = json.loads(f["header"].tobytes())
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if v is not _DROP}
    return {**f, "header": np.frombuffer(json.dumps(meta).encode(), np.uint8)}



def test_from_fields_reads_only_a_versioned_header_with_a_shape_of_sizes():
    qt = QTensor.quantize(_weight(), choose_qparams(-3.0, 3.0, "int8"))
    f = qt.fields()
    with pytest.raises(FileFormatError, match="version"):
        QTensor.from_fields(_with_header(f, version=_DROP))
    for shape in (_DROP, "", {}, [6.0, 64.0], [-6, 64], [6, "64"]):
        with pytest.raises(FileFormatError, match="'shape' as a list of sizes"):
            QTensor.from_fields(_with_header(f, shape=shape))


def test_an_empty_qtensor_round_trips():
    # a dimension of size 0 is a size
    qt = QTensor(np.zeros((0, 4), np.int8), QParams(0.5, 3, "int8"))
    back = QTensor.from_fields(qt.fields())
    assert back.shape == (0, 4) and back.qparams == qt.qparams


def test_a_field_of_the_wrong_container_dtype_is_named():
    f = QTensor.quantize(_weight(), choose_qparams(-3.0, 2.0, "uint8")).fields()
    with pytest.raises(FileFormatError, match=r"fields\['data'\]: expected dtype uint8"):
        QTensor.from_fields({**f, "data": f["data"].astype(np.int16)})
    with pytest.raises(FileFormatError, match=r"fields\['zero_point'\]: expected dtype uint8"):
        QTensor.from_fields({**f, "zero_point": f["zero_point"].astype(np.int16)})
