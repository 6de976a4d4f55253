"""refcomp.onnx.export: float, QDQ and QOperator files, run by onnx.reference and onnxruntime.

The contract (docs/onnx.md, "Export"):

* float: both runtimes within 1e-5 relative of refcomp's float model.
* QOperator of an integer model made with ``requantize="float"``: the codes
  (graph output "y.codes") equal refcomp's integer model bit for bit in
  onnx.reference, and in onnxruntime with ``session.x64quantprecision=1``
  (without it, this AVX2-only CPU saturates u8 × s8 pairs in int16:
  docs/deviations.md D6). Dynamic quantization: the float output bit for bit.
* QDQ: onnx.reference computes float32 dequantize -> float op -> QuantizeLinear;
  its codes equal refcomp's computation of exactly that (:func:`_qdq_linear_codes`)
  bit for bit, and the integer model's within one code per layer.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from refcomp.compress.prune.deploy import to_csr  # noqa: E402
from refcomp.compress.prune.model import prune_model  # noqa: E402
from refcomp.compress.quantize.dynamic import quantize_dynamic  # noqa: E402
from refcomp.compress.quantize.integer_model import output_codes  # noqa: E402
from refcomp.compress.quantize.ptq import quantize_static  # noqa: E402
from refcomp.compress.quantize.qat import prepare_qat  # noqa: E402
from refcomp.compress.quantize.weight_only import quantize_weights  # noqa: E402
from refcomp.errors import DTypeError, RefcompError, ValidationError  # noqa: E402
from refcomp.formats.qtensor import QTensor  # noqa: E402
from refcomp.models import digits_mlp, lenet5  # noqa: E402
from refcomp.nn import Graph, Sequential  # noqa: E402
from refcomp.nn.blocks import residual_block  # noqa: E402
from refcomp.nn.fold import fold_batchnorm  # noqa: E402
from refcomp.nn.layers import (GELU, Add, AvgPool2d, Conv2d, Flatten, GlobalAvgPool2d,  # noqa: E402
                               LayerNorm, LeakyReLU, Linear, ReLU, ReLU6, Sigmoid, Softmax, Tanh)
from refcomp.onnx import export  # noqa: E402
from refcomp.ops import dequantize_linear, quantize_linear  # noqa: E402


# -- helpers ---------------------------------------------------------------------------------------

def run_ort(proto, x, *, exact=True, **config):
    """onnxruntime on one thread; ``exact``: session.x64quantprecision=1 (u8 × s8 without int16 saturation);
    ``config``: more session config entries (keys with "_" for ".")."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if exact:
        so.add_session_config_entry("session.x64quantprecision", "1")
    for k, v in config.items():
        so.add_session_config_entry(k.replace("__", "."), v)
    s = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


def run_ref(proto, x):
    return ReferenceEvaluator(proto).run(None, {"x": x})


def rel_err(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def _mlp_data(n=48, seed=0):
    return (np.random.default_rng(seed).random((n, 64)) * 16).astype(np.float32)


def _image_data(n=12, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32)


def _block():
    """A ResNet basic block with a 1×1/2 shortcut, batch norms with non-trivial statistics."""
    blk = residual_block(4, 8, stride=2, rng=0)
    rng = np.random.default_rng(1)
    for name in ("bn1", "bn2", "skip_bn"):
        bn = blk[name]
        bn.running_mean = rng.standard_normal(8).astype(np.float32) * 0.1
        bn.running_var = (rng.random(8) + 0.5).astype(np.float32)
        bn.weight.data[:] = rng.random(8) + 0.5
        bn.bias.data[:] = rng.standard_normal(8) * 0.1
    return blk.eval()


def _block_data(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 4, 8, 8)).astype(np.float32)


CASES = {  # name: (float model builder, data, input shape)
    "mlp": (lambda: digits_mlp(0), _mlp_data, (1, 64)),
    "lenet5": (lambda: lenet5(0), _image_data, (1, 1, 28, 28)),
}


def _exported(model, style, shape, tmp_path=None, **kw):
    """Export to a file, load it back and check it with the full checker."""
    path = None if tmp_path is None else tmp_path / f"m_{style}.onnx"
    proto = export(model, path, style=style, input_shape=shape, **kw)
    if path is not None:
        proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return proto


