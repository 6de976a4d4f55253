"""Conformance: the onnx package's own node test cases for the seven quantization ops, bit-exact.

The cases (model + input/output arrays) come from
onnx.backend.test.case.node.collect_testcases(); each node is mapped to the
refcomp.ops function of the same name (inputs positional, attributes as
keywords). The three ``*_expanded`` DynamicQuantizeLinear cases are the ONNX
function expansion of the op: they are run through the op itself on the same
inputs and must give the same outputs.
"""

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

import refcomp.ops as ops  # noqa: E402

OPS = {
    "QuantizeLinear": ops.quantize_linear,
    "DequantizeLinear": ops.dequantize_linear,
    "DynamicQuantizeLinear": ops.dynamic_quantize_linear,
    "MatMulInteger": ops.matmul_integer,
    "QLinearMatMul": ops.qlinear_matmul,
    "ConvInteger": ops.conv_integer,
    "QLinearConv": ops.qlinear_conv,
}


def _cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unrelated generators warn on purpose (overflow, log 0)
        all_cases = collect_testcases()
    found = []
    for case in all_cases:
        kinds = {n.op_type for n in case.model.graph.node}
        if case.name.startswith("test_dynamicquantizelinear") and case.name.endswith("_expanded"):
            found.append((case, "DynamicQuantizeLinear"))
        elif len(kinds) == 1 and kinds <= set(OPS):
            found.append((case, kinds.pop()))
    return found


CASES = _cases()


def test_all_cases_collected():
    # 45 with onnx 1.23.2 (42 + the 3 expanded DynamicQuantizeLinear); an empty collection must fail.
    assert len(CASES) >= 42
    assert {op for _, op in CASES} == set(OPS)


def _attributes(node):
    out = {}
    for a in node.attribute:
        val = helper.get_attribute_value(a)
        if isinstance(val, bytes):
            val = val.decode()
        out[a.name] = val
    return out


def _array(t):
    # Some cases store float8 / sub-byte tensors as TensorProto: decode as onnx does.
    if isinstance(t, onnx.TensorProto):
        return onnx.numpy_helper.to_array(t)
    return np.asarray(t)


def _call(case, op_type, inputs):
    inputs = [_array(t) for t in inputs]
    graph = case.model.graph
    if len(graph.node) == 1:
        node = graph.node[0]
        by_name = {vi.name: arr for vi, arr in zip(graph.input, inputs)}
        args = [by_name[n] if n else None for n in node.input]
        kwargs = _attributes(node)
    else:  # expanded function: the op on the graph inputs
        args, kwargs = list(inputs), {}
    result = OPS[op_type](*args, **kwargs)
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("case, op_type", CASES, ids=[c.name for c, _ in CASES])
def test_node_case_bit_exact(case, op_type):
    assert case.data_sets, case.name
    for inputs, expected in case.data_sets:
        got = _call(case, op_type, inputs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = _array(e)
            assert g.dtype == e.dtype, (case.name, g.dtype, e.dtype)
            assert g.shape == e.shape, (case.name, g.shape, e.shape)
            # compare bit patterns: exact, and NaN == NaN only when the encodings agree
            assert g.tobytes() == e.tobytes(), (case.name, g, e)
