"""Cross-layer equalization of whole models (inside static PTQ)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize.cle_model import equalizable_chains, equalize_model
from refcomp.compress.quantize.model_graph import prepare
from refcomp.models import lenet5
from refcomp.nn import Conv2d, ReLU, Sequential

from ..models_for_tests import small_cnn, small_mlp
from .cases import _bn_cnn, _cnn_input, _skewed_cnn, seeds


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