# -- float ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["mlp", "lenet5", "block", "block_folded"])
def test_float_export_equals_refcomp(case, tmp_path):
    if case.startswith("block"):
        model, x, shape = _block(), _block_data(), (1, 4, 8, 8)
        if case == "block_folded":
            model = fold_batchnorm(model)
    else:
        build, data, shape = CASES[case]
        model, x = build(), data()
    y = model.forward(x)
    proto = _exported(model, "float", shape, tmp_path)
    assert rel_err(run_ort(proto, x)[0], y) <= 1e-5
    assert rel_err(run_ref(proto, x)[0], y) <= 1e-5


def test_the_file_names_refcomp_and_its_version(tmp_path):
    """producer_name / producer_version: an exported file traces back to the refcomp that wrote it."""
    from refcomp._version import __version__

    proto = _exported(digits_mlp(0), "float", (1, 64), tmp_path)
    assert (proto.producer_name, proto.producer_version) == ("refcomp", __version__)


def test_float_export_of_other_layers():
    """GELU (both forms), LayerNorm, Softmax, Sigmoid, Tanh, ReLU6, AvgPool2d, GlobalAvgPool2d, a residual Add."""
    rng = np.random.default_rng(2)
    g = Graph(inputs=["x"])
    g.add("conv", Conv2d(3, 6, 3, padding=1, rng=rng), "x")
    g.add("act", ReLU6(), "conv")
    g.add("pool", AvgPool2d(2, padding=1), "act")
    g.add("sig", Sigmoid(), "pool")
    g.add("tanh", Tanh(), "pool")
    g.add("sum", Add(), "sig", "tanh")
    g.add("gap", GlobalAvgPool2d(), "sum")
    g.add("fc", Linear(6, 16, rng=rng), "gap")
    g.add("gelu", GELU(), "fc")
    g.add("gelu_t", GELU("tanh"), "gelu")
    g.add("ln", LayerNorm(16), "gelu_t")
    g.add("sm", Softmax(-1), "ln")
    g.outputs = ["sm"]
    x = rng.standard_normal((5, 3, 7, 7)).astype(np.float32)
    y = g.forward(x)
    proto = _exported(g, "float", (1, 3, 7, 7))
    assert rel_err(run_ort(proto, x)[0], y) <= 1e-5
    assert rel_err(run_ref(proto, x)[0], y) <= 1e-5


def test_compressed_weights_are_exported_dense():
    """A CSR (pruned) weight and a weight-only RTN QTensor: float style writes to_dense()."""
    x = _mlp_data()
    pruned, _ = prune_model(digits_mlp(0), 0.8)
    sparse, _ = to_csr(pruned)
    proto = _exported(sparse, "float", (1, 64))
    assert not proto.graph.sparse_initializer
    y = sparse.forward(x)
    assert rel_err(run_ref(proto, x)[0], y) <= 1e-5
    assert rel_err(run_ort(proto, x)[0], y) <= 1e-5


@pytest.mark.parametrize("group_size", [None, 16])
def test_weight_only_qdq_per_channel_and_blocked(group_size):
    """RTN int8 weights: DequantizeLinear per output channel (axis) or per block (block_size, opset 21)."""
    x = _mlp_data()
    wq, _ = quantize_weights(digits_mlp(0), bits=8, group_size=group_size)
    assert isinstance(wq["fc1"].weight, QTensor)
    proto = _exported(wq, "qdq", (1, 64))
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    attrs = {a.name: a.i for a in dq[0].attribute}
    assert attrs == ({"axis": 1} if group_size is None else {"axis": 0, "block_size": group_size})
    y = wq.forward(x)
    assert rel_err(run_ref(proto, x)[0], y) <= 1e-5
    # onnxruntime fuses DequantizeLinear -> MatMul into MatMulNBits, by default computing with int8
    # activations (accuracy level 4: docs/deviations.md D7); at level 0 it multiplies in float32
    assert rel_err(run_ort(proto, x, session__qdq_matmulnbits_accuracy_level="0")[0], y) <= 1e-5
    assert 1e-5 < rel_err(run_ort(proto, x)[0], y) <= 1e-2
    with pytest.raises(ValidationError, match="opset"):
        export(wq, None, style="qdq", input_shape=(1, 64), opset=19 if group_size else 12)


