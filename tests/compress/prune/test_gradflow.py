"""The Hessian-gradient product (P.3) against the Hessian of the loss taken by second differences of the loss.

The oracle writes the network and the cross-entropy out in NumPy (no refcomp
code), takes g by central differences and H by second differences of that
scalar, and multiplies: Hg = H @ g.
"""

import numpy as np
import pytest

from refcomp.compress.prune import hessian_gradient_product, layer_scores, prunable_layers, prune_model
from refcomp.errors import ValidationError
from refcomp.nn import Linear, Sequential, Tanh


def _net(seed=0):
    g = np.random.default_rng(seed)
    return Sequential(("fc1", Linear(3, 4, rng=g, dtype="float64")), ("act", Tanh()),
                      ("fc2", Linear(4, 3, rng=g, dtype="float64")))


def _data(seed=1, n=7):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, 3)), g.integers(0, 3, size=n)


def _loss_written_out(theta, m, x, y):
    """Mean softmax cross-entropy of tanh(x W1ᵀ + b1) W2ᵀ + b2, θ = (W1, W2) flattened."""
    w1 = theta[:12].reshape(4, 3)
    w2 = theta[12:].reshape(3, 4)
    z = np.tanh(x @ w1.T + m["fc1"].bias.data) @ w2.T + m["fc2"].bias.data
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def _oracle(m, x, y, h=1e-4):
    theta = np.concatenate([m["fc1"].weight.data.ravel(), m["fc2"].weight.data.ravel()])
    n = theta.size
    f = lambda t: _loss_written_out(t, m, x, y)  # noqa: E731
    e = np.eye(n) * h
    g = np.array([(f(theta + e[i]) - f(theta - e[i])) / (2 * h) for i in range(n)])
    hess = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            hess[i, j] = (f(theta + e[i] + e[j]) - f(theta + e[i] - e[j])
                          - f(theta - e[i] + e[j]) + f(theta - e[i] - e[j])) / (4 * h * h)
    return g, hess @ g


def test_hg_equals_the_hessian_of_the_loss_times_its_gradient():
    m = _net()
    x, y = _data()
    layers = prunable_layers(m)
    before = {k: l.weight.data.copy() for k, l in layers.items()}
    g, hg = hessian_gradient_product(m, layers, [(x, y)])
    g_ref, hg_ref = _oracle(m, x, y)
    np.testing.assert_allclose(np.concatenate([g["fc1"].ravel(), g["fc2"].ravel()]), g_ref, atol=1e-8)
    ours = np.concatenate([hg["fc1"].ravel(), hg["fc2"].ravel()])
    np.testing.assert_allclose(ours, hg_ref, rtol=1e-4, atol=1e-6 * np.abs(hg_ref).max())
    for k, l in layers.items():  # the weights come back bit for bit
        np.testing.assert_array_equal(l.weight.data, before[k])


def test_hg_is_the_mean_over_batches():
    m = _net()
    x, y = _data(n=8)
    layers = prunable_layers(m)
    _, one = hessian_gradient_product(m, layers, [(x, y)])
    _, two = hessian_gradient_product(m, layers, [(x[:4], y[:4]), (x[4:], y[4:])])
    for k in one:  # equal batches: the mean of per-batch products is the full-batch product
        np.testing.assert_allclose(two[k], one[k], rtol=1e-6, atol=1e-10)


def test_grasp_criterion_removes_the_largest_minus_theta_hg():
    m = _net()
    x, y = _data()
    _, hg_ref = _oracle(m, x, y)
    theta = np.concatenate([m["fc1"].weight.data.ravel(), m["fc2"].weight.data.ravel()])
    s = -theta * hg_ref                     # GraSP's score, eq. (8)
    removed_ref = set(np.argsort(s)[-6:])   # the 6 largest scores go
    _, report = prune_model(m, 6 / 24, criterion="grasp", scope="global", data=(x, y))
    mk = np.concatenate([report["masks"]["fc1"].ravel(), report["masks"]["fc2"].ravel()])
    assert set(np.flatnonzero(~mk)) == removed_ref


