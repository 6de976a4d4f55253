"""Datasets: scikit-learn's bundled digits, MNIST from IDX files, splits and batches.

* :func:`digits` — 1,797 8×8 handwritten digits shipped inside scikit-learn
  (no download): X float32 (1797, 64) scaled to [0, 1], y int64.
* :func:`mnist` — the MNIST IDX files (LeCun, Cortes & Burges), gzip or raw,
  checked against the official MD5 sums. The directory comes from the
  ``path`` argument, else the environment variable ``REFCOMP_MNIST_DIR``,
  else ``../shared/data/mnist`` next to the repository. ``download=True``
  fetches missing files (only when asked; never in tests).
* :func:`mnist_protocol` — the papers' protocol: train on the 60,000 training
  images minus a held-out validation part (the last ``n_val``, default 5,000)
  on which every hyper-parameter is chosen, report once on the 10,000 test
  images (LeCun et al. 1998; Han et al. 2016; Hinton et al. 2015).
* :func:`split_indices`, :func:`mnist_fixture` — deterministic train/test splits
  from a seeded permutation; mnist_fixture is the 8,000 / 2,000 split of the
  MNIST *test* set that the first results used: a fast fixture for unit tests,
  not the protocol.
* :func:`load_split` — the train/test split of a dataset by name ("digits":
  1,437 / 360; "mnist": the protocol's 55,000 training and 10,000 test images;
  "mnist-fixture": :func:`mnist_fixture`), the one every command uses.
* :func:`batches` — mini-batches, shuffled by an explicit ``rng``.

IDX format (http://yann.lecun.com/exdb/mnist/): big-endian magic
``0x00 0x00 <type> <ndim>``, then ndim big-endian uint32 sizes, then the data;
type 0x08 = unsigned byte (the only type MNIST uses; the others are accepted).
"""

from __future__ import annotations

import math
import hashlib
import os
import struct
import zlib
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .checks import one_of
from .errors import FileFormatError, MissingDependencyError, ShapeError, ValidationError

__all__ = ["digits", "mnist", "read_idx", "split_indices", "mnist_fixture", "mnist_protocol", "load_split",
           "batches", "MNIST_FILES", "MNIST_RAW_MD5", "default_mnist_dir", "SPLITS"]