# -- W8A8 static ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def static_models():
    out = {}
    for name, (build, data, shape) in CASES.items():
        x = data()
        qm, _ = quantize_static(build(), x, requantize="float")
        out[name] = (qm, x, shape)
    return out


@pytest.mark.parametrize("case", ["mlp", "lenet5"])
@pytest.mark.parametrize("style", ["qoperator", "qdq"])
def test_static_integer_model_codes_bit_exact(static_models, case, style, tmp_path):
    qm, x, shape = static_models[case]
    want = output_codes(qm, x)
    proto = _exported(qm, style, shape, tmp_path)
    ops = {n.op_type for n in proto.graph.node}
    if style == "qoperator":
        assert "MatMulInteger" in ops and ("QLinearConv" in ops) == (case == "lenet5")
        assert "DequantizeLinear" in ops and not ops & {"Conv", "MatMul", "QLinearMatMul"}
    else:
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not ops & {"QLinearConv", "MatMulInteger"}
    ref_y, ref_codes = run_ref(proto, x)
    np.testing.assert_array_equal(ref_codes, want)
    np.testing.assert_array_equal(ref_y, qm.forward(x))
    ort_y, ort_codes = run_ort(proto, x)
    np.testing.assert_array_equal(ort_codes, want)
    np.testing.assert_array_equal(ort_y, qm.forward(x))


def test_default_onnxruntime_session_saturates_on_avx2_only_cpus(static_models):
    """docs/deviations.md D6: without x64quantprecision, u8 × s8 pairs saturate in int16 on non-VNNI x86."""
    qm, x, shape = static_models["lenet5"]
    codes = run_ort(export(qm, None, style="qoperator", input_shape=shape), x, exact=False)[1]
    want = output_codes(qm, x)
    with open("/proc/cpuinfo") as f:
        vnni = "vnni" in f.read()
    if vnni:
        np.testing.assert_array_equal(codes, want)
    else:
        assert np.mean(codes != want) > 0.5


def test_fixed_point_model_exports_within_one_code_per_layer():
    """A requantize="fixed_point" model exports the same graph; its codes are then ONNX's (I4'), which the
    fixed-point requantization approximates to one unit per layer (tests/ops/test_requantize.py)."""
    x = _mlp_data()
    fixed, _ = quantize_static(digits_mlp(0), x)
    codes = run_ref(export(fixed, None, style="qoperator", input_shape=(1, 64)), x)[1]
    flt, _ = quantize_static(digits_mlp(0), x, requantize="float")
    np.testing.assert_array_equal(codes, output_codes(flt, x))
    assert np.abs(codes.astype(int) - output_codes(fixed, x)).max() <= 2


@pytest.mark.parametrize("style", ["qoperator", "qdq"])
def test_residual_block_islands(style):
    """integer_only=False on the folded ResNet block: each conv a QDQ / QLinearConv island, Add and ReLU float."""
    x = _block_data()
    qm, _ = quantize_static(fold_batchnorm(_block()), x, integer_only=False, requantize="float")
    proto = _exported(qm, style, (1, 4, 8, 8))
    assert len(proto.graph.output) == 1           # the output is float: no codes to expose
    if style == "qoperator":
        assert sum(n.op_type == "QLinearConv" for n in proto.graph.node) == 3
    y = qm.forward(x)
    # the islands' codes are bit-exact, the float Add / Relu between them the same float32 operations
    np.testing.assert_array_equal(run_ref(proto, x)[0], y)
    np.testing.assert_array_equal(run_ort(proto, x)[0], y)


