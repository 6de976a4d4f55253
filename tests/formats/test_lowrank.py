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


# --- composition: quantized low-rank factors


def _quantized_factors(seed=0):
    from refcomp.compress.lowrank.factorize import to_lowrank
    from refcomp.formats import QTensor
    from refcomp.quant import choose_qparams

    w = np.random.default_rng(seed).standard_normal((24, 40)).astype(np.float32)
    lr = to_lowrank(w, rank=6)

    def q(a):  # int8, one symmetric scale per row
        m = np.abs(a).max(axis=1)
        return QTensor.quantize(a, choose_qparams(-m, m, "int8", symmetric=True, axis=0))

    return w, lr, LowRank(q(lr.left), q(lr.right))


def test_low_rank_of_quantized_factors_computes_through_the_factors():
    _, lr, composed = _quantized_factors()
    left, right = composed.left.to_dense(), composed.right.to_dense()
    np.testing.assert_array_equal(composed.to_dense(), left @ right)          # W = Q(L) Q(R), nothing else
    x = np.random.default_rng(1).standard_normal((5, 40)).astype(np.float32)
    np.testing.assert_allclose(composed.matmul(x), (x @ right.T) @ left.T, rtol=1e-6, atol=1e-6)
    assert composed.nbytes == composed.left.nbytes + composed.right.nbytes < lr.nbytes  # int8 codes + scales
    np.testing.assert_allclose(composed.to_dense(), lr.to_dense(), atol=0.05 * np.abs(lr.to_dense()).max())


@pytest.mark.parametrize("container", ["safetensors", "npz", "compact"])
def test_a_composed_format_round_trips_through_a_model_file(container, tmp_path):
    from refcomp import models
    from refcomp.formats import QTensor
    from refcomp.io import load_model, model_header, save_model
    from refcomp.io.model_file import SUFFIXES
    from refcomp.nn import Linear, ReLU, Sequential

    _, _, composed = _quantized_factors()
    m = Sequential(("fc1", Linear(40, 24, rng=0)), ("relu", ReLU()), ("fc2", Linear(24, 3, rng=1))).eval()
    m["fc1"].weight = composed
    header = model_header(m)
    assert header["version"] == 2 and header["weights"]["fc1.weight"]["parts"]["left"]["format"] == "QTensor"
    assert header["version"] == 2 and "fc1.weight.left.data" in header["tensors"]
    assert model_header(models.digits_mlp())["version"] == 1   # files without compositions stay version 1
    back = load_model(save_model(m, tmp_path / f"m{SUFFIXES[container]}"))
    w = back["fc1"].weight
    assert isinstance(w, LowRank) and isinstance(w.left, QTensor) and isinstance(w.right, QTensor)
    x = np.random.default_rng(2).standard_normal((4, 40)).astype(np.float32)
    assert back.forward(x).tobytes() == m.forward(x).tobytes()


def test_a_composed_part_missing_from_the_file_is_a_file_format_error(tmp_path):
    import json

    from refcomp.errors import FileFormatError
    from refcomp.io import load_model, save_model
    from refcomp.nn import Linear, Sequential

    _, _, composed = _quantized_factors()
    m = Sequential(("fc1", Linear(40, 24, rng=0)))
    m["fc1"].weight = composed
    path = save_model(m, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = dict(z)
    h = json.loads(arrays["__refcomp_header__"].tobytes())
    h["weights"]["fc1.weight"]["parts"]["left"]["format"] = "NoSuchFormat"
    h.pop("checksum")           # as a file written before the checksum: what is tested is the check behind it
    arrays["__refcomp_header__"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(FileFormatError, match="unknown format"):
        load_model(path)


# --- the checks, and the product for any batch shape and any mix of factors


def test_each_bad_factor_is_named():
    # the error names the factor at fault: left or right, for a non-float dtype or a rank other than 2
    for args, error, argument in (((np.ones((3, 2), np.int32), np.ones((2, 4))), DTypeError, "left"),
                                  ((np.ones((3, 2)), np.ones((2, 4), np.int64)), DTypeError, "right"),
                                  ((np.ones(3), np.ones((2, 4))), ShapeError, "left"),
                                  ((np.ones((3, 2)), np.ones((2, 4, 1))), ShapeError, "right"),
                                  ((np.ones((3, 2), np.float32), np.ones((2, 4))), DTypeError, "right")):  # mixed
        with pytest.raises(error) as e:
            LowRank(*args)
        assert e.value.argument == argument, args


def test_the_logical_shape_must_start_with_out_and_multiply_to_in():
    left, right = np.ones((3, 2)), np.ones((2, 1))            # a (3, 1) matrix
    assert LowRank(left, right, shape=(3, 1, 1, 1)).to_dense().shape == (3, 1, 1, 1)
    for bad in ((3,), (4, 1), (1, 3), (3, 2)):                 # too short, wrong out, wrong in
        with pytest.raises(ShapeError) as e:
            LowRank(left, right, shape=bad)
        assert e.value.argument == "shape", bad


def test_matmul_takes_any_leading_batch_shape():
    # x (..., in) -> (..., out): a single vector and a 3-D batch as rows of x W^T, W = L R written out
    rng = np.random.default_rng(4)
    left, right = rng.standard_normal((5, 2)), rng.standard_normal((2, 3))
    lr, w = LowRank(left, right), left @ right
    v = rng.standard_normal(3)
    np.testing.assert_allclose(lr.matmul(v), [sum(w[o, i] * v[i] for i in range(3)) for o in range(5)], rtol=1e-12)
    x = rng.standard_normal((2, 4, 3))
    y = lr.matmul(x)
    assert y.shape == (2, 4, 5)
    np.testing.assert_allclose(y, np.einsum("abi,oi->abo", x, w), rtol=1e-12)
    with pytest.raises(ShapeError) as e:
        lr.matmul(np.ones((3, 4)))                             # in is the last axis, not the second
    assert e.value.argument == "x"


def test_one_quantized_factor_and_one_array():
    # a composition may mix a weight format with a plain array, either way round: the product is
    # x (L R)^T with L, R the decoded factors, and only the arrays' dtypes are compared
    from refcomp.formats import QTensor
    from refcomp.quant import choose_qparams

    rng = np.random.default_rng(5)
    left, right = rng.standard_normal((4, 2)).astype(np.float32), rng.standard_normal((2, 6)).astype(np.float32)
    q = lambda a: QTensor.quantize(a, choose_qparams(-3.0, 3.0, "int8", symmetric=True))  # noqa: E731
    x = rng.standard_normal((3, 6)).astype(np.float32)
    for lr in (LowRank(q(left), right), LowRank(left, q(right)), LowRank(q(left), right.astype(np.float64))):
        w = lr.left.to_dense() if isinstance(lr.left, QTensor) else lr.left
        w = w.astype(np.float64) @ (lr.right.to_dense() if isinstance(lr.right, QTensor) else lr.right)
        np.testing.assert_allclose(lr.matmul(x), x.astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(lr.to_dense(), w, rtol=1e-6)


def test_from_fields_takes_only_a_1d_int64_shape():
    lr = LowRank(np.ones((3, 2)), np.ones((2, 4)))
    f = lr.fields()
    assert f["shape"].dtype == np.int64 and f["shape"].tolist() == [3, 4]
    for bad in (np.array([3, 4], np.int32), np.array([[3, 4]], np.int64)):
        with pytest.raises(FileFormatError, match="shape"):
            LowRank.from_fields({**f, "shape": bad})
