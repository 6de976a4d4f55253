"""Optimizer steps against hand-computed formulas; schedules; regularizers."""

import numpy as np
import pytest

from refcomp import nn
from refcomp.errors import ValidationError
from refcomp.nn.module import Parameter


def param(values, grad):
    p = Parameter(np.array(values, dtype=np.float64))
    p.grad = np.array(grad, dtype=np.float64)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.25])
    nn.SGD([p], lr=0.1, weight_decay=0.01).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.25 - 0.02)])


def test_sgd_momentum_two_steps():
    p = param([1.0], [2.0])
    opt = nn.SGD([p], lr=0.1, momentum=0.9, dampening=0.1)
    opt.step()                      # b = g = 2 (no dampening on the first step)
    np.testing.assert_allclose(p.data, [1.0 - 0.2])
    p.grad = np.array([1.0])
    opt.step()                      # b = 0.9·2 + 0.9·1 = 2.7
    np.testing.assert_allclose(p.data, [0.8 - 0.1 * 2.7])


def test_sgd_nesterov():
    p = param([0.0], [1.0])
    opt = nn.SGD([p], lr=1.0, momentum=0.5, nesterov=True)
    opt.step()                      # b = 1, d = g + μ·b = 1.5
    np.testing.assert_allclose(p.data, [-1.5])
    p.grad = np.array([2.0])
    opt.step()                      # b = 0.5 + 2 = 2.5, d = 2 + 1.25 = 3.25
    np.testing.assert_allclose(p.data, [-4.75])
    with pytest.raises(ValidationError, match="nesterov"):
        nn.SGD([p], lr=1.0, nesterov=True)


@pytest.mark.parametrize("cls,wd", [(nn.Adam, 0.0), (nn.Adam, 0.1), (nn.AdamW, 0.1)])
def test_adam_family_three_steps(cls, wd):
    grads = [np.array([0.3, -1.0]), np.array([0.1, 0.5]), np.array([-0.2, 0.0])]
    p = param([1.0, 2.0], grads[0])
    opt = cls([p], lr=0.01, betas=(0.8, 0.9), eps=1e-8, weight_decay=wd)
    theta = np.array([1.0, 2.0])
    m = v = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        if cls is nn.AdamW:
            theta = theta * (1 - 0.01 * wd)
        else:
            g = g + wd * theta
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        theta = theta - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-8)
        np.testing.assert_allclose(p.data, theta, rtol=1e-14)


def test_optimizer_skips_frozen_and_gradless():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    b.trainable = False
    c = Parameter(np.array([1.0]))
    nn.SGD([a, b, c], lr=0.5).step()
    assert a.data[0] == 0.5 and b.data[0] == 1.0 and c.data[0] == 1.0


# --- hyperparameter contracts: each bad value is refused naming its argument -----------------

@pytest.mark.parametrize("make,argument", [
    (lambda p, v: nn.SGD([p], lr=v), "lr"),
    (lambda p, v: nn.SGD([p], lr=0.1, momentum=v), "momentum"),
    (lambda p, v: nn.SGD([p], lr=0.1, dampening=v), "dampening"),
    (lambda p, v: nn.SGD([p], lr=0.1, weight_decay=v), "weight_decay"),
    (lambda p, v: nn.Adam([p], lr=v), "lr"),
    (lambda p, v: nn.Adam([p], eps=v), "eps"),
    (lambda p, v: nn.Adam([p], weight_decay=v), "weight_decay"),
    (lambda p, v: nn.AdamW([p], weight_decay=v), "weight_decay"),
])
@pytest.mark.parametrize("bad", [-0.5, np.inf, np.nan])
def test_hyperparameters_must_be_finite_and_nonnegative(make, argument, bad):
    p = param([1.0], [1.0])
    with pytest.raises(ValidationError) as info:
        make(p, bad)
    assert info.value.argument == argument
    make(p, 0.0)                    # zero is allowed (e.g. lr = 0 in a warm-up)


@pytest.mark.parametrize("betas", [(1.0, 0.9), (0.9, 1.0), (-0.1, 0.9), (0.9, -0.1), (1.5, 1.5)])
def test_adam_betas_must_lie_in_zero_one(betas):
    with pytest.raises(ValidationError) as info:
        nn.Adam([param([1.0], [1.0])], betas=betas)
    assert info.value.argument == "betas"