def _qdq_linear_codes(x_codes, x_qp, layer):
    """The QDQ semantics of one integer Linear, in refcomp ops, as onnx.reference evaluates them:
    DequantizeLinear (float32) of x, W (per channel) and the int32 bias; float32 MatMul, Add;
    QuantizeLinear with the output qparams."""
    w = layer.weight
    s_w = w.qparams.scale.astype(np.float32)
    x_f = dequantize_linear(x_codes, x_qp.scale, x_qp.zero_point)
    w_f = dequantize_linear(np.ascontiguousarray(w.data.T), s_w, np.zeros_like(s_w, np.int8), axis=1)
    unit = np.float64(x_qp.scale) * s_w.astype(np.float64)
    q_b = np.rint(layer.bias.data.astype(np.float64) / unit).astype(np.int32)
    b_f = dequantize_linear(q_b, (np.float32(x_qp.scale) * s_w).astype(np.float32), np.zeros_like(q_b), axis=0)
    y = np.matmul(x_f, w_f) + b_f
    y_qp = layer.output_qparams
    return quantize_linear(y, y_qp.scale, y_qp.zero_point)


def test_qdq_equals_float32_dequantized_matmul_and_integer_model_within_one_code():
    """Which refcomp computation equals the QDQ graph bit for bit, and how far the integer model is from it.

    One integer Linear with wide inputs (K = 512, so float32 sums round): onnx.reference's QDQ codes equal
    :func:`_qdq_linear_codes` exactly; the integer model (exact int32 sums, eq. I4') differs from them by
    at most one code, where a float32 rounding of the sum crosses a .5 boundary of the output grid.
    """
    rng = np.random.default_rng(5)
    layer = Linear(512, 64, rng=rng)
    model = Sequential(("fc", layer))
    x = (rng.standard_normal((256, 512)) * 3).astype(np.float32)
    qm, _ = quantize_static(model, x, requantize="float")
    proto = export(qm, None, style="qdq", input_shape=(1, 512))
    ref_codes = run_ref(proto, x)[1]
    x_qp = qm["quantize"].qparams
    x_codes = quantize_linear(x, x_qp.scale, x_qp.zero_point)
    np.testing.assert_array_equal(ref_codes, _qdq_linear_codes(x_codes, x_qp, qm["model"]["fc"]))
    diff = np.abs(ref_codes.astype(int) - output_codes(qm, x))
    assert diff.max() <= 1
    # onnxruntime fuses DequantizeLinear -> MatMul -> QuantizeLinear into its integer kernels: the integer model
    np.testing.assert_array_equal(run_ort(proto, x)[1], output_codes(qm, x))


