"""refcomp.onnx.load: models built with onnx.helper, compared with onnxruntime; bad input.

The error measure is max|y − y_ort| / max|y_ort|, relative to the output's
scale rather than per element (an element near 0 has no meaningful relative
error). Bound 1e-5: both sides compute in float32 (ε = 6e-8) with different
summation orders (BLAS blocking, im2col vs direct convolution, a fused vs a
decomposed LayerNorm, α folded into the Gemm weight); the rounding error of
sums of k terms grows like k·ε ≈ 1e-5 for k ≈ 160 in the worst case and like
√k·ε ≈ 1e-6 in practice, while a wrong mapping (a missing bias, a transposed
weight, a wrong ε or axis) is off by 1e-3 or more.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refcomp.errors import BackendUnavailableError, DTypeError, FileFormatError, UnsupportedOperatorError  # noqa: E402
from refcomp.io import load_model, save_model  # noqa: E402
from refcomp.nn import Graph  # noqa: E402
from refcomp.onnx import load  # noqa: E402

BOUND = 1e-5
#: the measured errors, printed by the summary test (pytest -s) for docs/onnx.md
MEASURED: dict[str, float] = {}


def _model(nodes, inputs, outputs, inits=(), opset=17, value_info=()):
    g = helper.make_graph(nodes, "g", inputs, outputs,
                          initializer=[numpy_helper.from_array(a, n) for n, a in dict(inits).items()],
                          value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10           # what onnxruntime 1.20+ reads for opsets up to 21
    return m


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(rng, *shape, scale=None):
    scale = 1 / math.sqrt(shape[-1] if len(shape) < 4 else np.prod(shape[1:])) if scale is None else scale
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _ort(m, feeds):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _rel(y, ref) -> float:
    return float(np.max(np.abs(np.asarray(y, np.float64) - ref)) / np.max(np.abs(ref)))


def _check(name, m, feeds, tmp_path):
    """refcomp's outputs vs onnxruntime's, from the ModelProto and from the saved file; then the model file."""
    ref = _ort(m, feeds)[0]
    model = load(m)
    assert isinstance(model, Graph)
    y = model.forward(*feeds.values())
    err = _rel(y, ref)
    MEASURED[name] = err
    assert y.shape == ref.shape and y.dtype == np.float32
    assert err <= BOUND, f"{name}: max relative error {err:.2e}"
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, path)
    np.testing.assert_array_equal(load(path).forward(*feeds.values()), y)
    # the round trip into refcomp's own file keeps every weight and buffer bit for bit
    saved = load_model(save_model(model, tmp_path / f"{name}.npz"))
    np.testing.assert_array_equal(saved.forward(*feeds.values()), y)
    return model


# --- the four models of the issue -----------------------------------------------------------
def mlp(rng):
    """Gemm (transB=1) + Relu, then Gemm (transB=0, α, β) + Relu + Gemm."""
    inits = {"W1": _w(rng, 32, 20), "b1": _w(rng, 32), "W2": _w(rng, 32, 16), "b2": _w(rng, 1, 16),
             "W3": _w(rng, 10, 16), "b3": _w(rng, 10)}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("Gemm", ["a1", "W2", "b2"], ["h2"], name="fc2", alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
             helper.make_node("Gemm", ["a2", "W3", "b3"], ["y"], name="fc3", transB=1)]
    return _model(nodes, [_f("x", ["N", 20])], [_f("y", ["N", 10])], inits)


def lenet5(rng):
    """Conv(pad 2)/Relu/MaxPool, Conv/Relu/MaxPool, Flatten, Gemm/Relu, Gemm."""
    inits = {"c1w": _w(rng, 6, 1, 5, 5), "c1b": _w(rng, 6), "c2w": _w(rng, 16, 6, 5, 5), "c2b": _w(rng, 16),
             "f1w": _w(rng, 32, 64), "f1b": _w(rng, 32), "f2w": _w(rng, 10, 32), "f2b": _w(rng, 10)}
    nodes = [helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], name="conv1", kernel_shape=[5, 5], pads=[2] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "f1w", "f1b"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="relu3"),
             helper.make_node("Gemm", ["hr", "f2w", "f2b"], ["y"], name="fc2", transB=1)]
    return _model(nodes, [_f("x", ["N", 1, 16, 16])], [_f("y", ["N", 10])], inits)


def _bn(rng, name, c, inits):
    inits.update({f"{name}_g": (1 + 0.1 * rng.standard_normal(c)).astype(np.float32),
                  f"{name}_b": _w(rng, c, scale=0.1), f"{name}_m": _w(rng, c, scale=0.1),
                  f"{name}_v": rng.uniform(0.5, 2, c).astype(np.float32)})
    return [f"{name}_g", f"{name}_b", f"{name}_m", f"{name}_v"]


def resnet(rng):
    """Stem Conv/BN/LeakyRelu, a basic block with a skip Add, a strided grouped Conv, AveragePool,
    GlobalAveragePool, Flatten, Gemm."""
    inits = {"w0": _w(rng, 8, 3, 3, 3), "w1": _w(rng, 8, 8, 3, 3), "w2": _w(rng, 8, 8, 3, 3),
             "w3": _w(rng, 16, 4, 3, 3), "b3": _w(rng, 16), "fw": _w(rng, 5, 16), "fb": _w(rng, 5)}
    bn = {k: _bn(rng, k, 8, inits) for k in ("bn0", "bn1", "bn2")}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem", pads=[1] * 4),
             helper.make_node("BatchNormalization", ["c0", *bn["bn0"]], ["n0"], name="bn0", epsilon=1e-3),
             helper.make_node("LeakyRelu", ["n0"], ["a0"], name="lrelu0", alpha=0.1),
             helper.make_node("Conv", ["a0", "w1"], ["c1"], name="block_conv1", pads=[1] * 4),
             helper.make_node("BatchNormalization", ["c1", *bn["bn1"]], ["n1"], name="bn1"),
             helper.make_node("Relu", ["n1"], ["a1"], name="block_relu1"),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], name="block_conv2", pads=[1] * 4, dilations=[1, 1]),
             helper.make_node("BatchNormalization", ["c2", *bn["bn2"]], ["n2"], name="bn2"),
             helper.make_node("Add", ["n2", "a0"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["a2"], name="block_relu2"),
             helper.make_node("Conv", ["a2", "w3", "b3"], ["c3"], name="down", strides=[2, 2], group=2,
                              pads=[2, 2, 2, 2], dilations=[2, 2]),
             helper.make_node("AveragePool", ["c3"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("GlobalAveragePool", ["ap"], ["gp"], name="gap"),
             helper.make_node("Flatten", ["gp"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    return _model(nodes, [_f("x", ["N", 3, 8, 8])], [_f("y", ["N", 5])], inits)


def transformer(rng, opset=17, n=2, t=5, d=16, heads=2, ff=32):
    """A post-LN encoder layer as torch exports it: MatMul + Add projections, the head split with a
    Reshape target built by Shape/Gather/Unsqueeze/Concat (folded), Q·Kᵀ / √d, an additive mask
    made by Equal/Where/Cast/Unsqueeze from constant ids (folded), Softmax, P·V, the decomposed
    LayerNorm, the Erf GELU, and LayerNormalization."""
    dk = d // heads
    i64 = lambda *v: np.array(v, np.int64)
    inits = {f"W{k}": _w(rng, d, d) for k in "qkvo"}
    inits.update({f"b{k}": _w(rng, d, scale=0.1) for k in "qkvo"})
    inits.update({"W1": _w(rng, d, ff), "b1": _w(rng, ff, scale=0.1), "W2": _w(rng, ff, d), "b2": _w(rng, d, scale=0.1),
                  "g1": (1 + 0.1 * rng.standard_normal(d)).astype(np.float32), "be1": _w(rng, d, scale=0.1),
                  "g2": (1 + 0.1 * rng.standard_normal(d)).astype(np.float32), "be2": _w(rng, d, scale=0.1),
                  "heads_tail": i64(heads, dk), "zero": np.array(0, np.int64), "one": np.array(1, np.int64),
                  "split": i64(0, 0, heads, dk),
                  "merge": i64(0, 0, d), "sqrt_dk": np.array(math.sqrt(dk), np.float32),
                  "ids": np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]][:n], np.int64)[:, :t],
                  "neg": np.array(-1e4, np.float64), "fzero": np.array(0.0, np.float64),
                  "two": np.array(2.0, np.float32), "eps": np.array(1e-6, np.float32),
                  "sqrt2": np.array(math.sqrt(2), np.float32), "c1": np.array(1.0, np.float32),
                  "half": np.array(0.5, np.float32), "axes12": i64(1, 2), "axes0": i64(0)})
    if opset >= 18:
        inits["last"] = i64(-1)
    N = helper.make_node
    nodes = []
    for k in "qkv":
        nodes += [N("MatMul", ["x", f"W{k}"], [f"{k}_mm"], name=f"{k}_proj"),
                  N("Add", [f"{k}_mm", f"b{k}"], [f"{k}_b"], name=f"{k}_bias")]
    # Q's head split target from the input's shape: [N, T, heads, dk] (folds: the shape is static)
    nodes += [N("Shape", ["x"], ["xs"], name="shape"),
              N("Gather", ["xs", "zero"], ["n0"], name="g0", axis=0),
              N("Gather", ["xs", "one"], ["t0"], name="g1", axis=0),
              N("Unsqueeze", ["n0", "axes0"], ["n1"], name="u0"), N("Unsqueeze", ["t0", "axes0"], ["t1"], name="u1"),
              N("Concat", ["n1", "t1", "heads_tail"], ["qshape"], name="cat_shape", axis=0),
              N("Reshape", ["q_b", "qshape"], ["q_r"], name="q_split"),
              N("Transpose", ["q_r"], ["qh"], name="q_heads", perm=[0, 2, 1, 3]),
              N("Reshape", ["k_b", "split"], ["k_r"], name="k_split"),
              N("Transpose", ["k_r"], ["kt"], name="k_heads", perm=[0, 2, 3, 1]),
              N("Reshape", ["v_b", "split"], ["v_r"], name="v_split"),
              N("Transpose", ["v_r"], ["vh"], name="v_heads", perm=[0, 2, 1, 3]),
              N("MatMul", ["qh", "kt"], ["s"], name="scores"),
              N("Div", ["s", "sqrt_dk"], ["ss"], name="scale"),
              # mask: 0 where ids != 0, -1e4 at padding; (N, 1, 1, T)
              N("Equal", ["ids", "zero"], ["pad"], name="is_pad"),
              N("Where", ["pad", "neg", "fzero"], ["m64"], name="mask_values"),
              N("Cast", ["m64"], ["m32"], name="mask_cast", to=TensorProto.FLOAT),
              N("Unsqueeze", ["m32", "axes12"], ["mask"], name="mask_4d"),
              N("Add", ["ss", "mask"], ["sm"], name="add_mask"),
              N("Softmax", ["sm"], ["p"], name="softmax", axis=-1),
              N("MatMul", ["p", "vh"], ["ctx"], name="context"),
              N("Transpose", ["ctx"], ["ctx_t"], name="merge_heads", perm=[0, 2, 1, 3]),
              N("Reshape", ["ctx_t", "merge"], ["ctx_r"], name="merge"),
              N("MatMul", ["ctx_r", "Wo"], ["o_mm"], name="o_proj"),
              N("Add", ["o_mm", "bo"], ["o"], name="o_bias"),
              N("Add", ["x", "o"], ["r1"], name="residual1")]
    # LayerNorm, decomposed as torch exports it (ReduceMean axes: an attribute < 18, an input >= 18)
    rm = (lambda i, o, nm: N("ReduceMean", [i], [o], name=nm, axes=[-1])) if opset < 18 else \
        (lambda i, o, nm: N("ReduceMean", [i, "last"], [o], name=nm))
    nodes += [rm("r1", "mu", "ln1_mean"), N("Sub", ["r1", "mu"], ["xc"], name="ln1_sub"),
              N("Pow", ["xc", "two"], ["sq"], name="ln1_pow"), rm("sq", "var", "ln1_var"),
              N("Add", ["var", "eps"], ["ve"], name="ln1_eps"), N("Sqrt", ["ve"], ["sd"], name="ln1_sqrt"),
              N("Div", ["xc", "sd"], ["xn"], name="ln1_div"), N("Mul", ["xn", "g1"], ["xg"], name="ln1_gamma"),
              N("Add", ["xg", "be1"], ["h1"], name="ln1_beta")]
    # FFN with GELU = x·0.5·(1 + erf(x/√2)) in torch's order
    nodes += [N("MatMul", ["h1", "W1"], ["f_mm"], name="ff1"), N("Add", ["f_mm", "b1"], ["f"], name="ff1_bias"),
              N("Div", ["f", "sqrt2"], ["fd"], name="gelu_div"), N("Erf", ["fd"], ["fe"], name="gelu_erf"),
              N("Add", ["fe", "c1"], ["fa"], name="gelu_add"), N("Mul", ["f", "fa"], ["fm"], name="gelu_mul"),
              N("Mul", ["fm", "half"], ["fg"], name="gelu_half"),
              N("MatMul", ["fg", "W2"], ["g_mm"], name="ff2"), N("Add", ["g_mm", "b2"], ["g"], name="ff2_bias"),
              N("Add", ["h1", "g"], ["r2"], name="residual2"),
              N("LayerNormalization", ["r2", "g2", "be2"], ["y"], name="ln2", axis=-1, epsilon=1e-5)]
    return _model(nodes, [_f("x", [n, t, d])], [_f("y", [n, t, d])], inits, opset=opset)


def test_mlp(tmp_path):
    rng = np.random.default_rng(0)
    model = _check("mlp", mlp(rng), {"x": rng.standard_normal((7, 20)).astype(np.float32)}, tmp_path)
    assert type(model["fc2"]).__name__ == "Linear" and model["fc2"].bias.data.shape == (16,)


def test_lenet5(tmp_path):
    rng = np.random.default_rng(1)
    _check("lenet5", lenet5(rng), {"x": rng.standard_normal((3, 1, 16, 16)).astype(np.float32)}, tmp_path)


def test_resnet_block(tmp_path):
    rng = np.random.default_rng(2)
    model = _check("resnet", resnet(rng), {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)}, tmp_path)
    assert type(model["bn1"]).__name__ == "BatchNorm2d" and not model["bn1"].training


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_transformer_encoder_layer(tmp_path, opset):
    rng = np.random.default_rng(3)
    m = transformer(rng, opset=opset)
    model = _check(f"transformer_opset{opset}", m, {"x": rng.standard_normal((2, 5, 16)).astype(np.float32)},
                   tmp_path)
    kinds = [type(model[n]).__name__ for n in model.nodes]
    # the patterns became one layer each; the projections Linears with their bias; the mask one Constant
    assert kinds.count("LayerNorm") == 2 and kinds.count("GELU") == 1 and "ReduceMean" not in kinds
    assert kinds.count("Linear") == 6 and all(model[n].bias is not None for n in model.nodes
                                             if kinds[list(model.nodes).index(n)] == "Linear")
    assert kinds.count("Constant") == 2 and kinds.count("MatMul") == 2


def test_activations_and_elementwise(tmp_path):
    """Sub, Div, Mul by an activation, Sigmoid, Tanh, LeakyRelu, Gelu (opset 20, both forms), Softmax on
    axis 1, Concat, Transpose, Identity, a rank-3 MatMul with a dynamic batch axis."""
    rng = np.random.default_rng(4)
    N = helper.make_node
    inits = {"w": _w(rng, 6, 6), "c": _w(rng, 6), "d": (2 + rng.random(6)).astype(np.float32)}
    nodes = [N("MatMul", ["x", "w"], ["a"], name="proj"), N("Sub", ["a", "c"], ["b"], name="sub"),
             N("Div", ["b", "d"], ["e"], name="div"), N("Sigmoid", ["e"], ["sg"], name="sig"),
             N("Tanh", ["e"], ["th"], name="tanh"), N("Mul", ["sg", "th"], ["gt"], name="gate"),
             N("LeakyRelu", ["gt"], ["lr"], name="lrelu", alpha=0.3), N("Gelu", ["e"], ["ge"], name="gelu"),
             N("Gelu", ["e"], ["gt2"], name="gelu_tanh", approximate="tanh"),
             N("Identity", ["gt2"], ["gi"], name="ident"),
             N("Concat", ["lr", "ge", "gi"], ["cat"], name="cat", axis=-1),
             N("Transpose", ["cat"], ["tr"], name="tr", perm=[0, 2, 1]),
             N("Softmax", ["tr"], ["y"], name="sm", axis=1)]
    m = _model(nodes, [_f("x", ["N", 4, 6])], [_f("y", ["N", 18, 4])], inits, opset=20)
    _check("elementwise", m, {"x": rng.standard_normal((3, 4, 6)).astype(np.float32)}, tmp_path)


def test_embedding_gather(tmp_path):
    rng = np.random.default_rng(5)
    N = helper.make_node
    m = _model([N("Gather", ["table", "ids"], ["e"], name="embed"), N("Relu", ["e"], ["y"], name="relu")],
               [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])], [_f("y", ["N", 4, 8])],
               {"table": _w(rng, 11, 8)})
    model = _check("embedding", m, {"ids": rng.integers(0, 11, (2, 4))}, tmp_path)
    assert type(model["embed"]).__name__ == "Embedding"


def test_gemm_transa_batchnorm1d_dropout_flatten0(tmp_path):
    """Gemm with transA and a scalar C, BatchNormalization on (N, C), Dropout (inference), Flatten axis 0."""
    rng = np.random.default_rng(7)
    N = helper.make_node
    inits = {"w": _w(rng, 6, 4), "c": np.array(0.25, np.float32)}
    bn = _bn(rng, "bn", 4, inits)
    nodes = [N("Gemm", ["x", "w", "c"], ["h"], name="fc", transA=1, alpha=1.5, beta=0.5),
             N("BatchNormalization", ["h", *bn], ["n"], name="bn"),
             N("Dropout", ["n"], ["d"], name="drop"), N("Flatten", ["d"], ["y"], name="flat", axis=0)]
    m = _model(nodes, [_f("x", [6, 3])], [_f("y", [1, 12])], inits)
    _check("gemm_transA", m, {"x": rng.standard_normal((6, 3)).astype(np.float32)}, tmp_path)


def test_padded_pools_and_decomposed_layernorm_without_affine(tmp_path):
    """MaxPool and AveragePool (count_include_pad=1) with pads; a LayerNorm pattern without γ, β."""
    rng = np.random.default_rng(8)
    N = helper.make_node
    inits = {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32)}
    nodes = [N("MaxPool", ["x"], ["mp"], name="mp", kernel_shape=[3, 3], pads=[1] * 4, strides=[1, 1]),
             N("AveragePool", ["mp"], ["ap"], name="ap", kernel_shape=[2, 2], pads=[1] * 4, strides=[2, 2],
               count_include_pad=1),
             N("ReduceMean", ["ap"], ["mu"], name="mean", axes=[-1]), N("Sub", ["ap", "mu"], ["xc"], name="sub"),
             N("Pow", ["xc", "two"], ["sq"], name="pow"), N("ReduceMean", ["sq"], ["var"], name="var", axes=[-1]),
             N("Add", ["var", "eps"], ["ve"], name="eps"), N("Sqrt", ["ve"], ["sd"], name="sqrt"),
             N("Div", ["xc", "sd"], ["y"], name="div")]
    m = _model(nodes, [_f("x", ["N", 2, 6, 6])], [_f("y", ["N", 2, 4, 4])], inits)
    model = _check("pools_ln", m, {"x": rng.standard_normal((2, 2, 6, 6)).astype(np.float32)}, tmp_path)
    assert [type(v).__name__ for v in model.nodes.values()] == ["MaxPool2d", "AvgPool2d", "LayerNorm"]


def test_external_data_inside_the_folder(tmp_path):
    rng = np.random.default_rng(6)
    m = mlp(rng)
    stored = onnx.ModelProto()
    stored.CopyFrom(m)          # onnx.save moves the tensors of the proto it saves to the external file
    onnx.save(stored, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    x = rng.standard_normal((2, 20)).astype(np.float32)
    np.testing.assert_array_equal(load(tmp_path / "ext.onnx").forward(x), load(m).forward(x))


def test_imported_graph_trains_and_compresses():
    """The result is an ordinary refcomp model: backward reaches every weight, and a weight-only
    quantization (which swaps the Linear weights) keeps the output close."""
    from refcomp.compress.quantize.weight_only import quantize_weights

    rng = np.random.default_rng(9)
    model = load(transformer(rng))
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    model.train()
    y = model.forward(x)
    model.zero_grad()
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads and all(g is not None and np.isfinite(g).all() for g in grads.values())
    model.eval()
    q, report = quantize_weights(model, bits=8)
    assert len(report) == 6                       # the six projections / FFN Linears
    assert _rel(q.forward(x), model.forward(x).astype(np.float64)) < 0.05


def test_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    import refcomp.onnx._read as read

    path = tmp_path / "m.onnx"
    onnx.save(mlp(np.random.default_rng(0)), path)
    monkeypatch.setattr(read, "MAX_FILE_BYTES", 100)
    with pytest.raises(FileFormatError, match="more than the 100 a protobuf message can hold"):
        load(path)


def test_summary_of_measured_errors():
    """Runs last in this file: prints the measured errors (pytest -s) for docs/onnx.md."""
    for k, v in MEASURED.items():
        print(f"{k}: {v:.2e}")
    assert all(v <= BOUND for v in MEASURED.values())


# --- bad input ------------------------------------------------------------------------------
def _tiny(nodes=None, inits=None, opset=17, inputs=None, outputs=None):
    rng = np.random.default_rng(0)
    nodes = nodes or [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)]
    inits = {"W": _w(rng, 3, 4)} if inits is None else inits
    return _model(nodes, inputs or [_f("x", ["N", 4])], outputs or [_f("y", ["N", 3])], inits, opset=opset)


def _raw_tensor(name, dims, raw, dtype=TensorProto.FLOAT):
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def _external(tmp_path, location, offset=0, length=48):
    m = _tiny(inits={})
    t = TensorProto()
    t.name, t.data_type = "W", TensorProto.FLOAT
    t.dims.extend([3, 4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    m.graph.initializer.append(t)
    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "secret.bin").write_bytes(bytes(48))
    (tmp_path / "sub" / "w.bin").write_bytes(bytes(48))
    path = tmp_path / "sub" / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def _cycle():
    m = _tiny(nodes=[helper.make_node("Relu", ["b"], ["a"], name="r1"),
                     helper.make_node("Relu", ["a"], ["b"], name="r2"),
                     helper.make_node("Add", ["x", "b"], ["y"], name="add")], inits={})
    return m


def _truncated(tmp_path):
    raw = mlp(np.random.default_rng(0)).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(raw[:len(raw) // 2])
    return path


N = helper.make_node
BAD = {
    "unknown op": (lambda p: _tiny([N("Hardmax", ["x"], ["y"], name="hm")], {}),
                   UnsupportedOperatorError, r"node 'hm' \(Hardmax, opset 17\).*unsupported operator Hardmax"),
    "opset too new": (lambda p: _tiny(opset=22), FileFormatError, "opset 13..21.*got 22"),
    "opset too old": (lambda p: _tiny(opset=12), FileFormatError, "opset 13..21.*got 12"),
    "op newer than the opset": (lambda p: _tiny([N("Gelu", ["x"], ["y"], name="g")], {}, opset=17),
                                UnsupportedOperatorError, "Gelu is defined from opset 20"),
    "dynamic shape it cannot fold": (
        lambda p: _tiny([N("Shape", ["x"], ["s"], name="shape", end=1), N("Concat", ["s", "m1"], ["t"], axis=0),
                         N("Reshape", ["x", "t"], ["y"], name="rs")], {"m1": np.asarray([-1], np.int64)},
                        outputs=[_f("y", ["N", 4])]),
        UnsupportedOperatorError, r"node 'shape' \(Shape, opset 17\).*dynamic shape"),
    "non-constant Reshape shape with allowzero": (
        lambda p: _tiny([N("Reshape", ["x", "s"], ["y"], name="rs", allowzero=1)], {},
                        inputs=[_f("x", [2, 4]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])]),
        UnsupportedOperatorError, r"node 'rs' \(Reshape.*allowzero"),
    "missing initializer": (lambda p: _tiny(inits={}), FileFormatError, "input 'W'.*missing input"),
    "missing graph input": (lambda p: _tiny([N("Relu", ["W"], ["y"], name="r")], inputs=[_f("W", [3, 4])]),
                            FileFormatError, "no input besides the initializers"),
    "float64 weight": (lambda p: _tiny(inits={"W": np.zeros((3, 4))}), DTypeError, r"'fc'.*float32 weight B.*float64"),
    "int weight": (lambda p: _tiny(inits={"W": np.zeros((3, 4), np.int64)}), DTypeError, "float32 weight B"),
    "string tensor": (lambda p: _tiny(inits={"W": np.array([["a"] * 4] * 3)}), DTypeError,
                      "initializer 'W'.*STRING"),
    "cycle": (lambda p: _cycle(), FileFormatError, "cycle"),
    "truncated protobuf": (_truncated, FileFormatError, "truncated or corrupted|opset_import|missing input|no input"),
    "external data outside the folder": (lambda p: _external(p, "../secret.bin"), FileFormatError,
                                         "leaves the model's folder"),
    "external data absolute path": (lambda p: _external(p, str(p / "secret.bin")), FileFormatError,
                                    "must be a relative path"),
    "external data past the end": (lambda p: _external(p, "w.bin", offset=8), FileFormatError, "ends past the end"),
    "external data of a ModelProto": (lambda p: onnx.load(_external(p, "w.bin"), load_external_data=False),
                                      FileFormatError, "needs the model's path"),
    "huge declared dims": (lambda p: _with_tensor(_raw_tensor("W", [2 ** 20, 2 ** 20], b"\0" * 16)),
                           FileFormatError, r"dims \[1048576, 1048576\] declare .* more than"),
    "raw data of the wrong size": (lambda p: _with_tensor(_raw_tensor("W", [3, 4], b"\0" * 40)),
                                   FileFormatError, "raw_data holds 40 bytes, dims .* need 48"),
    "duplicate node outputs": (lambda p: _tiny([N("Relu", ["x"], ["y"], name="a"),
                                                N("Sigmoid", ["x"], ["y"], name="b")], {}, outputs=[_f("y", ["N", 4])]),
                               FileFormatError, "'y' is produced twice"),
    "attribute of wrong type": (lambda p: _tiny([N("Gemm", ["x", "W"], ["y"], name="fc", transB=1.0)]),
                                FileFormatError, "'fc' \\(Gemm\\): attribute 'transB' has type FLOAT, expected I"),
    "Conv auto_pad SAME_UPPER": (
        lambda p: _tiny([N("Conv", ["x", "W"], ["y"], name="conv", auto_pad="SAME_UPPER")],
                        {"W": np.zeros((2, 1, 3, 3), np.float32)}, inputs=[_f("x", [1, 1, 5, 5])],
                        outputs=[_f("y", [1, 2, 5, 5])]),
        UnsupportedOperatorError, r"'conv' \(Conv, opset 17\): expected auto_pad NOTSET or VALID.*SAME_UPPER"),
    "asymmetric pads": (
        lambda p: _tiny([N("Conv", ["x", "W"], ["y"], name="conv", pads=[0, 0, 1, 1])],
                        {"W": np.zeros((2, 1, 3, 3), np.float32)}, inputs=[_f("x", [1, 1, 5, 5])],
                        outputs=[_f("y", [1, 2, 4, 4])]),
        UnsupportedOperatorError, "pads equal at both ends"),
    "lone Erf": (lambda p: _tiny([N("Erf", ["x"], ["y"], name="erf")], {}, outputs=[_f("y", ["N", 4])]),
                 UnsupportedOperatorError, r"'erf' \(Erf.*GELU pattern"),
    "huge ConstantOfShape": (
        lambda p: _tiny([N("ConstantOfShape", ["shape"], ["big"], name="cos"), N("Add", ["x", "big"], ["y"], name="a")],
                        {"shape": np.array([2 ** 20, 2 ** 20], np.int64)}),
        UnsupportedOperatorError, r"'cos' \(ConstantOfShape.*at most"),
    "huge folded MatMul": (
        lambda p: _tiny([N("MatMul", ["a", "b"], ["big"], name="outer"), N("Add", ["x", "big"], ["y"], name="add")],
                        {"a": np.zeros((2 ** 16, 1), np.float32), "b": np.zeros((1, 2 ** 16), np.float32)}),
        UnsupportedOperatorError, r"'outer' \(MatMul.*at most .* bytes, got shape \[65536, 65536\]"),
    "foreign domain": (lambda p: _tiny([N("FusedGemm", ["x", "W"], ["y"], name="fg", domain="com.microsoft")]),
                       UnsupportedOperatorError, "domain 'com.microsoft'"),
    "constant graph output": (lambda p: _tiny([N("Relu", ["W"], ["y"], name="r")], outputs=[_f("y", [3, 4])]),
                              FileFormatError, "graph output 'y': a constant"),
    "not a model": (lambda p: 42, FileFormatError, "expected a path or an onnx.ModelProto"),
    "empty file": (lambda p: _empty(p), FileFormatError, "opset_import"),
    "name not UTF-8": (lambda p: _not_utf8(p), FileFormatError, "expected a UTF-8 name"),
    "infinite Gemm alpha": (lambda p: _tiny([N("Gemm", ["x", "W"], ["y"], name="fc", transB=1, alpha=float("inf"))]),
                            UnsupportedOperatorError, "finite alpha and beta"),
    "MatMul on two dynamic leading axes": (
        lambda p: _tiny([N("MatMul", ["x", "W"], ["y"], name="mm")], {"W": np.zeros((4, 3), np.float32)},
                        inputs=[_f("x", ["B", "T", 4])], outputs=[_f("y", ["B", "T", 3])]),
        UnsupportedOperatorError, r"'mm' \(MatMul.*at most one dynamic leading axis"),
    "training-mode BatchNormalization": (
        lambda p: _tiny([N("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], name="bn", training_mode=1)],
                        {"s": np.ones(4, np.float32)}, outputs=[_f("y", ["N", 4])]),
        UnsupportedOperatorError, "training_mode 0"),
}


def _not_utf8(tmp_path):
    raw = mlp(np.random.default_rng(0)).SerializeToString()
    path = tmp_path / "names.onnx"
    path.write_bytes(raw.replace(b"relu1", b"rel\xff1"))      # same length: the protobuf stays well formed
    return path


def _empty(tmp_path):
    (tmp_path / "e.onnx").write_bytes(b"")
    return tmp_path / "e.onnx"


def _with_tensor(t):
    m = _tiny(inits={})
    m.graph.initializer.append(t)
    return m


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_is_refused_with_a_named_error(kind, tmp_path):
    make, exc, pattern = BAD[kind]
    with pytest.raises(exc, match=pattern):
        load(make(tmp_path))


def test_bad_input_list_has_at_least_15_kinds():
    assert len(BAD) >= 15


def test_cut_or_corrupted_files_raise_only_refcomp_errors(tmp_path):
    """A file cut at any point or with one byte changed either loads or raises a RefcompError
    (never an IndexError, a TypeError from a bytes name, a MemoryError ...)."""
    from refcomp.errors import RefcompError

    raw = transformer(np.random.default_rng(0)).SerializeToString()
    rng = np.random.default_rng(1)
    path = tmp_path / "c.onnx"
    variants = [raw[:c] for c in range(0, len(raw), len(raw) // 40)]
    for _ in range(60):
        b = bytearray(raw)
        b[rng.integers(len(b))] = rng.integers(256)
        variants.append(bytes(b))
    for v in variants:
        path.write_bytes(v)
        try:
            load(path)
        except RefcompError:
            pass


def test_importing_the_package_does_not_load_onnx():
    import subprocess

    code = "import sys, refcomp.onnx; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)      # makes `import onnx` raise ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install refcomp\[interop\]"):
        load("model.onnx")


@pytest.mark.parametrize("name", ["lenet5", "lenet_300_100", "residual_block"])
def test_export_then_import_gives_the_same_model(name):
    """refcomp → ONNX (float) → refcomp computes the same layers in the same order: equal bit for bit."""
    from refcomp import models, nn
    from refcomp.onnx import export

    model, shape = {"lenet5": (lambda: models.lenet5(0), (1, 1, 28, 28)),
                    "lenet_300_100": (lambda: models.lenet_300_100(0), (1, 784)),
                    "residual_block": (lambda: nn.residual_block(4, 4, rng=0), (1, 4, 6, 6))}[name]
    model = model().eval()
    back = load(export(model, None, style="float", input_shape=shape))
    x = np.random.default_rng(0).standard_normal((3, *shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), model.forward(x))
