"""Cross-layer equalization and empirical bias correction inside static PTQ (whole models)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.bias_correction_model import empirical_output_shift
from refcomp.compress.quantize.cle_model import equalize_model
from refcomp.compress.quantize.integer_model import integer_layers, output_codes
from refcomp.compress.quantize.model_graph import prepare, stages_of
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.simulate import simulate
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Linear, Sequential

from ..models_for_tests import small_cnn, small_mlp
from .cases import _bn_cnn, _cnn_input, _skewed_cnn, seeds


def conv2d(x, w):
    """Direct 'valid' cross-correlation, stride 1: y[n,o,i,j] = Σ x[n,c,i+k,j+l]·w[o,c,k,l]."""
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("ncijkl,ockl->noij", windows, w)


# --- empirical bias correction --------------------------------------------------------------------------


def test_empirical_shift_is_the_mean_of_the_error_layer_output():
    m = prepare(small_cnn(1))
    stages = stages_of(m)
    rng = np.random.default_rng(1)
    x = _cnn_input(1)
    w_hats = {s.name: s.layer.weight.to_dense() + rng.normal(0, 0.05, s.layer.weight.shape)
              for s in stages if s.kind == "compute"}
    shifts = empirical_output_shift(m, x, w_hats, batch_size=7)
    eps1 = w_hats["conv1"] - m["conv1"].weight.to_dense()
    np.testing.assert_allclose(shifts["conv1"], conv2d(x.astype(np.float64), eps1).mean(axis=(0, 2, 3)), atol=1e-12)
    h = x
    for s in stages:
        if s.name == "fc":
            break
        h = s.forward_float(h)
    eps_fc = w_hats["fc"] - m["fc"].weight.to_dense()
    np.testing.assert_allclose(shifts["fc"], (h.astype(np.float64) @ eps_fc.T).mean(axis=0), atol=1e-10)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_bias_correction_reduces_the_mean_output_bias_of_a_quantized_layer(granularity):
    """A single Linear on post-ReLU-like inputs (mean > 0), W4 weights: the integer layer's mean output error
    on held-out inputs shrinks by at least 3× with bias correction."""
    rng = np.random.default_rng(0)
    layer = Linear(64, 16, rng=rng)
    layer.weight.data[...] *= 10.0 ** rng.uniform(-1, 1, (16, 1))
    m = Sequential(("fc", layer))
    calib = np.maximum(rng.normal(0.5, 1.0, (2000, 64)), 0).astype(np.float32)
    test = np.maximum(rng.normal(0.5, 1.0, (2000, 64)), 0).astype(np.float32)
    y = m.forward(test).astype(np.float64)
    bias = {}
    for bc in (False, True):
        im, _ = quantize_static(m, calib, weight_bits=4, weight_granularity=granularity, bias_correction=bc)
        bias[bc] = np.abs((im.forward(test).astype(np.float64) - y).mean(axis=0)).mean()
    assert bias[True] * 3 < bias[False]


def test_bias_correction_reduces_output_error_of_a_cnn():
    m = _skewed_cnn(5)
    x = _cnn_input(5, 400)
    calib, test = x[:200], x[200:]
    y = m.forward(test)
    err = {}
    for bc in (False, True):
        im, _ = quantize_static(m, calib, weight_bits=4, weight_granularity="per_tensor", bias_correction=bc)
        err[bc] = np.abs(im.forward(test) - y).mean()
    assert err[True] < err[False]


@settings(max_examples=10, deadline=None)
@given(seeds, st.booleans(), st.booleans(), st.sampled_from([(8, "per_channel"), (4, "per_tensor"), (2, "per_channel")]))
def test_integer_model_still_equals_its_simulation(seed, equalize, bc, weights):
    bits, gran = weights
    m = _bn_cnn(seed % 1000)
    x = _cnn_input(seed, 30)
    im, _ = quantize_static(m, x, equalize=equalize, bias_correction=bc, weight_bits=bits, weight_granularity=gran)
    np.testing.assert_array_equal(output_codes(im, x), simulate(im, x))
    limit = 2 ** (bits - 1) - 1
    for _, layer in integer_layers(im):
        assert np.abs(layer.weight.data.astype(np.int64)).max() <= limit


def test_bad_arguments_are_named():
    m, x = small_mlp(0), np.zeros((4, 12), np.float32)
    with pytest.raises(ValidationError, match="weight_bits"):
        quantize_static(m, x, weight_bits=3)
    with pytest.raises(ValidationError, match="weight_granularity"):
        quantize_static(m, x, weight_granularity="per_group")
    with pytest.raises(ValidationError, match="equalize"):
        quantize_static(m, x, equalize="yes")
    folded = prepare(m)
    with pytest.raises(ValidationError, match="w_hats"):
        empirical_output_shift(folded, x, {"nope": np.zeros((16, 12))})
    with pytest.raises(ShapeError, match="w_hat"):
        empirical_output_shift(folded, x, {"fc0": np.zeros((3, 3))})


def test_bias_correction_gives_a_bias_to_bias_free_layers():
    """A factorized model has bias-free first layers; BC gives them an int32 bias and the integer model still
    equals its simulation (CLE runs through the nested Sequentials too)."""
    from refcomp.compress.lowrank.model import factorize_model

    m, _ = factorize_model(small_cnn(7), {"conv2": 2, "fc": 3})
    x = _cnn_input(7, 30)
    im, _ = quantize_static(m, x, equalize=True, bias_correction=True, weight_bits=4)
    firsts = [layer for name, layer in integer_layers(im) if name in ("model.conv2.first", "model.fc.first")]
    assert len(firsts) == 2 and all(layer.bias is not None for layer in firsts)
    assert all(m.bias is None for n, m in m.named_modules() if n in ("conv2.first", "fc.first"))
    np.testing.assert_array_equal(output_codes(im, x), simulate(im, x))
    eq, report = equalize_model(m)
    assert list(report) == [("conv1", "conv2.first", "conv2.second", "fc.first", "fc.second")]
    np.testing.assert_allclose(eq.forward(x), m.forward(x), atol=1e-5 * (1 + np.abs(m.forward(x)).max()))


@pytest.mark.parametrize("x", [np.zeros((4, 12), np.int64), np.zeros(12, np.float32), np.zeros((0, 12), np.float32)])
def test_calibration_inputs_must_be_a_non_empty_float_batch(x):
    folded = prepare(small_mlp(0))
    with pytest.raises(ValidationError) as e:
        empirical_output_shift(folded, x, {"fc0": folded["fc0"].weight.to_dense()})
    assert e.value.argument == "calibration_x"


def test_one_calibration_input_is_enough():
    # Δ of eq. (BC1) over a single input: that input's error-layer output ε x
    folded = prepare(small_mlp(0))
    x = np.random.default_rng(3).random((1, 12), dtype=np.float32)
    w = folded["fc0"].weight.to_dense().astype(np.float64)
    w_hat = np.round(w * 8) / 8
    before = {k: v.copy() for k, v in folded.state_dict().items()}
    shift = empirical_output_shift(folded, x, {"fc0": w_hat})["fc0"]
    # the error layer is a copy: the model keeps its weights and biases
    assert all(v.tobytes() == before[k].tobytes() for k, v in folded.state_dict().items())
    assert folded["fc0"].bias is not None and folded["fc0"].weight.to_dense().dtype == np.float32
    np.testing.assert_allclose(shift, (w_hat - w) @ x[0].astype(np.float64), rtol=1e-12, atol=1e-15)
