"""Finite-difference checks for modules with several inputs (graph nodes, Graphs).

The method and tolerance are nn_gradcheck's: L = Σ f(inputs; θ) ⊙ R for a fixed
random R; dL/d(each float input) = the entry of f.backward(R) (a tuple when
there are several inputs), dL/dθ = θ.grad, each against central differences.
Integer inputs (ids, masks) are held fixed and must get None.
"""

from __future__ import annotations

import numpy as np

from .nn_gradcheck import TOL, _numeric, _subset


def check_module(module, inputs, rng: np.random.Generator, *, max_coords: int = 60,
                 tol: float = TOL) -> None:
    inputs = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
              for a in inputs]
    y = module.forward(*inputs)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(module.forward(*inputs) * r))

    module.forward(*inputs)
    module.zero_grad()
    dxs = module.backward(r)
    if len(inputs) == 1:
        dxs = (dxs,)
    assert isinstance(dxs, tuple) and len(dxs) == len(inputs), dxs
    grads = {name: p.grad.copy() for name, p in module.named_parameters()}
    what = type(module).__name__
    for i, (a, dx) in enumerate(zip(inputs, dxs)):
        if a.dtype.kind != "f":
            assert dx is None, f"{what}: integer input {i} got a gradient"
            continue
        assert dx.shape == a.shape, (what, i, dx.shape, a.shape)
        idx = _subset(a.size, rng, max_coords)
        num = _numeric(loss, a, idx)
        np.testing.assert_allclose(dx.reshape(-1)[idx], num, rtol=tol, atol=tol, err_msg=f"{what}: dL/dinput{i}")
    for name, p in module.named_parameters():
        idx = _subset(p.data.size, rng, max_coords)
        num = _numeric(loss, p.data, idx)
        np.testing.assert_allclose(grads[name].reshape(-1)[idx], num, rtol=tol, atol=tol,
                                   err_msg=f"{what}: dL/d{name}")