def test_gradient_criterion_is_abs_gradient_of_the_loss():
    m = _net()
    x, y = _data()
    g_ref, _ = _oracle(m, x, y)
    s = layer_scores(m, "gradient", data=(x, y))
    np.testing.assert_allclose(np.concatenate([s["fc1"].ravel(), s["fc2"].ravel()]), np.abs(g_ref), atol=1e-8)


def test_eps_must_be_positive():
    m = _net()
    with pytest.raises(ValidationError, match="eps"):
        hessian_gradient_product(m, prunable_layers(m), [_data()], eps=0.0)


class _ScaledCrossEntropy:
    """2 × cross-entropy: ∇ doubles and H doubles, so Hg (taken along its own g) is 4 × the plain one."""

    def __init__(self):
        from refcomp.nn import CrossEntropyLoss
        self.ce = CrossEntropyLoss()

    def forward(self, logits, target):
        return 2 * self.ce.forward(logits, target)

    def backward(self):
        return 2 * self.ce.backward()


def test_the_given_loss_is_used_for_g_and_for_both_shifted_gradients():
    m = _net()
    x, y = _data()
    layers = prunable_layers(m)
    g, hg = hessian_gradient_product(m, layers, [(x, y)])
    g2, hg2 = hessian_gradient_product(m, layers, [(x, y)], loss=_ScaledCrossEntropy())
    for k in g:
        np.testing.assert_allclose(g2[k], 2 * g[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(hg2[k], 4 * hg[k], rtol=1e-6, atol=1e-12)


def test_the_model_is_evaluated_at_theta_plus_and_minus_eps_along_the_unit_gradient():
    # (P.3) in a float32 model: the step ε·g/‖g‖ is rounded to float32 once and added, then subtracted
    # (ε = 1 makes the step as large as the weights, so the rounding of the step itself shows)
    m = Sequential(("fc1", Linear(3, 4, rng=0)), ("act", Tanh()), ("fc2", Linear(4, 3, rng=1)))
    x, y = _data()
    layers = prunable_layers(m)
    seen = []

    class Recording(_ScaledCrossEntropy):
        def forward(self, logits, target):
            seen.append({k: l.weight.data.copy() for k, l in layers.items()})
            return super().forward(logits, target)

    w0 = {k: l.weight.data.copy() for k, l in layers.items()}
    g, _ = hessian_gradient_product(m, layers, [(x, y)], eps=1.0, loss=Recording())
    assert len(seen) == 3
    norm = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in g.values()))
    for k in layers:
        step = (1.0 * g[k] / norm).astype(np.float32)
        np.testing.assert_array_equal(seen[0][k], w0[k])
        np.testing.assert_array_equal(seen[1][k], w0[k] + step)
        np.testing.assert_array_equal(seen[2][k], w0[k] + (-step))
        np.testing.assert_array_equal(layers[k].weight.data, w0[k])


def test_a_zero_gradient_has_a_zero_product():
    # fc2 = 0 cuts every path from fc1 to the loss: g and Hg of fc1 are exactly 0 (no 0/0 direction)
    m = _net()
    m["fc2"].weight.data[...] = 0
    g, hg = hessian_gradient_product(m, {"fc1": m["fc1"]}, [_data()])
    np.testing.assert_array_equal(g["fc1"], np.zeros((4, 3)))
    assert hg["fc1"].shape == (4, 3) and hg["fc1"].dtype == np.float64
    np.testing.assert_array_equal(hg["fc1"], np.zeros((4, 3)))


@pytest.mark.parametrize("training", [True, False])
def test_gradients_leave_the_model_in_the_mode_it_came_in(training):
    m = _net().train(training)
    hessian_gradient_product(m, prunable_layers(m), [_data()])
    assert all(mod.training is training for _, mod in m.named_modules())


def test_layers_must_be_a_non_empty_mapping_and_batches_a_non_empty_list_of_pairs():
    m = _net()
    x, y = _data()
    layers = prunable_layers(m)
    for bad in ({}, [m["fc1"]], list(layers.items())):
        with pytest.raises(ValidationError) as e:
            hessian_gradient_product(m, bad, [(x, y)])
        assert e.value.argument == "layers"
    for bad in ([], ((x, y),), [[x, y]], [(x, y, y)], [x]):
        with pytest.raises(ValidationError) as e:
            hessian_gradient_product(m, layers, bad)
        assert e.value.argument == "batches"
