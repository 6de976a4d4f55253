"""Tiny single-node ONNX models run by onnxruntime, one cached session per signature.

Used by the differential tests and by the reproducers of docs/deviations.md.
Inputs are graph inputs (not initializers) with symbolic dimensions, so one
session serves every shape of the same rank and dtype.
"""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
from onnx import helper

ORT_VERSION = ort.__version__


def _elem_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


@functools.lru_cache(maxsize=256)
def _session(op_type, opset, in_sig, out_sig, attrs, config):
    inputs, names = [], []
    for i, sig in enumerate(in_sig):
        if sig is None:
            names.append("")
            continue
        elem, rank = sig
        name = f"in{i}"
        names.append(name)
        inputs.append(helper.make_tensor_value_info(name, elem, [f"d{i}_{j}" for j in range(rank)]))
    while names and names[-1] == "":
        names.pop()
    outs = [f"out{j}" for j in range(len(out_sig))]
    node = helper.make_node(op_type, names, outs, **dict(attrs))
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, out_sig)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    for k, v in config:
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(op_type, inputs, out_dtypes, *, opset=21, config=(), **attrs):
    """Run one ONNX node on ``inputs`` (arrays, or None for an absent optional input).

    ``out_dtypes``: the NumPy dtype of each output. Returns a tuple of arrays.
    """
    out_sig = tuple(_elem_type(d) for d in out_dtypes)
    sig = tuple(None if a is None else (_elem_type(np.asarray(a).dtype), np.ndim(a)) for a in inputs)
    attr_key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attrs.items() if v is not None))
    sess = _session(op_type, opset, sig, out_sig, attr_key, tuple(config))
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return tuple(sess.run(None, feeds))


__all__ = ["run", "ORT_VERSION"]