# -- dynamic --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["mlp", "lenet5"])
def test_dynamic_qoperator_bit_exact(case):
    build, data, shape = CASES[case]
    x = data()
    dm, _ = quantize_dynamic(build())
    proto = _exported(dm, "qoperator", shape)
    ops = {n.op_type for n in proto.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert ("ConvInteger" in ops) == (case == "lenet5")
    y = dm.forward(x)
    np.testing.assert_array_equal(run_ref(proto, x)[0], y)
    np.testing.assert_array_equal(run_ort(proto, x)[0], y)


def test_dynamic_per_token_qoperator_bit_exact():
    """Per-token dynamic quantization (eq. D2) as ReduceMin/Max, Div, Round, Clip and MatMulInteger
    with the per-row zero point applied after: bit for bit in onnx.reference and onnxruntime."""
    build, data, shape = CASES["mlp"]
    x = data()
    x[3] *= 40                                         # one row far wider than the others
    dm, _ = quantize_dynamic(build(), per_token=True)
    proto = _exported(dm, "qoperator", shape)
    ops = [n.op_type for n in proto.graph.node]
    assert "DynamicQuantizeLinear" not in ops and ops.count("MatMulInteger") == 2
    y = dm.forward(x)
    np.testing.assert_array_equal(run_ref(proto, x)[0], y)
    np.testing.assert_array_equal(run_ort(proto, x)[0], y)
    with pytest.raises(ValidationError, match="qoperator"):
        _exported(dm, "qdq", shape)


@pytest.mark.parametrize("smooth_alpha", [None, 0.5])
def test_static_input_qoperator_bit_exact(smooth_alpha):
    """StaticQuantized (eq. S1): [Div by m,] QuantizeLinear with the calibrated QParams, MatMulInteger, Mul;
    bit for bit in both runtimes, also for inputs beyond the calibrated range (saturating codes)."""
    from refcomp.compress.quantize.static_inputs import quantize_static_inputs

    build, data, shape = CASES["mlp"]
    x = data()
    sm, _ = quantize_static_inputs(build(), [x[: len(x) // 2]], smooth_alpha=smooth_alpha)
    proto = _exported(sm, "qoperator", shape)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("MatMulInteger") == 2
    assert ("Div" in ops) == (smooth_alpha is not None)
    x = x * 1.5
    y = sm.forward(x)
    np.testing.assert_array_equal(run_ref(proto, x)[0], y)
    np.testing.assert_array_equal(run_ort(proto, x)[0], y)


@pytest.mark.parametrize("case", ["mlp", "lenet5"])
def test_dynamic_qdq_within_float_sum_bound(case):
    """QDQ form (DynamicQuantizeLinear -> DequantizeLinear -> float op): exact products, float32 sums.

    Bound: each output is a float32 sum of K exactly representable products (8-bit codes times scales),
    so its error is at most K·u·Σ|terms| (u = 2^-24); against the largest output it stays below 1e-4 here.
    """
    build, data, shape = CASES[case]
    x = data()
    dm, _ = quantize_dynamic(build())
    proto = _exported(dm, "qdq", shape)
    y = dm.forward(x)
    assert rel_err(run_ref(proto, x)[0], y) <= 1e-4
    assert rel_err(run_ort(proto, x)[0], y) <= 1e-4


# -- bad inputs -------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors(tmp_path):
    x = _mlp_data()
    mlp = digits_mlp(0)
    qm, _ = quantize_static(digits_mlp(0), x, requantize="float")
    qat, _ = prepare_qat(digits_mlp(0), x)
    qat_fc = Sequential(("fc", next(m for _, m in qat.named_modules() if isinstance(m, Linear))))
    leaky = Sequential(("leaky", LeakyReLU(0.1)))
    cases = [
        (lambda: export(mlp, None, style="onnx", input_shape=(1, 64)), ValidationError, "style"),
        (lambda: export(mlp, None, style="float", input_shape=(1, 64), opset=12), ValidationError, "opset"),
        (lambda: export(mlp, None, style="float", input_shape=(1, 64), opset=99), ValidationError, "opset"),
        (lambda: export(mlp, None, style="float", input_shape=(1, 64), opset="21"), ValidationError, "opset"),
        (lambda: export(mlp, None, style="float", input_shape=(1, 64), opset=True), ValidationError, "opset"),
        (lambda: export(mlp, tmp_path / "missing" / "m.onnx", style="float", input_shape=(1, 64)),
         ValidationError, "existing folder"),
        (lambda: export(mlp, None, style="float", input_shape=(1, 0)), ValidationError, "input_shape"),
        (lambda: export(mlp, None, style="float", input_shape="64"), ValidationError, "input_shape"),
        (lambda: export("model", None, style="float", input_shape=(1, 64)), ValidationError, "Module"),
        (lambda: export(leaky, None, style="float", input_shape=(1, 3)), ValidationError, "LeakyReLU"),
        (lambda: export(qat_fc, None, style="qdq", input_shape=(1, 64)), ValidationError, "FakeQuantized"),
        (lambda: export(qat, None, style="qdq", input_shape=(1, 64)), ValidationError, "ObserverFakeQuant"),
        (lambda: export(qm, None, style="float", input_shape=(1, 64)), ValidationError, "qoperator"),
        (lambda: export(Sequential(("g", GELU())), None, style="float", input_shape=(1, 4), opset=17),
         ValidationError, "Gelu"),
        (lambda: export(Sequential(("q", qm["quantize"])), None, style="qdq", input_shape=(1, 64)),
         ValidationError, "DequantizeLinear"),
        (lambda: export(Sequential(("q", qm["quantize"]), ("s", Softmax())), None, style="qdq",
                        input_shape=(1, 64)), ValidationError, "on codes"),
        (lambda: export(Sequential(("d", qm["dequantize"])), None, style="qdq", input_shape=(1, 64)),
         DTypeError, "codes as the input"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words) as info:
            call()
        assert isinstance(info.value, RefcompError)
    assert not (tmp_path / "missing").exists()


def test_export_is_deterministic_and_reads_the_model_only():
    """Export reads the model only: the same model exported twice gives the same bytes."""
    qm, shape = quantize_static(lenet5(0), _image_data(), requantize="float")[0], (1, 1, 28, 28)
    a = export(qm, None, style="qoperator", input_shape=shape).SerializeToString()
    b = export(qm, None, style="qoperator", input_shape=shape).SerializeToString()
    assert a == b
    assert isinstance(qm["model"]["flatten"], Flatten)


@pytest.mark.parametrize("kwargs", [{"activation_dtype": "int8"}, {"weight_granularity": "per_tensor"},
                                    {"bias": False}])
@pytest.mark.parametrize("opset", [19, 21, 23])
@pytest.mark.parametrize("style", ["qoperator", "qdq"])
def test_static_variants_and_opsets_bit_exact(kwargs, opset, style):
    """int8 activations (s8 × s8), one weight scale per tensor, Linear layers without bias; opsets 19-23."""
    x = _mlp_data(32)
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", True)
    model = Sequential(("fc1", Linear(64, 32, bias=bias, rng=1)), ("relu", ReLU()),
                       ("fc2", Linear(32, 10, bias=bias, rng=2)))
    qm, _ = quantize_static(model, x, requantize="float", **kwargs)
    want = output_codes(qm, x)
    proto = _exported(qm, style, (1, 64), opset=opset)
    np.testing.assert_array_equal(run_ref(proto, x)[1], want)
    np.testing.assert_array_equal(run_ort(proto, x)[1], want)


def test_opsets_below_19_run_in_onnxruntime_only():
    """Files of opset 13-18 are valid and onnxruntime runs them bit for bit; onnx.reference 1.23 implements
    QuantizeLinear / DequantizeLinear only from opset 19, so the contract is tested from 19 (default 21)."""
    x = _mlp_data(32)
    qm, _ = quantize_static(digits_mlp(0), x, requantize="float")
    proto = _exported(qm, "qoperator", (1, 64), opset=13)
    np.testing.assert_array_equal(run_ort(proto, x)[1], output_codes(qm, x))
    with pytest.raises(RuntimeError, match="DequantizeLinear"):
        run_ref(proto, x)
    float_proto = _exported(digits_mlp(0), "float", (1, 64), opset=13)
    assert rel_err(run_ref(float_proto, x)[0], digits_mlp(0).forward(x)) <= 1e-5


def test_qlinearmatmul_saturates_in_onnxruntime_even_with_x64quantprecision():
    """docs/deviations.md D6: why the QOperator Linear is MatMulInteger + requantization, not QLinearMatMul.

    onnxruntime 1.32's QLinearMatMul (u8 × s8) on an AVX2-only CPU equals the int16-saturating emulation
    whether or not session.x64quantprecision is set (MatMulInteger, ConvInteger, QLinearConv honour it)."""
    from onnx import TensorProto, helper, numpy_helper

    from refcomp.ops import matmul_integer, requantize
    a = np.full((2, 64), 255, np.uint8)
    b = np.full((64, 3), -128, np.int8)
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("as", np.float32(1.0)), ("az", np.uint8(0)), ("b", b), ("bs", np.float32(1.0)), ("bz", np.int8(0)),
        ("ys", np.float32(1e5)), ("yz", np.uint8(128)))]
    g = helper.make_graph([helper.make_node("QLinearMatMul", ["x", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [2, 3])], initializer=inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    exact = requantize(matmul_integer(a, b), np.float32(1e-5), np.uint8(128), output_dtype="uint8")
    saturated = requantize(matmul_integer(a, b, numerics="x86_u8s8_int16_saturating"), np.float32(1e-5),
                           np.uint8(128), output_dtype="uint8")
    assert exact[0, 0] == 107 and saturated[0, 0] == 118
    with open("/proc/cpuinfo") as f:
        vnni = "vnni" in f.read()
    for flag in (False, True):
        got = run_ort(proto, a, exact=flag)[0]
        np.testing.assert_array_equal(got, exact if vnni else saturated)
    np.testing.assert_array_equal(run_ref(proto, a)[0], exact)
