"""QTensor: a WeightFormat of codes + QParams."""

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
