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


def _names(model):
    return [[name for name, _, _ in chain] for chain in equalizable_chains(model)]


def test_pairing_rules_what_commutes_with_a_per_channel_scale():
    """Only the pairs of the module's table chain (read from the layers, never run): a Linear feeding a
    Conv2d, a Conv2d feeding a Linear without a Flatten, a Flatten between Linears or before a Conv2d, or a
    flattened Linear whose inputs do not split into one block per channel each break the chain; ReLU,
    Dropout and MaxPool2d do not, and a lone layer between breaks is no chain."""
    from refcomp.nn import Dropout, Flatten, Linear, MaxPool2d

    rng = np.random.default_rng(0)
    assert _names(Sequential(("a", Linear(4, 3, rng=rng)), ("b", Conv2d(3, 2, 1, rng=rng)))) == []
    assert _names(Sequential(("a", Conv2d(1, 3, 1, rng=rng)), ("b", Linear(3, 2, rng=rng)))) == []
    assert _names(Sequential(("a", Linear(4, 3, rng=rng)), ("f", Flatten()), ("b", Linear(3, 2, rng=rng)))) == []
    assert _names(Sequential(("a", Conv2d(1, 4, 1, rng=rng)), ("f", Flatten()), ("b", Conv2d(4, 2, 1, rng=rng)))) == []
    assert _names(Sequential(("a", Conv2d(1, 4, 1, rng=rng)), ("f", Flatten()), ("b", Linear(10, 2, rng=rng)))) == []
    chains = equalizable_chains(Sequential(("a", Conv2d(1, 4, 1, rng=rng)), ("f", Flatten()),
                                           ("b", Linear(12, 2, rng=rng))))
    assert [[(n, v) for n, _, v in c] for c in chains] == [[("a", (4, 1, 1, 1)), ("b", (2, 4, 3, 1))]]
    # a Dropout after the Flatten: the Linear still reads the flattened channels
    chains = equalizable_chains(Sequential(("a", Conv2d(1, 4, 1, rng=rng)), ("f", Flatten()), ("d", Dropout(0.5)),
                                           ("b", Linear(12, 2, rng=rng))))
    assert [[(n, v) for n, _, v in c] for c in chains] == [[("a", (4, 1, 1, 1)), ("b", (2, 4, 3, 1))]]
    m = Sequential(("a", Conv2d(1, 4, 3, rng=rng)), ("r", ReLU()), ("d", Dropout(0.5)), ("p", MaxPool2d(2)),
                   ("b", Conv2d(4, 2, 3, rng=rng)))
    assert _names(m) == [["a", "b"]]
    # two chains: a Conv2d straight into a Linear (no Flatten) ends the first, and the second starts there
    m = Sequential(("a", Conv2d(1, 2, 1, rng=rng)), ("b", Conv2d(2, 3, 1, rng=rng)), ("c", Linear(3, 4, rng=rng)),
                   ("d", Linear(4, 2, rng=rng)))
    assert _names(m) == [["a", "b"], ["c", "d"]]
    m = Sequential(("a", Linear(3, 4, rng=rng)), ("b", Conv2d(4, 2, 1, rng=rng)), ("c", Linear(2, 2, rng=rng)))
    assert _names(m) == []


def test_equalized_layers_keep_the_model_dtype_and_missing_biases():
    """W1 / s, b1 / s, W2·s come back in the model's own dtype (float32 or float64); a layer without a bias
    stays without one, and the outputs are unchanged."""
    from refcomp.nn import Flatten, Linear

    for dtype, tol in (("float32", 1e-5), ("float64", 1e-6)):
        rng = np.random.default_rng(1)
        m = Sequential(("conv1", Conv2d(1, 3, 3, bias=False, rng=rng, dtype=dtype)), ("relu1", ReLU()),
                       ("conv2", Conv2d(3, 4, 3, rng=rng, dtype=dtype)), ("relu2", ReLU()), ("flatten", Flatten()),
                       ("fc", Linear(4 * 4 * 4, 3, bias=False, rng=rng, dtype=dtype)))
        m["conv1"].weight.data[...] *= (10.0 ** np.array([-1.0, 0.0, 1.0]))[:, None, None, None]
        x = rng.random((6, 1, 8, 8)).astype(dtype)
        eq, report = equalize_model(m)
        assert list(report) == [("conv1", "conv2", "fc")]
        for name in ("conv1", "conv2", "fc"):
            assert eq[name].weight.to_dense().dtype == np.dtype(dtype)
            assert eq[name].weight.shape == m[name].weight.shape       # fc's (3, 64), not its (3, 4, 16, 1) view
        assert eq["conv1"].bias is None and eq["fc"].bias is None
        assert eq["conv2"].bias.data.dtype == np.dtype(dtype)
        assert not np.array_equal(eq["conv2"].bias.data, m["conv2"].bias.data)       # b2 / s2: rescaled
        y = m.forward(x)
        assert np.max(np.abs(eq.forward(x) - y)) <= tol * (1 + np.max(np.abs(y)))


def test_sweep_count_and_its_limits():
    """A long chain of 2×2 Linears with ranges spread over decades converges slowly: the default stops after
    20 sweeps, max_iter moves that limit, and a loose tol stops at the first sweep whose scales all have
    |log s| below it. The report maps the chain's stage names to the sweeps done."""
    from refcomp.nn import Linear

    rng = np.random.default_rng(2)
    layers = []
    for i in range(30):
        fc = Linear(2, 2, rng=rng, dtype="float64")
        fc.weight.data[...] *= (10.0 ** rng.uniform(-3, 3, (2, 1)))
        layers.append((f"fc{i}", fc))
    m = Sequential(*layers)
    names = tuple(f"fc{i}" for i in range(30))
    assert equalize_model(m)[1] == {names: 20}
    assert equalize_model(m, max_iter=3)[1] == {names: 3}
    assert equalize_model(m, max_iter=25)[1] == {names: 25}
    assert equalize_model(m, tol=1e9)[1] == {names: 1}
