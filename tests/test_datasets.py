"""Datasets: MNIST IDX reading and checksums, digits, seeded splits, batches."""

import gzip
import shutil

import numpy as np
import pytest

from refcomp import datasets
from refcomp.errors import FileFormatError, ValidationError


def test_mnist_test_split_loads_and_verifies(mnist_dir):
    images, labels = datasets.mnist(mnist_dir, split="test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]   # the official t10k class counts


def test_mnist_fixture_is_the_seed0_permutation(mnist_dir):
    (xtr, ytr), (xte, yte) = datasets.mnist_fixture(mnist_dir, seed=0)
    assert xtr.shape == (8000, 1, 28, 28) and xte.shape == (2000, 1, 28, 28) and xtr.dtype == np.float32
    images, labels = datasets.mnist(mnist_dir)
    perm = np.random.default_rng(0).permutation(10000)
    np.testing.assert_array_equal(ytr, labels[perm[:8000]])
    np.testing.assert_array_equal(xte[:, 0], images[perm[8000:]] / np.float32(255))
    flat = datasets.mnist_fixture(mnist_dir, n_train=10, n_test=5, flatten=True, normalize=True)[0][0]
    assert flat.shape == (10, 784) and flat.min() < 0


def test_mnist_checksum_mismatch_and_raw_files(mnist_dir, tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(mnist_dir / f"{name}.gz", tmp_path / f"{name}.gz")
    # a re-compressed file holds the same data but not the official bytes
    data = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data, mtime=1))
    with pytest.raises(FileFormatError, match="MD5"):
        datasets.mnist(tmp_path)
    # raw (uncompressed) IDX files are read too, checked by header and size
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(data)
    images, labels = datasets.mnist(tmp_path)
    assert labels.shape == (10000,)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(data[:-3])
    with pytest.raises(FileFormatError, match="expected 10000 data bytes"):
        datasets.mnist(tmp_path)


def test_mnist_missing_directory_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REFCOMP_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="REFCOMP_MNIST_DIR"):
        datasets.mnist()
    with pytest.raises(ValidationError, match="split"):
        datasets.mnist(split="validation")


def test_read_idx_rejects_foreign_and_corrupted(tmp_path):
    f = tmp_path / "x.idx"
    f.write_bytes(b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6)))
    np.testing.assert_array_equal(datasets.read_idx(f), [[0, 1, 2], [3, 4, 5]])
    f.write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(FileFormatError, match="not an IDX"):
        datasets.read_idx(f)
    f.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"ab")[:-6])
    with pytest.raises(FileFormatError):
        datasets.read_idx(f)


def test_digits():
    x, y = datasets.digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() == 1
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


def test_split_indices_deterministic_and_disjoint():
    a, b = datasets.split_indices(100, 70, 20, seed=3)
    a2, b2 = datasets.split_indices(100, 70, 20, seed=3)
    np.testing.assert_array_equal(a, a2)
    assert len(set(a) | set(b)) == 90 and not set(a) & set(b)
    assert not np.array_equal(a, datasets.split_indices(100, 70, 20, seed=4)[0])
    with pytest.raises(ValidationError):
        datasets.split_indices(10, 8, 5)


def _assert_same_split(got, want):
    for g, w in zip((*got[0], *got[1]), (*want[0], *want[1])):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("seed", [0, 7])
def test_load_split_digits_is_the_1437_360_permutation(seed):
    x, y = datasets.digits()
    perm = np.random.default_rng(seed).permutation(1797)
    tr, te = perm[:1437], perm[1437:]
    _assert_same_split(datasets.load_split("digits", seed=seed), ((x[tr], y[tr]), (x[te], y[te])))
    if seed == 0:
        _assert_same_split(datasets.load_split("digits"), ((x[tr], y[tr]), (x[te], y[te])))


@pytest.mark.parametrize("seed", [0, 7])
def test_load_split_mnist_fixture_is_the_8000_2000_split_of_the_test_set(mnist_dir, seed):
    images, labels = datasets.mnist(mnist_dir, split="test")
    perm = np.random.default_rng(seed).permutation(10000)
    tr, te = perm[:8000], perm[8000:]
    x = (images.astype(np.float32) / np.float32(255))[:, None, :, :]
    y = labels.astype(np.int64)
    want = ((x[tr], y[tr]), (x[te], y[te]))
    _assert_same_split(datasets.load_split("mnist-fixture", seed=seed, path=mnist_dir), want)
    _assert_same_split(datasets.mnist_fixture(mnist_dir, seed=seed), want)


