"""Cross-layer equalization and empirical bias correction inside static PTQ (whole models)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.bias_correction_model import empirical_output_shift
from refcomp.compress.quantize.cle_model import equalizable_chains, equalize_model
from refcomp.compress.quantize.model_graph import prepare, stages_of
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.simulate import simulate
from refcomp.errors import ShapeError, ValidationError
from refcomp.models import lenet5
from refcomp.nn import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

from ..models_for_tests import small_cnn, small_mlp

seeds = st.integers(0, 2**32 - 1)


def conv2d(x, w):
    """Direct 'valid' cross-correlation, stride 1: y[n,o,i,j] = Σ x[n,c,i+k,j+l]·w[o,c,k,l]."""
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("ncijkl,ockl->noij", windows, w)


def _cnn_input(seed, n=40):
    return np.random.default_rng(seed).random((n, 1, 10, 10), dtype=np.float32)


def _skewed_cnn(seed):
    """small_cnn with per-channel weight ranges spread over 3 decades (what CLE is for)."""
    m = small_cnn(seed)
    rng = np.random.default_rng(seed)
    w = m["conv1"].weight.to_dense()
    m["conv1"].weight.data[...] = w * (10.0 ** rng.uniform(-1.5, 1.5, w.shape[0]))[:, None, None, None]
    return m


def _bn_cnn(seed):
    """conv -> BN -> ReLU -> pool -> conv -> BN -> ReLU -> flatten -> linear, with non-trivial BN statistics."""
    rng = np.random.default_rng(seed)
    m = Sequential(("conv1", Conv2d(1, 3, 3, rng=rng)), ("bn1", BatchNorm2d(3)), ("relu1", ReLU()),
                   ("pool1", MaxPool2d(2)), ("conv2", Conv2d(3, 4, 2, rng=rng)), ("bn2", BatchNorm2d(4)),
                   ("relu2", ReLU()), ("flatten", Flatten()), ("fc", Linear(4 * 3 * 3, 5, rng=rng)))
    for bn in (m["bn1"], m["bn2"]):
        c = bn.num_features
        bn.running_mean[...] = rng.normal(0, 0.3, c)
        bn.running_var[...] = rng.uniform(0.05, 4.0, c)
        bn.weight.data[...] = rng.uniform(0.2, 3.0, c) * rng.choice([-1, 1], c)
        bn.bias.data[...] = rng.normal(0, 0.5, c)
    return m.eval()


# --- cross-layer equalization --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seeds, st.sampled_from(["relu", "linear_conv", "padded", "skewed", "bn", "mlp"]))
def test_equalized_model_computes_the_same_outputs(seed, kind):
    """Tolerance: max |Δy| <= 1e-5·(1 + max|y|) in float32 (one rounding of W1/s, b1/s, W2·s per weight)."""
    if kind == "mlp":
        m, x = small_mlp(seed % 1000), np.random.default_rng(seed).random((40, 12), dtype=np.float32)
    else:
        m = {"relu": lambda s: small_cnn(s), "linear_conv": lambda s: small_cnn(s, relu_after_conv=False),
             "padded": lambda s: small_cnn(s, padding=1), "skewed": _skewed_cnn, "bn": _bn_cnn}[kind](seed % 1000)
        x = _cnn_input(seed)
    y = m.forward(x)
    eq, report = equalize_model(m)
    assert len(report) == 1 and len(next(iter(report))) == 3     # conv1 -> conv2 -> fc (or fc0 -> fc1 -> fc2)
    y_eq = eq.forward(x)
    assert np.max(np.abs(y_eq - y)) <= 1e-5 * (1 + np.max(np.abs(y)))
    assert "bn1" not in eq.layers                                  # folded before equalizing


def test_equalization_balances_the_ranges_across_the_flatten():
    m = _skewed_cnn(3)
    eq, _ = equalize_model(m)
    w1 = eq["conv1"].weight.to_dense()
    w2 = eq["conv2"].weight.to_dense()
    np.testing.assert_allclose(np.abs(w1).max(axis=(1, 2, 3)), np.abs(w2).max(axis=(0, 2, 3)), rtol=1e-4)
    # conv2's output channel c is fc's block of 9 flattened features
    fc = eq["fc"].weight.to_dense().reshape(5, 4, 9)
    np.testing.assert_allclose(np.abs(w2).max(axis=(1, 2, 3)), np.abs(fc).max(axis=(0, 2)), rtol=1e-4)
    # before: conv1's ranges spread over ~3 decades; after: much less (the geometric mean with conv2's)
    r_before = np.abs(m["conv1"].weight.to_dense()).max(axis=(1, 2, 3))
    r_after = np.abs(w1).max(axis=(1, 2, 3))
    assert r_after.max() / r_after.min() < r_before.max() / r_before.min()


def test_chains_of_lenet5_and_breaks():
    chains = equalizable_chains(prepare(lenet5(0)))
    assert [[name for name, _, _ in c] for c in chains] == [["conv1", "conv2", "fc1", "fc2"]]
    views = {name: view for name, _, view in chains[0]}
    assert views["fc1"] == (500, 50, 16, 1)
    # a grouped second conv cannot take W2's role: the chain breaks before it
    rng = np.random.default_rng(0)
    m = Sequential(("a", Conv2d(1, 4, 3, rng=rng)), ("r", ReLU()), ("b", Conv2d(4, 4, 3, groups=2, rng=rng)),
                   ("c", Conv2d(4, 2, 1, rng=rng)))
    assert [[n for n, _, _ in c] for c in equalizable_chains(m)] == [["b", "c"]]


def test_equalize_does_not_modify_the_model():
    m = small_cnn(0)
    before = m["conv1"].weight.to_dense().copy()
    equalize_model(m)
    np.testing.assert_array_equal(m["conv1"].weight.to_dense(), before)


# --- empirical bias correction --------------------------------------------------------------------------


def test_empirical_shift_is_the_mean_of_the_error_layer_output():
    m = prepare(small_cnn(1))
    stages = stages_of(m)
    rng = np.random.default_rng(1)
    x = _cnn_input(1)
    w_hats = {s.name: s.layer.weight.to_dense() + rng.normal(0, 0.05, s.layer.weight.shape)
              for s in stages if s.kind == "compute"}
    shifts = empirical_output_shift(stages, x, w_hats, batch_size=7)
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
        im = quantize_static(m, calib, weight_bits=4, weight_granularity=granularity, bias_correction=bc)
        bias[bc] = np.abs((im.forward(test).astype(np.float64) - y).mean(axis=0)).mean()
    assert bias[True] * 3 < bias[False]


def test_bias_correction_reduces_output_error_of_a_cnn():
    m = _skewed_cnn(5)
    x = _cnn_input(5, 400)
    calib, test = x[:200], x[200:]
    y = m.forward(test)
    err = {}
    for bc in (False, True):
        im = quantize_static(m, calib, weight_bits=4, weight_granularity="per_tensor", bias_correction=bc)
        err[bc] = np.abs(im.forward(test) - y).mean()
    assert err[True] < err[False]


@settings(max_examples=10, deadline=None)
@given(seeds, st.booleans(), st.booleans(), st.sampled_from([(8, "per_channel"), (4, "per_tensor"), (2, "per_channel")]))
def test_integer_model_still_equals_its_simulation(seed, equalize, bc, weights):
    bits, gran = weights
    m = _bn_cnn(seed % 1000)
    x = _cnn_input(seed, 30)
    im = quantize_static(m, x, equalize=equalize, bias_correction=bc, weight_bits=bits, weight_granularity=gran)
    q = im.quantize_input(x)
    np.testing.assert_array_equal(im.forward_int(q), simulate(im).forward_codes(x))
    limit = 2 ** (bits - 1) - 1
    for s in im.stages:
        if hasattr(s, "weight"):
            assert np.abs(s.weight.astype(np.int64)).max() <= limit


def test_bad_arguments_are_named():
    m, x = small_mlp(0), np.zeros((4, 12), np.float32)
    with pytest.raises(ValidationError, match="weight_bits"):
        quantize_static(m, x, weight_bits=3)
    with pytest.raises(ValidationError, match="weight_granularity"):
        quantize_static(m, x, weight_granularity="per_group")
    with pytest.raises(ValidationError, match="equalize"):
        quantize_static(m, x, equalize="yes")
    stages = stages_of(prepare(m))
    with pytest.raises(ValidationError, match="w_hats"):
        empirical_output_shift(stages, x, {"nope": np.zeros((16, 12))})
    with pytest.raises(ShapeError, match="w_hat"):
        empirical_output_shift(stages, x, {"fc0": np.zeros((3, 3))})


def test_bias_correction_gives_a_bias_to_bias_free_layers():
    """A factorized model has bias-free first layers; BC gives them an int32 bias and the integer model still
    equals its simulation (CLE runs through the nested Sequentials too)."""
    from refcomp.compress.lowrank.model import factorize_model

    m = factorize_model(small_cnn(7), {"conv2": 2, "fc": 3})
    x = _cnn_input(7, 30)
    im = quantize_static(m, x, equalize=True, bias_correction=True, weight_bits=4)
    firsts = [s for s in im.stages if s.name in ("conv2.first", "fc.first")]
    assert len(firsts) == 2 and all(s.bias is not None and s.bias.dtype == np.int32 for s in firsts)
    np.testing.assert_array_equal(im.forward_int(im.quantize_input(x)), simulate(im).forward_codes(x))
    eq, report = equalize_model(m)
    assert list(report) == [("conv1", "conv2.first", "conv2.second", "fc.first", "fc.second")]
    np.testing.assert_allclose(eq.forward(x), m.forward(x), atol=1e-5 * (1 + np.abs(m.forward(x)).max()))
