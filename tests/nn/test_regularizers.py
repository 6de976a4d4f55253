"""Regularizers: penalties, gradients by finite differences, L1 training."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp import nn
from refcomp.errors import ValidationError
from refcomp.nn import regularizers


def test_regularizer_penalties_and_gradients():
    lin = nn.Linear(3, 2, rng=0, dtype="float64")
    w = lin.weight.data
    reg = regularizers.ElasticNet(l1=0.3, l2=0.2)
    assert reg.penalty(lin) == pytest.approx(0.3 * np.abs(w).sum() + 0.1 * (w * w).sum())
    lin.zero_grad()
    reg.add_gradient(lin)
    np.testing.assert_allclose(lin.weight.grad, 0.3 * np.sign(w) + 0.2 * w)
    assert lin.bias.grad is None          # biases are not penalised by default
    # finite differences of the penalty
    h, num = 1e-6, np.zeros_like(w)
    for i in np.ndindex(w.shape):
        old = w[i]
        w[i] = old + h
        lp = reg.penalty(lin)
        w[i] = old - h
        lm = reg.penalty(lin)
        w[i] = old
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(lin.weight.grad, num, rtol=1e-6)
    assert regularizers.L1(0.1).l2 == 0 and regularizers.L2(0.1).l1 == 0


def test_l1_training_makes_weights_small():
    from refcomp import datasets, models

    x, y = datasets.digits()
    plain, sparse = models.digits_mlp(0), models.digits_mlp(0)
    nn.train(plain, (x, y), epochs=3, progress=False)
    nn.train(sparse, (x, y), epochs=3, progress=False, regularizer=regularizers.L1(1e-3))
    small = lambda m: np.mean(np.abs(m["fc1"].weight.data) < 1e-2)  # noqa: E731
    assert small(sparse) > small(plain) + 0.1


def test_soft_threshold_is_the_l1_prox():
    """(R.1) against the piecewise definition and against argmin_u ½(u − v)² + τ|u| on a fine grid."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=200) * 2
    tau = 0.7
    want = np.array([x - tau if x > tau else x + tau if x < -tau else 0.0 for x in v])
    np.testing.assert_array_equal(regularizers.soft_threshold(v, tau), want)
    grid = np.linspace(-8, 8, 160001)
    for x in v[:10]:
        u = grid[np.argmin(0.5 * (grid - x) ** 2 + tau * np.abs(grid))]
        assert abs(regularizers.soft_threshold(np.array([x]), tau)[0] - u) <= 1e-4
    with pytest.raises(ValueError, match="tau"):
        regularizers.soft_threshold(v, -1.0)