def test_adam_betas_zero_is_a_normalised_gradient_step():
    # β1 = β2 = 0: m = g, v = g², no bias correction → θ ← θ − η·g/(|g| + ε)
    p = param([1.0, 1.0], [0.5, -2.0])
    nn.Adam([p], lr=0.1, betas=(0.0, 0.0), eps=1e-3).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 0.5 / 0.501, 1.0 + 0.1 * 2.0 / 2.001], rtol=1e-15)


def test_only_objects_marked_trainable_are_optimized():
    # an object without a ``trainable`` flag (a buffer, a plain holder of an array) is not a parameter
    class Holder:
        def __init__(self):
            self.data, self.grad = np.array([1.0]), np.array([1.0])
    with pytest.raises(ValidationError) as info:
        nn.SGD([Holder()], lr=0.1)
    assert info.value.argument == "params"
    h, p = Holder(), param([1.0], [1.0])
    opt = nn.SGD([h, p], lr=0.5)
    assert opt.params == [p]
    opt.step()
    assert h.data[0] == 1.0 and p.data[0] == 0.5


def test_step_counter_counts_steps():
    opt = nn.SGD([param([1.0], [1.0])], lr=0.1)
    assert opt.t == 0
    for k in range(1, 4):
        opt.step()
        assert opt.t == k


# --- defaults: PyTorch's (lr 1e-3, betas (0.9, 0.999), eps 1e-8; AdamW's weight decay 0.01) ---

@pytest.mark.parametrize("cls,wd", [(nn.Adam, 0.0), (nn.AdamW, 0.01)])
def test_adam_family_defaults(cls, wd):
    # a gradient of the size of ε makes the step depend on ε at the first digit
    grads = [np.array([3e-8, -1e-6, 2.0]), np.array([-1e-8, 4e-6, 1.0])]
    p = param([1.0, -1.0, 0.5], grads[0])
    opt = cls([p])
    theta, m, v = np.array([1.0, -1.0, 0.5]), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        theta = theta * (1 - 1e-3 * wd)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - 1e-3 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        np.testing.assert_allclose(p.data, theta, rtol=1e-13)


# --- state: one per parameter, in the parameter's dtype, never aliasing the gradient ---------

@pytest.mark.parametrize("make", [
    lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: nn.Adam(ps, lr=0.1, betas=(0.5, 0.7)),
])
def test_each_parameter_has_its_own_state(make):
    # two parameters step together exactly as each would alone
    a, b = param([1.0, 2.0], [0.5, -1.0]), param([3.0, -4.0], [2.0, 0.25])
    a1, b1 = param([1.0, 2.0], [0.5, -1.0]), param([3.0, -4.0], [2.0, 0.25])
    together, alone_a, alone_b = make([a, b]), make([a1]), make([b1])
    for grads in ([0.5, -1.0], [2.0, 0.25]), ([-0.3, 0.1], [1.0, 1.0]), ([0.2, 0.2], [-2.0, 0.5]):
        for opt, ps in ((together, (a, b)), (alone_a, (a1,)), (alone_b, (b1,))):
            for p in ps:
                p.grad = np.array(grads[0] if p in (a, a1) else grads[1])
            opt.step()
        np.testing.assert_array_equal(a.data, a1.data)
        np.testing.assert_array_equal(b.data, b1.data)


def test_sgd_momentum_buffer_follows_the_parameter_dtype():
    # a float32 model keeps float32 optimizer state even when a gradient arrives in float64
    p = Parameter(np.array([1.0, 2.0], dtype=np.float32))
    p.grad = np.array([0.1, 0.2], dtype=np.float64)
    opt = nn.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert opt.state[id(p)]["momentum_buffer"].dtype == np.float32
    assert p.data.dtype == np.float32


def test_sgd_momentum_never_writes_into_the_gradient():
    # the same gradient array kept across steps (no zero_grad) is read, never scaled in place
    p = param([0.0], [1.0])
    g = p.grad
    opt = nn.SGD([p], lr=1.0, momentum=0.5)
    opt.step()                      # b = 1
    opt.step()                      # b = 0.5 + 1 = 1.5
    assert g[0] == 1.0
    np.testing.assert_allclose(p.data, [-2.5], rtol=1e-15)


def test_no_weight_decay_never_reads_the_parameter_values():
    # with λ = 0 the step depends on g alone: an overflowed (infinite) entry stays infinite, not NaN
    for make in (lambda ps: nn.SGD(ps, lr=0.1), lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                 lambda ps: nn.Adam(ps, lr=0.1)):
        p = param([np.inf, -np.inf], [1.0, 1.0])
        make([p]).step()
        assert list(p.data) == [np.inf, -np.inf]

