"""How close a compressed encoder's sentence embeddings stay to the reference ones.

For embeddings E (n, d) and reference R (n, d), rows L2-normalised or not:

    cos_i  = ⟨E_i, R_i⟩ / (‖E_i‖ ‖R_i‖)                                    (mean and min over i)
    NN@k   = (1/n) Σ_i |N_k(E, i) ∩ N_k(R, i)| / k

where N_k(X, i) is the set of the k rows of X most cosine-similar to row i,
row i itself excluded (ties broken by index). NN@10 is what a semantic
search over these sentences would notice: the share of each sentence's 10
nearest neighbours that stay the same (shared/data/minilm/README.md).
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError

__all__ = ["cosine_rows", "nn_at_k", "score", "format_score"]


def _pair(e, ref):
    e, ref = np.asarray(e, np.float64), np.asarray(ref, np.float64)
    if e.ndim != 2 or e.shape != ref.shape:
        raise ShapeError("embeddings", f"an (n, d) array of the reference's shape {ref.shape}", f"shape {e.shape}")
    return e, ref


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)


def cosine_rows(e, ref) -> np.ndarray:
    """cos_i of the module docstring, float64 (n,)."""
    e, ref = _pair(e, ref)
    return (_unit(e) * _unit(ref)).sum(axis=1)


def _neighbours(x, k):
    u = _unit(x)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def nn_at_k(e, ref, k: int = 10) -> float:
    """NN@k of the module docstring (needs n > k)."""
    e, ref = _pair(e, ref)
    if not 1 <= k < len(e):
        raise ShapeError("embeddings", f"more than k={k} rows", f"{len(e)} rows")
    a, b = _neighbours(e, k), _neighbours(ref, k)
    return float(np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(e))]))


def score(e, ref, k: int = 10) -> dict:
    """{"cos_mean", "cos_min", "nn10"} of ``e`` against ``ref``; NN@k is None for k or fewer rows."""
    cos = cosine_rows(e, ref)
    nn = nn_at_k(e, ref, k) if len(cos) > k else None
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), f"nn{k}": nn}


def format_score(s: dict) -> str:
    """'cosine mean …, min …, NN@10 …' (NN@10 left out when there were too few rows)."""
    nn = "" if s.get("nn10") is None else f", NN@10 {s['nn10']:.3f}"
    return f"cosine mean {s['cos_mean']:.5f}, min {s['cos_min']:.5f}{nn}"