#: file -> official MD5. The t10k sums are the ones published with the data in
#: ../shared/data/mnist/README.md; the train sums are those of the same official
#: files as listed by torchvision's MNIST resource table.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: file -> MD5 of the official *uncompressed* bytes, for .gz files re-compressed elsewhere (their
#: .gz MD5 differs; ../shared/data/mnist/README.md lists these for the training files)
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
}
_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: mean and standard deviation of MNIST training pixels in [0, 1] (the usual constants)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: X float32 (1797, 64) in [0, 1] (pixel/16), y int64 (1797,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - a core dependency, missing only from a broken install
        raise MissingDependencyError("refcomp.datasets.digits", "scikit-learn", "data") from None
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def default_mnist_dir() -> Path:
    env = os.environ.get("REFCOMP_MNIST_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4:
        raise FileFormatError(f"{name}: truncated IDX header ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim < 1:
        raise FileFormatError(f"{name}: not an IDX file (magic {raw[:4].hex()})")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise FileFormatError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    dt = np.dtype(_IDX_TYPES[dtype_code])
    need = math.prod(shape) * dt.itemsize      # Python ints: 255 dims of 2^32 - 1 cannot overflow
    if len(raw) - head != need:
        raise FileFormatError(f"{name}: expected {need} data bytes for shape {shape}, got {len(raw) - head}")
    return np.frombuffer(raw, dtype=dt, offset=head).reshape(shape).astype(dt.newbyteorder("="))


def read_idx(file) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw, decided by the gzip magic bytes)."""
    p = Path(file)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, p)
    return _parse_idx(raw, str(p))


#: a gzipped IDX file may inflate to at most this many times its size (plus 1 MiB); MNIST's inflate 2–5×
_GZIP_INFLATE = 64


def _gunzip(raw: bytes, p) -> bytes:
    """Inflate at most _GZIP_INFLATE × the file (+ 1 MiB): gzip.decompress would inflate a bomb whole."""
    limit = _GZIP_INFLATE * len(raw) + (1 << 20)
    inflate = zlib.decompressobj(wbits=31)       # 31: gzip header and trailer (CRC-32 checked)
    try:
        out = inflate.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise FileFormatError(f"{p}: corrupted gzip stream ({exc})") from None
    if len(out) > limit:
        raise FileFormatError(f"{p}: gzip stream inflates to more than {_GZIP_INFLATE} times the file "
                              f"({len(raw)} bytes)")
    if not inflate.eof or inflate.unused_data:
        raise FileFormatError(f"{p}: corrupted gzip stream (truncated, or bytes after its end)")
    return out


def _download(name: str, dest: Path) -> None:
    import urllib.request

    dest.mkdir(parents=True, exist_ok=True)
    last = None
    for base in _MIRRORS:
        try:
            with urllib.request.urlopen(base + name, timeout=60) as r:
                data = r.read()
        except OSError as exc:
            last = exc
            continue
        if hashlib.md5(data).hexdigest() != MNIST_FILES[name]:
            last = FileFormatError(f"{base}{name}: MD5 mismatch")
            continue
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                # the usual permissions (mkstemp alone gives 0600); refcomp.io.write_atomic does the
                # same, but datasets sits below refcomp.io in the layer order (tests/test_layers.py)
                mask = os.umask(0o022)
                os.umask(mask)
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), 0o666 & ~mask)
                f.write(data)
            os.replace(tmp, dest / name)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    raise OSError(f"could not download {name}: {last}")


def mnist(path=None, *, split: str = "test", download: bool = False, verify: bool = True):
    """MNIST images uint8 (N, 28, 28) and labels uint8 (N,) of ``split`` ("train" | "test").

    Looks for ``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``
    (prefix "train" or "t10k") in the directory. A ``.gz`` file is checked, when
    ``verify``, against its official MD5 or, re-compressed, by the MD5 of its
    uncompressed bytes (MNIST_RAW_MD5); a raw file by its IDX header and size.
    """
    if split not in ("train", "test"):
        raise ValidationError("split", "'train' or 'test'", repr(split))
    d = Path(path) if path is not None else default_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind, ndim in (("images-idx3", 3), ("labels-idx1", 1)):
        gz = d / f"{prefix}-{kind}-ubyte.gz"
        raw = d / f"{prefix}-{kind}-ubyte"
        if not gz.exists() and not raw.exists():
            if not download:
                raise FileNotFoundError(
                    f"MNIST file {gz.name} not found in {d} (pass path=, set REFCOMP_MNIST_DIR, "
                    "or download=True)")
            _download(gz.name, d)
        f = gz if gz.exists() else raw
        a = _read_verified_gz(gz) if f is gz and verify else read_idx(f)
        if a.ndim != ndim or a.dtype != np.uint8:
            raise FileFormatError(f"{f}: expected a uint8 IDX array of rank {ndim}, got {a.dtype} {a.shape}")
        arrays.append(a)
    images, labels = arrays
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise FileFormatError(f"{d}: {images.shape} images do not match {labels.shape} labels")
    if labels.max() > 9:
        raise FileFormatError(f"{d}: labels outside 0..9")
    return images, labels


def _read_verified_gz(gz: Path) -> np.ndarray:
    """The IDX array of an official .gz file, or of the official bytes re-compressed: gzip keeps no
    checksum comparable with a published one, so those are checked by the MD5 of the inflated bytes
    (inflated once, within _gunzip's bound, and parsed from the same bytes)."""
    packed = gz.read_bytes()
    data = _gunzip(packed, gz)
    digest = hashlib.md5(packed).hexdigest()
    if digest != MNIST_FILES[gz.name]:
        raw = MNIST_RAW_MD5.get(gz.name)
        if raw is None or hashlib.md5(data).hexdigest() != raw:
            raise FileFormatError(f"{gz}: MD5 {digest} differs from the official {MNIST_FILES[gz.name]}"
                                  + (f" and its content is not the official one (MD5 {raw})" if raw else ""))
    return _parse_idx(data, str(gz))


def mnist_protocol(path=None, *, n_val: int = 5000, normalize: bool = False, flatten: bool = False):
    """The papers' protocol: ``(x_train, y_train), (x_val, y_val), (x_test, y_test)``.

    train = the first 60,000 − ``n_val`` training images, val = the last ``n_val``
    of them (choose hyper-parameters here), test = the 10,000 test images (report
    once). The held-out part is the *last* images, not a random draw, so it is
    the same for every seed and every reader. x float32 (N, 1, 28, 28) (or (N,
    784) when ``flatten``) holding pixel/255, standardised with MNIST_MEAN /
    MNIST_STD when ``normalize``; y int64.
    """
    images, labels = mnist(path, split="train")
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val < len(labels):
        raise ValidationError("n_val", f"an int in [0, {len(labels)})", repr(n_val))
    test_images, test_labels = mnist(path, split="test")

    def prepare(x, y):
        x = x.astype(np.float32) / np.float32(255)
        if normalize:
            x = (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
        x = x.reshape(-1, 784) if flatten else x[:, None, :, :]
        return np.ascontiguousarray(x), y.astype(np.int64)

    cut = len(labels) - int(n_val)
    return (prepare(images[:cut], labels[:cut]), prepare(images[cut:], labels[cut:]),
            prepare(test_images, test_labels))


def split_indices(n: int, n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """perm = default_rng(seed).permutation(n); train = perm[:n_train], test = perm[n_train:n_train+n_test]."""
    if n_train < 0 or n_test < 0 or n_train + n_test > n:
        raise ValidationError("n_train + n_test", f"non-negative sizes summing to <= n={n}", (n_train, n_test))
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n_train], perm[n_train:n_train + n_test]


def mnist_fixture(path=None, *, n_train: int = 8000, n_test: int = 2000, seed: int = 0,
                  normalize: bool = False, flatten: bool = False):
    """The seeded 8,000 / 2,000 split of the MNIST *test* set: a fast fixture for unit tests (and the
    first wave's results), not the papers' protocol (:func:`mnist_protocol`).

    Returns ``(x_train, y_train), (x_test, y_test)``; x float32 (N, 1, 28, 28)
    (or (N, 784) when flatten) holding pixel/255 in [0, 1] (torchvision's ToTensor),
    further standardised with MNIST_MEAN / MNIST_STD when ``normalize``; y int64.
    The accuracy figures in docs/nn.md use normalize=False: with standardised
    inputs (max 2.8) the Caffe LeNet-5, which has no activation between its
    convolutions, diverges at lr 0.05 / momentum 0.9 in our runs.
    """
    images, labels = mnist(path, split="test")
    tr, te = split_indices(len(labels), n_train, n_test, seed)
    x = images.astype(np.float32) / np.float32(255)
    if normalize:
        x = (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
    x = x.reshape(-1, 784) if flatten else x[:, None, :, :]
    y = labels.astype(np.int64)
    return (np.ascontiguousarray(x[tr]), y[tr]), (np.ascontiguousarray(x[te]), y[te])


#: the datasets :func:`load_split` knows
SPLITS = ("digits", "mnist", "mnist-fixture")


def load_split(name: str, *, seed: int = 0, path=None):
    """``(x_train, y_train), (x_test, y_test)`` of the dataset ``name``.

    "digits": :func:`digits` split 1,437 / 360 by ``split_indices(1797, 1437, 360, seed)``
    (x float32 (N, 64), y int64). "mnist": the papers' protocol
    (:func:`mnist_protocol`): the first 55,000 training images and the 10,000
    test images (the last 5,000 training images, the validation part, are left
    out: choose hyper-parameters on them with mnist_protocol); the split is the
    same for every ``seed``. "mnist-fixture": ``mnist_fixture(path, seed=seed)``,
    the 8,000 / 2,000 split of the MNIST test set (unit tests). MNIST x float32
    (N, 1, 28, 28) in [0, 1], y int64; ``path``: the MNIST directory (see
    :func:`mnist`); digits ignore it. Raises ValidationError naming ``name`` for
    any other name.
    """
    one_of(name, "name", SPLITS)
    if name == "mnist":
        train_set, _val, test_set = mnist_protocol(path)
        return train_set, test_set
    if name == "mnist-fixture":
        return mnist_fixture(path, seed=seed)
    x, y = digits()
    tr, te = split_indices(len(y), 1437, 360, seed=seed)
    return (x[tr], y[tr]), (x[te], y[te])


def batches(x: np.ndarray, y, batch_size: int, *, rng=None, drop_last: bool = False) -> Iterator[tuple]:
    """Yield (x[b], y[b]) mini-batches; order shuffled by ``rng`` (Generator or seed), else kept.

    ``y`` is an array or a tuple of arrays of x's length (several targets per
    sample, e.g. labels and a teacher's logits); a tuple is cut the same way.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValidationError("batch_size", "an int >= 1", repr(batch_size))
    if isinstance(y, tuple):
        for i, t in enumerate(y):
            if len(t) != len(x):
                raise ShapeError(f"y[{i}]", f"{len(x)} entries (as x)", len(t))

        def take(sel):
            return tuple(t[sel] for t in y)
    else:
        if len(x) != len(y):
            raise ShapeError("y", f"{len(x)} entries (as x)", len(y))

        def take(sel):
            return y[sel]
    n = len(x)
    if rng is None:
        order = None
    else:
        g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = g.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for s in range(0, stop, batch_size):
        if order is None:
            yield x[s:s + batch_size], take(slice(s, s + batch_size))
        else:
            idx = order[s:s + batch_size]
            yield x[idx], take(idx)
