"""The Clustered weight format."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import Clustered, WeightFormat


def test_to_dense_matmul_and_sizes():
    codebook = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    idx = np.array([[0, 1, 2], [2, 2, 0]])
    mask = np.array([[True, False, True], [True, True, True]])
    c = Clustered(codebook, idx, mask)
    assert isinstance(c, WeightFormat) and c.bits == 2 and c.shape == (2, 3)
    dense = c.to_dense()
    np.testing.assert_array_equal(dense, [[-1.0, 0.0, 2.0], [2.0, 2.0, -1.0]])
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(c.matmul(x), x @ dense.T)
    assert c.storage_bits == 6 * 2 + 3 * 32 + 6 and c.nbytes == -(-c.storage_bits // 8)
    assert set(c.fields()) == {"codebook", "indices", "bits", "mask"}


def test_validation():
    cb = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValidationError, match="bits"):
        Clustered(cb, np.zeros(3, dtype=int), bits=9)
    with pytest.raises(ValidationError, match="bits"):
        Clustered(cb, np.zeros(3, dtype=int), bits=0)
    with pytest.raises(ValidationError, match="codebook"):
        Clustered(np.zeros(8, dtype=np.float32), np.zeros(3, dtype=int), bits=2)
    with pytest.raises(ValidationError, match="indices"):
        Clustered(cb, np.array([0, 4]))
    with pytest.raises(DTypeError, match="mask"):
        Clustered(cb, np.zeros(3, dtype=int), np.ones(3))
    with pytest.raises(ShapeError, match="mask"):
        Clustered(cb, np.zeros(3, dtype=int), np.ones(4, dtype=bool))
    with pytest.raises(DTypeError, match="codebook"):
        Clustered(np.zeros(4, dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(ShapeError, match="x"):
        Clustered(cb, np.zeros((2, 3), dtype=int)).matmul(np.ones((1, 2)))


# --- every bad argument is refused with the refcomp.errors class a user catches, naming the argument
_CB = np.array([-1.0, 0.5, 2.0], np.float32)


@pytest.mark.parametrize("kw,cls,argument", [
    (dict(codebook=_CB.astype(np.float16)), DTypeError, "codebook"),
    (dict(codebook=np.zeros(0, np.float32)), ShapeError, "codebook"),
    (dict(codebook=_CB.reshape(3, 1)), ShapeError, "codebook"),
    (dict(codebook=np.array([1.0, np.inf, 2.0], np.float32)), ValidationError, "codebook"),
    (dict(indices=np.array([0.0, 1.0])), DTypeError, "indices"),
    (dict(indices=np.array([0, -1])), ValidationError, "indices"),
    (dict(indices=np.array([0, 3])), ValidationError, "indices"),
    (dict(bits=0), ValidationError, "bits"),
    (dict(bits=9), ValidationError, "bits"),
    (dict(bits=True), ValidationError, "bits"),
    (dict(bits=2.0), ValidationError, "bits"),
    (dict(bits=1), ValidationError, "codebook"),  # 3 entries need 2 bits
    (dict(mask=np.array([1, 0])), DTypeError, "mask"),
    (dict(mask=np.array([True, False, True])), ShapeError, "mask"),
])
def test_bad_arguments_are_refused_naming_them(kw, cls, argument):
    args = dict(codebook=_CB, indices=np.array([0, 2]), mask=None, bits=None)
    args.update(kw)
    with pytest.raises(cls) as info:
        Clustered(args["codebook"], args["indices"], args["mask"], bits=args["bits"])
    assert info.value.argument == argument


@pytest.mark.parametrize("k,bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8)])
def test_default_bits_are_the_fewest_that_address_the_codebook(k, bits):
    c = Clustered(np.arange(k, dtype=np.float32), np.array([0, k - 1]))
    assert c.bits == bits and c.indices.dtype == np.uint8
    assert c.storage_bits == 2 * bits + 32 * k and c.nbytes == -(-(2 * bits + 32 * k) // 8)
    np.testing.assert_array_equal(c.to_dense(), [0.0, k - 1.0])


def test_the_format_keeps_copies_of_the_callers_arrays():
    cb, idx, mask = _CB.copy(), np.array([0, 2]), np.array([True, True])
    c = Clustered(cb, idx, mask)
    cb[:], idx[:], mask[:] = 7, 1, False
    np.testing.assert_array_equal(c.to_dense(), [-1.0, 2.0])


def test_a_bad_file_is_a_file_format_error():
    f = Clustered(_CB, np.array([0, 2]), np.array([True, False])).fields()
    for bad in ({**f, "bits": np.array([2], np.int32)}, {**f, "bits": np.array([2, 2], np.int64)},
                {**f, "bits": np.array([9], np.int64)}, {k: v for k, v in f.items() if k != "indices"},
                {**f, "extra": f["bits"]}):
        with pytest.raises(FileFormatError):
            Clustered.from_fields(bad)
    back = Clustered.from_fields(f)
    np.testing.assert_array_equal(back.to_dense(), [-1.0, 0.0])
    assert back.mask is not None and back.bits == 2


# indices and mask were checked against the codebook once: they must stay as checked
def test_indices_and_mask_cannot_be_made_writeable():
    c = Clustered(np.float32([-1.0, 1.0]), np.array([[0, 1], [1, 0]], np.uint8), np.array([[True, False], [True, True]]))
    for a in (c.indices, c.mask):
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
