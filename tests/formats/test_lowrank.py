"""The LowRank weight format (factors from to_lowrank / conv_svd)."""

import numpy as np
import pytest

from refcomp.compress.lowrank.factorize import conv_svd, to_lowrank
from refcomp.errors import DTypeError, FileFormatError, ShapeError
from refcomp.formats import LowRank, WeightFormat


def test_lowrank_format():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((12, 30)).astype(np.float32)
    lr = to_lowrank(w, rank=5)
    assert isinstance(lr, WeightFormat) and lr.shape == (12, 30) and lr.rank == 5
    x = rng.standard_normal((7, 30)).astype(np.float32)
    np.testing.assert_allclose(lr.matmul(x), x @ lr.to_dense().T, rtol=1e-4, atol=1e-4)
    assert lr.nbytes == 4 * 5 * (12 + 30) and lr.storage_bits == 8 * lr.nbytes
    back = LowRank.from_fields({k: v.copy() for k, v in lr.fields().items()})
    assert back.shape == lr.shape and np.array_equal(back.to_dense(), lr.to_dense())
    assert not lr.trainable
    with pytest.raises(FileFormatError, match="keys"):
        LowRank.from_fields({"left": lr.left})
    with pytest.raises(FileFormatError, match="shape"):
        LowRank.from_fields({**lr.fields(), "shape": np.array([12, 31])})
    # a conv kernel held as the factors of its im2col matrix
    k = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    lk = to_lowrank(k, rank=6)
    assert lk.shape == (6, 2, 3, 3) and lk.left.shape == (6, 6) and lk.right.shape == (6, 18)
    np.testing.assert_allclose(lk.to_dense(), k, atol=1e-5)
    patches = rng.standard_normal((5, 18)).astype(np.float32)
    np.testing.assert_allclose(lk.matmul(patches), patches @ k.reshape(6, -1).T, rtol=1e-4, atol=1e-4)
    first, second = conv_svd(k, rank=3)
    np.testing.assert_allclose(to_lowrank(k, rank=3).to_dense(),
                               np.einsum("or,rikl->oikl", second[:, :, 0, 0], first), atol=1e-5)
    with pytest.raises(ShapeError, match="right"):
        LowRank(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(DTypeError, match="left"):
        LowRank(np.ones((3, 2), dtype=np.int32), np.ones((2, 4)))
    with pytest.raises(ShapeError, match="x"):
        lr.matmul(np.ones((2, 29), np.float32))