def test_load_split_mnist_is_the_protocol(mnist_dir):
    """55,000 training images (the last 5,000 held out for validation) and the 10,000 test images, in
    file order, whatever the seed."""
    train_images, train_labels = datasets.mnist(mnist_dir, split="train")
    test_images, test_labels = datasets.mnist(mnist_dir, split="test")

    def prepared(images, labels):
        return (images.astype(np.float32) / np.float32(255))[:, None, :, :], labels.astype(np.int64)

    want = (prepared(train_images[:55000], train_labels[:55000]), prepared(test_images, test_labels))
    for seed in (0, 3):
        _assert_same_split(datasets.load_split("mnist", seed=seed, path=mnist_dir), want)


def test_load_split_names_the_bad_name():
    with pytest.raises(ValidationError) as info:
        datasets.load_split("cifar10")
    assert info.value.argument == "name" and "'digits'" in info.value.expected and info.value.got == "'cifar10'"


def test_batches_cover_everything_once_in_seeded_order():
    x = np.arange(10)[:, None] * 1.0
    y = np.arange(10)
    got = [yb for _, yb in datasets.batches(x, y, 4, rng=0)]
    assert [len(b) for b in got] == [4, 4, 2]
    assert sorted(np.concatenate(got)) == list(range(10))
    again = [yb for _, yb in datasets.batches(x, y, 4, rng=0)]
    assert all(np.array_equal(p, q) for p, q in zip(got, again))
    assert [len(b) for _, b in datasets.batches(x, y, 4, drop_last=True)] == [4, 4]
    with pytest.raises(ValidationError, match="batch_size"):
        next(datasets.batches(x, y, 0))


def test_mnist_protocol_is_55000_5000_10000_with_the_readme_statistics(mnist_dir):
    """The papers' protocol: the training split (label counts and pixel moments of the data README)
    minus its last 5,000 for validation, and the 10,000 test images, untouched."""
    (xtr, ytr), (xva, yva), (xte, yte) = datasets.mnist_protocol(mnist_dir)
    assert xtr.shape == (55000, 1, 28, 28) and xva.shape == (5000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    labels = np.concatenate([ytr, yva])
    np.testing.assert_array_equal(np.bincount(labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    pixels = np.concatenate([xtr, xva]).astype(np.float64)
    assert abs(pixels.mean() - 0.1307) < 5e-5 and abs(pixels.std() - 0.3081) < 5e-5
    raw_images, raw_labels = datasets.mnist(mnist_dir, split="train")
    np.testing.assert_array_equal(yva, raw_labels[55000:])                       # the last 5,000, in order
    np.testing.assert_array_equal(xva[:, 0], raw_images[55000:].astype(np.float32) / 255)
    test_images, test_labels = datasets.mnist(mnist_dir, split="test")
    np.testing.assert_array_equal(yte, test_labels)
    (f, _), _, _ = datasets.mnist_protocol(mnist_dir, n_val=1000, flatten=True)
    assert f.shape == (59000, 784)
    with pytest.raises(ValidationError, match="n_val"):
        datasets.mnist_protocol(mnist_dir, n_val=60000)


def test_recompressed_training_files_are_verified_by_their_content(mnist_dir, tmp_path):
    """The shared training .gz files are re-compressed (their .gz MD5 is not the official one):
    they pass by the MD5 of their content, and a file whose content differs is refused."""
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    datasets.mnist(tmp_path, split="train")                                       # passes
    with gzip.open(mnist_dir / "train-labels-idx1-ubyte.gz", "rb") as f:
        raw = bytearray(f.read())
    raw[-1] = (raw[-1] + 1) % 10                                                   # one label changed
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(FileFormatError, match="content is not the official"):
        datasets.mnist(tmp_path, split="train")
    datasets.mnist(tmp_path, split="train", verify=False)                          # asked not to check


def test_read_idx_refuses_a_gzip_bomb_before_inflating_it(tmp_path):
    """gzip.decompress inflated the whole stream: 256 MiB here, from a file of ~250 KB."""
    import zlib

    from refcomp.errors import FileFormatError
    from tests._support.bounds import bounded

    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = b"\x00\x00\x08\x01" + (256 << 20).to_bytes(4, "big")        # uint8, rank 1, 256 Mi entries
    body = deflate.compress(head) + b"".join(deflate.compress(bytes(1 << 20)) for _ in range(256))
    f = tmp_path / "bomb-idx1-ubyte.gz"
    f.write_bytes(body + deflate.flush())
    with bounded(max_mib=64, max_seconds=2), pytest.raises(FileFormatError, match="inflates to more"):
        datasets.read_idx(f)
