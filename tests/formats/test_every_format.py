"""Every weight format is held by a layer, computes through it, and saves and loads bit for bit.

The cases below must cover every WeightFormat that refcomp.formats exports, so a
new format without a file round trip fails here, and the compositions (a format
whose fields are formats, stored as "parts"): the quantized and the clustered
CSR, quantized low-rank factors.
"""

import ml_dtypes
import numpy as np
import pytest

import refcomp.formats as formats
from refcomp import models
from refcomp.compress.lowrank.factorize import to_lowrank
from refcomp.compress.prune.deploy import csr_weight
from refcomp.compress.quantize.dynamic import dynamic_weight
from refcomp.compress.quantize.lowbit import power_of_two_quantize
from refcomp.compress.quantize.rtn import rtn_quantize
from refcomp.compress.share.cluster import cluster_weight
from refcomp.formats import (Clustered, CSRMatrix, Dense, DynamicQuantized, HalfPrecision, Hashed, LowRank,
                             PowerOfTwo, QTensor, RelativeIndexCSR, StaticQuantized, WeightFormat)
from refcomp.io import load_model, save_model
from refcomp.io.model_file import SUFFIXES, model_header
from refcomp.quant import choose_qparams

RNG = np.random.default_rng(7)
W = RNG.standard_normal((100, 300)).astype(np.float32) * 0.05  # LeNet-300-100's fc2 shape: (100, 300)


def _qtensor(w):
    """int4, symmetric, one scale per block of 30 inputs of each row (the ONNX blocked layout)."""
    blocks = w.reshape(w.shape[0], -1, 30)
    qp = choose_qparams(blocks.min(axis=2), blocks.max(axis=2), "int4", symmetric=True, axis=1, block_size=30)
    return QTensor.quantize(w, qp)


def _pruned(w, threshold=0.08):
    return np.where(np.abs(w) > threshold, w, 0).astype(np.float32)


def _static(w):
    """Static input quantization with smoothing: the weight as stored is W·diag(m)."""
    from refcomp.quant import QParams

    m = np.linspace(0.5, 2, w.shape[1]).astype(np.float32)
    ws = w * m
    qp = choose_qparams(ws.min(axis=1), ws.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
    return StaticQuantized(QTensor.quantize(ws, qp), QParams(np.float32(0.02), np.uint8(0), "uint8"), smooth=m)


def _quantized_lowrank(w):
    lr = to_lowrank(w, rank=8)
    return LowRank(rtn_quantize(lr.left), rtn_quantize(lr.right))


#: case name -> (format class, the weight W in that format)
CASES = {
    "Dense": (Dense, lambda w: Dense(w.copy())),
    "QTensor": (QTensor, _qtensor),
    "CSRMatrix": (CSRMatrix, lambda w: CSRMatrix.from_dense(_pruned(w))),
    "CSRMatrix[QTensor int8]": (CSRMatrix, lambda w: csr_weight(_pruned(w), values="int8")),
    "CSRMatrix[QTensor int4]": (CSRMatrix, lambda w: csr_weight(_pruned(w), values="int4")),
    "CSRMatrix[Clustered]": (CSRMatrix, lambda w: csr_weight(cluster_weight(w, 3, mask=np.abs(w) > 0.08, rng=0))),
    "LowRank": (LowRank, lambda w: to_lowrank(w, rank=8)),
    "LowRank[QTensor]": (LowRank, _quantized_lowrank),
    "Clustered": (Clustered, lambda w: cluster_weight(w, 4, mask=np.abs(w) > 0.02, rng=0)),
    "HalfPrecision": (HalfPrecision, lambda w: HalfPrecision(w.astype(ml_dtypes.bfloat16))),
    "Hashed": (Hashed, lambda w: Hashed(w.ravel()[:3750].copy(), seed=3, shape=w.shape)),
    "PowerOfTwo": (PowerOfTwo, lambda w: power_of_two_quantize(w, bits=4)),
    "RelativeIndexCSR": (RelativeIndexCSR, lambda w: RelativeIndexCSR.from_clustered(
        cluster_weight(w, 4, mask=np.abs(w) > 0.06, rng=0), index_bits=4)),
    "DynamicQuantized": (DynamicQuantized, dynamic_weight),
    "StaticQuantized": (StaticQuantized, _static),
}


def test_the_cases_cover_every_exported_format():
    exported = {getattr(formats, n) for n in formats.__all__}
    want = {c for c in exported if isinstance(c, type) and issubclass(c, WeightFormat) and c is not WeightFormat}
    assert want == {cls for cls, _ in CASES.values()}


def test_the_composition_cases_are_compositions():
    for name, (_, make) in CASES.items():
        if "[" in name:
            assert any(isinstance(f, WeightFormat) for f in make(W).fields().values()), name


def _stored(fmt, prefix="") -> dict:
    """Every array a format stores, parts included: {path: (dtype, shape, bytes)}."""
    out = {}
    for k, a in fmt.fields().items():
        if isinstance(a, WeightFormat):
            out[f"{prefix}{k}:"] = type(a).__name__
            out.update(_stored(a, f"{prefix}{k}."))
        else:
            a = np.asarray(a)
            out[prefix + k] = (a.dtype.str, a.shape, a.tobytes())
    return out


@pytest.mark.parametrize("container", ["safetensors", "npz", "compact"])
@pytest.mark.parametrize("case", list(CASES))
def test_layer_holds_the_format_and_the_file_keeps_it(case, container, tmp_path):
    cls, make = CASES[case]
    m = models.lenet_300_100().eval()
    fmt = make(W)
    assert isinstance(fmt, cls) and fmt.shape == W.shape
    m["fc2"].weight = fmt
    x = RNG.standard_normal((4, 784)).astype(np.float32)
    y = m.forward(x)
    # the layer multiplies by what the format stands for
    h = np.maximum(m["fc1"].forward(x), 0)
    want = h @ fmt.to_dense().T + m["fc2"].bias.data
    if cls in (DynamicQuantized, StaticQuantized):
        # the input is quantized too (eq. D1): the layer adds its bias to the format's own product,
        # which is near the product with the dequantized weight
        np.testing.assert_array_equal(m["fc2"].forward(h), fmt.matmul(h) + m["fc2"].bias.data)
        np.testing.assert_allclose(m["fc2"].forward(h), want, rtol=0, atol=0.02 * np.abs(want).max())
    else:
        np.testing.assert_allclose(m["fc2"].forward(h), want, rtol=1e-5, atol=1e-5)
    back = load_model(save_model(m, tmp_path / f"m{SUFFIXES[container]}"))
    assert type(back["fc2"].weight) is cls
    assert back["fc2"].weight.to_dense().tobytes() == fmt.to_dense().tobytes()
    assert back["fc2"].weight.nbytes == fmt.nbytes
    assert back.forward(x).tobytes() == y.tobytes()
    # every stored array, parts included, bit for bit
    assert _stored(back["fc2"].weight) == _stored(fmt)
    assert model_header(back)["weights"]["fc2.weight"] == model_header(m)["weights"]["fc2.weight"]