def test_proximal_step_reaches_the_elastic_net_solution_with_exact_zeros():
    """min ½‖w − a‖² + λ1‖w‖₁ + (λ2/2)‖w‖² has the closed form w* = S(a, λ1) / (1 + λ2) (orthogonal design,
    Zou & Hastie 2005 §2.2 before their rescaling); (R.2) iterated reaches it with its exact zeros."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=50)
    l1, l2, lr = 0.5, 0.3, 0.2
    star = np.sign(a) * np.maximum(np.abs(a) - l1, 0) / (1 + l2)
    w = np.zeros(50)
    for _ in range(300):
        w = regularizers.proximal_elastic_net_step(w, w - a, lr, l1, l2)
    np.testing.assert_allclose(w, star, atol=1e-12)
    assert np.array_equal(w == 0, star == 0) and (star == 0).sum() >= 10
    with pytest.raises(ValueError, match="l1"):
        regularizers.proximal_elastic_net_step(w, w, 0.1, -1.0, 0.0)


def test_proximal_elastic_net_in_train_is_r2_by_hand():
    """train(regularizer=ProximalElasticNet): full-batch SGD (momentum 0) = w ← S(w − η(g + λ2 w), ηλ1) with g
    the cross-entropy gradient, written here; the bias is not penalised. And it leaves exact zeros."""
    rng = np.random.default_rng(2)
    n, d, k = 40, 6, 3
    x, y = rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, size=n)
    m = nn.Sequential(("fc", nn.Linear(d, k, rng=rng)))
    w, b = m["fc"].weight.data.astype(np.float64), m["fc"].bias.data.astype(np.float64)
    l1, l2, lr = 0.05, 0.1, 0.5
    reg = regularizers.ProximalElasticNet(l1=l1, l2=l2)
    nn.train(m, (x, y), epochs=5, batch_size=n, lr=lr, momentum=0.0, schedule="constant", regularizer=reg,
             progress=False)
    xd, onehot = x.astype(np.float64), np.eye(k)[y]
    for _ in range(5):
        z = xd @ w.T + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = (p / p.sum(axis=1, keepdims=True) - onehot) / n
        v = w - lr * (g.T @ xd + l2 * w)
        w, b = np.where(np.abs(v) > lr * l1, v - np.sign(v) * lr * l1, 0.0), b - lr * g.sum(axis=0)
    np.testing.assert_allclose(m["fc"].weight.data, w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["fc"].bias.data, b, rtol=1e-4, atol=1e-6)
    assert (m["fc"].weight.data == 0).sum() == (w == 0).sum() > 0
    assert reg.penalty(m) == pytest.approx(regularizers.ElasticNet(l1, l2).penalty(m))


# --- which parameters are penalised, and the sums over them --------------------------------

def _net():
    """Conv (4-D weight), BatchNorm (1-D 'weight' scale), Linear (2-D weight): float32, as trained."""
    return nn.Sequential(("conv", nn.Conv2d(1, 2, 3, rng=0)), ("bn", nn.BatchNorm2d(2)),
                         ("flat", nn.Flatten()), ("fc", nn.Linear(8, 3, rng=1)))


def test_default_selection_is_the_matrix_and_kernel_weights_summed_in_float64():
    m = _net()
    m["bn"].weight.data[...] = 3.0          # a norm scale is a 'weight' but not penalised
    ws = [m["conv"].weight.data.astype(np.float64), m["fc"].weight.data.astype(np.float64)]
    l1, l2 = 0.3, 0.2
    want = sum(l1 * np.abs(w).sum() + 0.5 * l2 * (w * w).sum() for w in ws)
    assert regularizers.ElasticNet(l1, l2).penalty(m) == pytest.approx(want, rel=1e-14)
    assert regularizers.L1(l1).penalty(m) == pytest.approx(sum(l1 * np.abs(w).sum() for w in ws), rel=1e-14)
    assert regularizers.L2(l2).penalty(m) == pytest.approx(sum(0.5 * l2 * (w * w).sum() for w in ws), rel=1e-14)
    assert regularizers.ElasticNet().penalty(m) == 0.0      # defaults: no penalty
    m.zero_grad()
    regularizers.ElasticNet(l1, l2).add_gradient(m)
    for name in ("conv", "fc"):
        w = m[name].weight.data
        np.testing.assert_allclose(m[name].weight.grad, l1 * np.sign(w) + l2 * w, rtol=1e-6)
        assert m[name].weight.grad.dtype == np.float32
    assert m["bn"].weight.grad is None and m["fc"].bias.grad is None


def test_gradient_adds_to_the_loss_gradient():
    lin = nn.Linear(3, 2, rng=0, dtype="float64")
    lin.weight.grad = np.ones_like(lin.weight.data)
    regularizers.L2(0.5).add_gradient(lin)
    np.testing.assert_allclose(lin.weight.grad, 1.0 + 0.5 * lin.weight.data)


def test_custom_selection_is_used():
    m = _net()
    only_bias = lambda name, p: name.endswith("bias")  # noqa: E731
    bs = [p.data.astype(np.float64) for n, p in m.named_parameters() if n.endswith("bias")]
    l1_sum, l2_sum = sum(np.abs(b).sum() for b in bs), sum((b * b).sum() for b in bs)
    assert regularizers.L1(0.5, select=only_bias).penalty(m) == pytest.approx(0.5 * l1_sum, rel=1e-14)
    assert regularizers.L2(0.5, select=only_bias).penalty(m) == pytest.approx(0.25 * l2_sum, rel=1e-14)
    assert regularizers.ElasticNet(0.5, select=only_bias).penalty(m) == pytest.approx(0.5 * l1_sum, rel=1e-14)


@pytest.mark.parametrize("make,argument", [
    (lambda v: regularizers.ElasticNet(l1=v), "l1"), (lambda v: regularizers.ElasticNet(l2=v), "l2"),
    (lambda v: regularizers.L1(v), "l1"), (lambda v: regularizers.L2(v), "l2"),
    (lambda v: regularizers.ProximalElasticNet(l1=v), "l1"),
    (lambda v: regularizers.proximal_elastic_net_step([1.0], [1.0], v, 0.1, 0.1), "lr"),
    (lambda v: regularizers.proximal_elastic_net_step([1.0], [1.0], 0.1, v, 0.1), "l1"),
    (lambda v: regularizers.proximal_elastic_net_step([1.0], [1.0], 0.1, 0.1, v), "l2"),
    (lambda v: regularizers.soft_threshold([1.0], v), "tau"),
    (lambda v: regularizers.soft_threshold([1.0], [0.5, v]), "tau"),
])
@pytest.mark.parametrize("bad", [-0.5, np.inf, np.nan])
def test_strengths_must_be_finite_and_nonnegative(make, argument, bad):
    with pytest.raises(ValidationError) as info:
        make(bad)
    assert info.value.argument == argument
    make(0.0)


def test_proximal_step_refuses_mismatched_gradient_and_keeps_dtype():
    with pytest.raises(ValidationError) as info:
        regularizers.proximal_elastic_net_step(np.zeros(3), np.zeros(4), 0.1, 0.1, 0.1)
    assert info.value.argument == "g"
    w = np.array([1.0, -0.01, 0.5], dtype=np.float32)
    out = regularizers.proximal_elastic_net_step(w, np.array([0.5, 0.0, -1.0], dtype=np.float32), 0.1, 0.2, 0.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [1.0 - 0.05 - 0.02, 0.0, 0.6 - 0.02], rtol=1e-6)
    assert regularizers.soft_threshold(np.array([2.0, -0.5], dtype=np.float16), 1.0).dtype == np.float16


def test_proximal_elastic_net_gradient_is_the_smooth_part_only():
    lin = nn.Linear(3, 2, rng=0, dtype="float64")
    lin.zero_grad()
    regularizers.ProximalElasticNet(l1=0.3, l2=0.2).add_gradient(lin)
    np.testing.assert_allclose(lin.weight.grad, 0.2 * lin.weight.data)      # no λ1·sign(θ)
    lin.zero_grad()
    regularizers.ProximalElasticNet(l1=0.3).add_gradient(lin)
    assert lin.weight.grad is None                                          # λ2 = 0: nothing
    w = lin.weight.data.copy()
    regularizers.ProximalElasticNet(l2=0.3).after_step(lin, 0.5)            # λ1 = 0: no threshold
    np.testing.assert_array_equal(lin.weight.data, w)
    regularizers.ProximalElasticNet(l1=0.3).after_step(lin, 0.5)
    np.testing.assert_array_equal(lin.weight.data, np.sign(w) * np.maximum(np.abs(w) - 0.15, 0))


def test_l1_subgradient_is_zero_at_a_zero_weight():
    lin = nn.Linear(2, 2, rng=0, dtype="float64")
    lin.weight.data[...] = [[0.0, 1.5], [-2.0, 0.0]]
    lin.zero_grad()
    regularizers.L1(0.3).add_gradient(lin)
    np.testing.assert_array_equal(lin.weight.grad, [[0.0, 0.3], [-0.3, 0.0]])


# --- the max-norm constraint (R.3) ----------------------------------------------------------


def _max_norm_by_hand(w, c):
    """(R.3) one unit at a time, in Python floats: the oracle for max_norm."""
    out = w.astype(np.float64).copy()
    for j in range(w.shape[0]):
        norm = sum(float(v) ** 2 for v in w[j].ravel()) ** 0.5
        if norm > c:
            out[j] = w[j].astype(np.float64) * (c / norm)
    return out


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(1, 1), (5, 3), (3, 7), (4, 2, 3, 3)]), scale=st.floats(0.01, 10.0),
       c=st.floats(0.1, 5.0), seed=st.integers(0, 2 ** 16))
def test_max_norm_is_r3_by_hand_per_unit(shape, scale, c, seed):
    """Each unit's incoming weights (row of a Linear weight, output channel of a Conv2d kernel) onto the
    ball ‖w_j‖₂ <= c; units inside it keep their exact bits; the others keep their direction."""
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=shape) * rng.uniform(0.05, 3.0, size=(shape[0],) + (1,) * (len(shape) - 1))
         * scale).astype(np.float32)
    out = regularizers.max_norm(w, c)
    assert out.dtype == w.dtype and out.shape == w.shape
    np.testing.assert_allclose(out, _max_norm_by_hand(w, c), rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(w.reshape(len(w), -1).astype(np.float64), axis=1)
    inside = norms <= c
    assert np.array_equal(out[inside], w[inside])
    assert np.all(np.linalg.norm(out.reshape(len(w), -1), axis=1) <= c * (1 + 1e-6))


def test_max_norm_projects_rows_not_columns():
    """A (2, 3) weight whose one row is long and whose columns are all short: only that row moves."""
    w = np.array([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0]], np.float32)   # row norms 5, 0.1; column norms <= 4
    np.testing.assert_array_equal(regularizers.max_norm(w, 2.5), np.float32([[1.5, 2.0, 0.0], [0.1, 0.0, 0.0]]))
    assert regularizers.max_norm(w, 2.5) is not w and w[0, 0] == 3.0     # a new array; w is kept


def test_max_norm_in_train_bounds_every_unit_and_leaves_biases():
    """With a step large enough that plain SGD grows some unit past c, MaxNorm keeps every weight's units
    inside the ball after training; the biases (not selected) are free. Its penalty and gradient are 0."""
    from refcomp import datasets, models

    x, y = datasets.digits()
    c = 1.0
    free, bound = models.digits_mlp(0), models.digits_mlp(0)
    reg = regularizers.MaxNorm(c)
    kw = dict(epochs=2, lr=0.5, momentum=0.9, progress=False)
    nn.train(free, (x, y), **kw)
    nn.train(bound, (x, y), regularizer=reg, **kw)

    def unit_norms(m):
        return np.concatenate([np.linalg.norm(p.data.reshape(len(p.data), -1), axis=1)
                               for n, p in m.named_parameters() if n.endswith("weight")])

    assert unit_norms(free).max() > 1.5 * c                  # the constraint has something to do
    assert unit_norms(bound).max() <= c * (1 + 1e-6)
    assert np.isclose(unit_norms(bound), c, rtol=1e-5).sum() > 0       # units sit on the sphere
    biases = [p.data for n, p in bound.named_parameters() if n.endswith("bias")]
    assert any(np.abs(b).max() > 0 for b in biases)
    assert reg.penalty(bound) == 0.0
    bound.zero_grad()
    reg.add_gradient(bound)
    assert all(p.grad is None for p in bound.parameters())


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_max_norm_refuses_a_radius_that_is_not_finite_and_positive(bad):
    with pytest.raises(ValidationError, match="c"):
        regularizers.MaxNorm(bad)
    with pytest.raises(ValidationError, match="c"):
        regularizers.max_norm(np.ones((2, 2)), bad)


def test_max_norm_refuses_a_vector():
    with pytest.raises(ValidationError, match="w.*rank >= 2"):
        regularizers.max_norm(np.ones(3), 1.0)
