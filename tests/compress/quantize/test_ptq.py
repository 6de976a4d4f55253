"""PTQ static / weight-only and GPTQ on whole models: accuracy and error sanity on digits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.integer_model import integer_bytes, integer_layers
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.weight_only import model_bytes, quantize_weights
from refcomp.errors import ValidationError
from refcomp.formats.qtensor import QTensor
from refcomp.nn import evaluate

from ..models_for_tests import digits_split, small_cnn, trained_digits_mlp


@pytest.fixture(scope="module")
def digits_model():
    tr, te = digits_split()
    m = trained_digits_mlp()
    return m, tr, te, evaluate(m, te)["accuracy"]


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse", "entropy"])
def test_static_ptq_accuracy_on_digits(digits_model, observer):
    m, tr, te, acc = digits_model
    assert acc >= 0.95
    im, _ = quantize_static(m, tr[0][:500], observer=observer)
    q_acc = evaluate(im, te)["accuracy"]
    assert q_acc >= acc - 0.02, (observer, q_acc, acc)
    # the float model is left untouched
    assert evaluate(m, te)["accuracy"] == acc


def test_weight_only_int8_and_int4_groups(digits_model):
    m, tr, te, acc = digits_model
    float_bytes = model_bytes(m)
    for bits, group, min_ratio in [(8, None, 3.5), (4, 32, 5.0), (4, None, 6.5)]:
        q, rep = quantize_weights(m, bits=bits, group_size=group)
        assert isinstance(q["fc1"].weight, QTensor)
        assert float_bytes / model_bytes(q) >= min_ratio
        assert evaluate(q, te)["accuracy"] >= acc - (0.01 if bits == 8 else 0.05)


def test_gptq_beats_rtn_layer_errors(digits_model):
    """W4 (per channel) and W2 (groups of 16): GPTQ's layer output error is below RTN's on every layer."""
    m, tr, te, acc = digits_model
    for bits, group in [(4, None), (2, 16)]:
        _, rep_rtn = quantize_weights(m, bits=bits, group_size=group, method="rtn", calibration_x=tr[0][:512])
        g, rep_gptq = quantize_weights(m, bits=bits, group_size=group, method="gptq", calibration_x=tr[0][:512])
        for name in rep_rtn:
            assert rep_gptq[name]["output_mse"] < rep_rtn[name]["output_mse"], (bits, name)
    assert evaluate(g, te)["accuracy"] >= 0.8


def test_weight_only_rejects_bad_arguments(digits_model):
    m = digits_model[0]
    with pytest.raises(ValidationError, match="method"):
        quantize_weights(m, method="awq")
    with pytest.raises(ValidationError, match="calibration_x"):
        quantize_weights(m, method="gptq")


def test_static_ptq_conv_weights_per_channel():
    rng = np.random.default_rng(1)
    m = small_cnn(2)
    im, _ = quantize_static(m, rng.normal(size=(32, 1, 10, 10)).astype(np.float32))
    name, conv1 = integer_layers(im)[0]
    assert name == "model.conv1" and conv1.weight.qparams.scale.shape == (3,) and conv1.padding == (0, 0)
    assert integer_bytes(im) < model_bytes(m) / 2


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), bits=st.sampled_from([2, 4, 8]), group=st.sampled_from([None, 4, 8]),
       method=st.sampled_from(["rtn", "gptq"]))
def test_weight_only_weights_lie_on_the_grid(seed, bits, group, method):
    """Every stored weight is s·q with q an integer code in the b-bit range of its (row, group)."""
    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(seed)
    m = small_mlp(seed, sizes=(16, 12, 4))
    q, _ = quantize_weights(m, bits=bits, group_size=group, method=method,
                            calibration_x=rng.normal(size=(64, 16)).astype(np.float32))
    for name in ("fc0", "fc1"):
        w = q[name].weight
        codes = w.data.astype(np.int64)
        assert codes.min() >= -(2 ** (bits - 1)) and codes.max() <= 2 ** (bits - 1) - 1
        scale = np.asarray(w.qparams.scale, dtype=np.float64)
        s_full = scale[:, None] if scale.ndim == 1 else np.repeat(scale, group, axis=1)[:, :codes.shape[1]]
        np.testing.assert_allclose(w.to_dense(), codes * s_full, rtol=1e-6, atol=0)


def test_requantize_float_is_onnx_float32_requantization(tmp_path):
    """requantize="float": each layer's codes are eq. (I4') of its int32 sums, kept in the model file."""
    from refcomp.compress.quantize.integer_model import output_codes
    from refcomp.io import load_model, save_model
    from refcomp.models import digits_mlp
    from refcomp.ops import matmul_integer, requantize
    from refcomp.ops.requantize import real_multiplier

    rng = np.random.default_rng(3)
    x = (rng.random((40, 64)) * 16).astype(np.float32)
    fixed, _ = quantize_static(digits_mlp(0), x)
    qm, _ = quantize_static(digits_mlp(0), x, requantize="float")
    layers = dict(integer_layers(qm))
    assert {m.requantize for m in layers.values()} == {"float"}
    assert {m.requantize for _, m in integer_layers(fixed)} == {"fixed_point"}
    # the last layer by hand: codes of its input (after relu1), int32 sums + bias, float32 multiplier
    seen = []
    h = layers["model.fc2"].register_forward_hook(lambda _m, inp, y: seen.append((inp[0], y)))
    qm.forward(x)
    h.remove()
    q_in, q_out = seen[0]
    fc2 = layers["model.fc2"]
    s_w = fc2.weight.qparams.scale.astype(np.float32)
    acc = matmul_integer(q_in.data, fc2.weight.data.T.copy(), q_in.qparams.zero_point, None)
    q_b = np.rint(fc2.bias.data.astype(np.float64) / (np.float64(q_in.qparams.scale) * s_w.astype(np.float64)))
    acc = (acc.astype(np.int64) + q_b.astype(np.int64)).astype(np.int32)
    M = real_multiplier(q_in.qparams.scale, s_w, fc2.output_qparams.scale)
    want = requantize(acc, M, fc2.output_qparams.zero_point, output_dtype="uint8", method="float", axis=1)
    np.testing.assert_array_equal(q_out.data, want)
    # the choice is part of the layer configuration: saved and loaded
    path = tmp_path / "q.safetensors"
    save_model(qm, path)
    np.testing.assert_array_equal(output_codes(load_model(path), x), output_codes(qm, x))
    with pytest.raises(ValidationError, match="requantize"):
        quantize_static(digits_mlp(0), x, requantize="gemmlowp")
