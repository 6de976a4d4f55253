"""Finite-difference gradient checking in float64.

For a layer f and a fixed random cotangent R, the scalar L(x, θ) = Σ f(x; θ) ⊙ R
has dL/dx = f.backward(R) and dL/dθ = θ.grad. Each is compared with the central
difference (L(v + h·e_i) − L(v − h·e_i)) / 2h on every coordinate (or a random
subset of them for large tensors), h = 1e-6; the truncation error is O(h²·f''')
and the rounding error O(ε·|L|/h) ≈ 1e-10, so rtol = atol = 1e-6 leaves a
margin of about 100 while a wrong formula misses by orders of magnitude.
"""

from __future__ import annotations

import numpy as np

from refcomp.nn import Sequential

H = 1e-6
TOL = 1e-6


def _numeric(fn, v: np.ndarray, idx) -> np.ndarray:
    out = np.empty(len(idx))
    flat = v.reshape(-1)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + H
        lp = fn()
        flat[i] = old - H
        lm = fn()
        flat[i] = old
        out[k] = (lp - lm) / (2 * H)
    return out


def numeric_gradient(fn, v: np.ndarray) -> np.ndarray:
    """The central difference of the scalar ``fn()`` in every coordinate of ``v`` (changed in place, restored)."""
    return _numeric(fn, v, np.arange(v.size)).reshape(v.shape)


def _subset(n, rng, max_coords):
    return np.arange(n) if n <= max_coords else rng.choice(n, max_coords, replace=False)


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, *, max_coords: int = 60,
                check_input: bool = True, tol: float = TOL) -> None:
    """Assert layer.backward matches finite differences for x and every trainable parameter."""
    x = np.array(x, dtype=np.float64)
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    layer.zero_grad()
    dx = layer.backward(r)
    grads = {name: p.grad.copy() for name, p in layer.named_parameters()}
    if check_input:
        idx = _subset(x.size, rng, max_coords)
        num = _numeric(loss, x, idx)
        np.testing.assert_allclose(np.asarray(dx).reshape(-1)[idx], num, rtol=tol, atol=tol,
                                   err_msg=f"{type(layer).__name__}: dL/dx")
    for name, p in layer.named_parameters():
        idx = _subset(p.data.size, rng, max_coords)
        num = _numeric(loss, p.data, idx)
        np.testing.assert_allclose(grads[name].reshape(-1)[idx], num, rtol=tol, atol=tol,
                                   err_msg=f"{type(layer).__name__}: dL/d{name}")


def check_input_grad_false(layer, x: np.ndarray, dy: np.ndarray, *, rtol: float | None = None) -> None:
    """Assert backward(dy, input_grad=False) returns None and the parameter gradients of a full backward.

    rtol None: bit for bit (the same arithmetic, dL/dx only skipped). Then the same layer as a model's
    first layer, which is told to skip dL/dx (accepts_input_grad).
    """
    layer.forward(x)
    layer.backward(dy)
    want = {k: p.grad.copy() for k, p in layer.named_parameters()}
    layer.zero_grad()
    layer.forward(x)
    assert layer.backward(dy, input_grad=False) is None
    for k, p in layer.named_parameters():
        if rtol is None:
            assert p.grad.dtype == want[k].dtype and p.grad.tobytes() == want[k].tobytes(), k
        else:
            np.testing.assert_allclose(p.grad, want[k], rtol=rtol, err_msg=k)
    model = Sequential(("layer", layer))
    model.forward(x)
    assert model.backward(dy, input_grad=False) is None


def check_loss(loss, pred: np.ndarray, target, rng, *, tol: float = TOL) -> None:
    pred = np.array(pred, dtype=np.float64)

    def f():
        return loss.forward(pred, target)

    f()
    g = loss.backward()
    idx = np.arange(pred.size)
    num = _numeric(f, pred, idx)
    np.testing.assert_allclose(g.reshape(-1), num, rtol=tol, atol=tol, err_msg=type(loss).__name__)
