"""choose_qparams against onnxruntime's quantization tool (compute_scale_zp), a real reference.

onnxruntime's symmetric range for int8 / int16 is the restricted one (-127..127,
-32767..32767), so those are compared with ``restricted_range=True``. Its
zero point divides by the float64 scale, refcomp's by the float32 scale it
stores: they can differ by one only when ``lo / scale`` is within float32
rounding of a tie, which the comparison skips.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refcomp.quant import choose_qparams

quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")

ONNX = {"uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "uint4": 21, "int4": 22}
ORT_RESTRICTS_SYMMETRIC = {"int8", "int16"}

bound = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@settings(max_examples=150)
@given(a=bound, b=bound, dtype=st.sampled_from(sorted(ONNX)), symmetric=st.booleans())
def test_same_scale_and_zero_point_as_onnxruntime(a, b, dtype, symmetric):
    lo, hi = np.float32(min(a, b)), np.float32(max(a, b))
    qmin, qmax = quant_utils.get_qmin_qmax_for_qType(ONNX[dtype], symmetric=symmetric)
    ort_zp, ort_scale = quant_utils.compute_scale_zp(lo, hi, qmin, qmax, symmetric=symmetric)
    amax = max(-float(lo), float(hi), 0.0)
    assume(amax / (float(qmax) - float(qmin)) >= np.finfo(np.float32).tiny)  # ORT's degenerate branch: scale 1
    ours = choose_qparams(lo, hi, dtype, symmetric=symmetric,
                          restricted_range=symmetric and dtype in ORT_RESTRICTS_SYMMETRIC)
    assert ours.scale == np.float32(ort_scale)
    if not symmetric:
        exact = float(qmin) - min(float(lo), 0.0) / (max(float(hi), 0.0) - min(float(lo), 0.0)) * (
            float(qmax) - float(qmin))
        assume(abs(exact - np.floor(exact) - 0.5) > 1e-4)  # not near a rounding tie
    assert int(ours.zero_point.astype(np.int64)) == int(np.asarray(ort_zp).astype(np.int64))


def test_reduce_range_differs_on_int8_by_design():
    # onnxruntime's reduced int8 range is -64..64 (symmetric, 129 codes), PyTorch's and refcomp's
    # -64..63 (one bit less); both keep vpmaddubsw's pair sums within int16.
    assert tuple(int(v) for v in quant_utils.get_qmin_qmax_for_qType(3, reduce_range=True)) == (-64, 64)
    qp = choose_qparams(-1.0, 1.0, "int8", reduce_range=True)
    assert (qp.qmin, qp.qmax) == (-64, 63)
    assert 2 * 255 * 64 <= 32767
