"""TTLinear: a fully connected layer whose weight is a TT-matrix, run core by core (TT-layer).

Novikov, Podoprikhin, Osokin, Vetrov 2015, "Tensorizing Neural Networks",
NIPS, §4-5. With in_features N = Π n_k, out_features M = Π m_k and cores
G_k (r_{k−1}, m_k, n_k, r_k), r_0 = r_d = 1, the weight is never formed:

    W[(i_1…i_d), (j_1…j_d)] = G_1[:, i_1, j_1, :] ⋯ G_d[:, i_d, j_d, :]          (TT.3)
    y = x Wᵀ + b

The input x (N_b, N) is viewed as T_0 (N_b, r_0 = 1, n_1, n_2⋯n_d) and the cores
are contracted one at a time (paper eq. 5 evaluated left to right):

    T_k[a, m, s, b] = Σ_{r, n} T_{k−1}[a, r, n, b] · G_k[r, m, n, s]               (TT.4)

then T_k (A, m_k, r_k, n_{k+1}⋯n_d) is read as (A·m_k, r_k, n_{k+1}, n_{k+2}⋯n_d)
for the next core; after the last one the rows are (sample, i_1, …, i_d), i.e.
y's row-major output index. Backward (dT_k = dL/dT_k):

    dL/dG_k = Σ_{a, b} T_{k−1}[a, r, n, b] · dT_k[a, m, s, b]
    dT_{k−1}[a, r, n, b] = Σ_{m, s} dT_k[a, m, s, b] · G_k[r, m, n, s]             (TT.5)

Cost per sample Σ_k r_{k−1} m_1⋯m_k n_k⋯n_d r_k multiply-adds; storage
Σ_k r_{k−1} m_k n_k r_k. refcomp.compress.lowrank.tensor.tt_matrix makes cores
from a trained weight (TT-SVD).
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import float_tensor, integer
from ...errors import ShapeError
from ..init import allocate
from ..module import Module, Parameter, _accumulate, register_layer

__all__ = ["TTLinear"]


@register_layer
class TTLinear(Module):
    """y = x Wᵀ + b with W the TT-matrix of cores ``core0 … core{d−1}`` (Parameters).

    in_modes (n_1…n_d), out_modes (m_1…m_d) : d ≥ 2 positive sizes each.
    ranks : the d − 1 inner TT-ranks (r_1…r_{d−1}).  bias : add a learnable bias.
    The cores start at zero; set them (``cores=``, from tt_matrix) or load them.
    """

    accepts_input_grad = True

    def __init__(self, in_modes, out_modes, ranks, bias: bool = True, *, cores=None, dtype="float32"):
        self.in_modes = [integer(v, "in_modes", minimum=1) for v in in_modes]
        self.out_modes = [integer(v, "out_modes", minimum=1) for v in out_modes]
        d = len(self.in_modes)
        if d < 2 or len(self.out_modes) != d:
            raise ShapeError("out_modes", f"{d} modes like in_modes (at least 2)", f"{len(self.out_modes)}")
        self.ranks = [integer(v, "ranks", minimum=1) for v in ranks]
        if len(self.ranks) != d - 1:
            raise ShapeError("ranks", f"{d - 1} inner ranks", f"{len(self.ranks)}")
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        r = [1, *self.ranks, 1]
        shapes = [(r[k], self.out_modes[k], self.in_modes[k], r[k + 1]) for k in range(d)]
        dtype = np.dtype(dtype)
        if cores is not None and len(cores) != d:
            raise ShapeError("cores", f"{d} cores", f"{len(cores)}")
        for k, shape in enumerate(shapes):
            g = allocate(shape, dtype) if cores is None else np.array(cores[k], dtype=dtype)
            if g.shape != shape:
                raise ShapeError(f"cores[{k}]", f"shape {shape}", f"shape {g.shape}")
            setattr(self, f"core{k}", Parameter(g))
        self.bias = Parameter(allocate(self.out_features, dtype)) if bias else None
        self._cache = None

    def cores(self) -> list[Parameter]:
        return [getattr(self, f"core{k}") for k in range(len(self.in_modes))]

    def config(self) -> dict:
        return {"in_modes": list(self.in_modes), "out_modes": list(self.out_modes), "ranks": list(self.ranks),
                "bias": self.bias is not None, "dtype": str(self.core0.dtype)}

    def forward(self, x):
        x = float_tensor(x, "x", 2)
        if x.shape[1] != self.in_features:
            raise ShapeError("x", f"(N, {self.in_features})", f"shape {x.shape}")
        t = x.reshape(x.shape[0], 1, self.in_modes[0], -1)
        inputs = []
        for k, g in enumerate(self.cores()):
            inputs.append(t)
            t = np.einsum("arnb,rmns->amsb", t, g.data, optimize=True)                  # (TT.4)
            if k + 1 < len(self.in_modes):
                t = t.reshape(t.shape[0] * t.shape[1], t.shape[2], self.in_modes[k + 1], -1)
        y = t.reshape(x.shape[0], self.out_features)
        if self.bias is not None:
            y = y + self.bias.data
        self._cache = inputs
        return y

    def backward(self, dy, *, input_grad: bool = True):
        self._require_forward(self._cache)
        inputs = self._cache
        n = inputs[0].shape[0]
        if dy.shape != (n, self.out_features):
            raise ShapeError("dy", f"shape {(n, self.out_features)}", dy.shape)
        if self.bias is not None:
            _accumulate(self.bias, dy.sum(axis=0))
        cores = self.cores()
        d = len(cores)
        grad = dy
        for k in range(d - 1, -1, -1):
            t, g = inputs[k], cores[k]
            a, _, _, b = t.shape
            dt = grad.reshape(a, g.data.shape[1], g.data.shape[3], b)                      # dT_k
            _accumulate(g, np.einsum("arnb,amsb->rmns", t, dt, optimize=True))            # (TT.5)
            if k == 0 and not input_grad:
                return None
            grad = np.einsum("amsb,rmns->arnb", dt, g.data, optimize=True)
        return grad.reshape(n, self.in_features)

    def to_dense(self) -> np.ndarray:
        """W (out_features, in_features) by (TT.3), for checks and reports."""
        d = len(self.in_modes)
        full = np.ones((1, 1))
        for g in self.cores():       # rows (i_1, j_1, …, i_k, j_k) so far, columns r_k
            full = (full @ g.data.reshape(g.data.shape[0], -1)).reshape(-1, g.data.shape[3])
        full = full.reshape([v for k in range(d) for v in (self.out_modes[k], self.in_modes[k])])
        order = list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2))
        return full.transpose(order).reshape(self.out_features, self.in_features)

    def num_core_parameters(self) -> int:
        return int(sum(g.data.size for g in self.cores()))

