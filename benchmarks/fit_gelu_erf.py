"""Fit the coefficients of the float32 erf inside the GELU kernels (csrc/gelu.c, kernels/numba/gelu.py).

    PYTHONPATH=. .venv/bin/python benchmarks/fit_gelu_erf.py

prints the three coefficient tables that csrc/gelu.c and kernels/numba/gelu.py
hold, and the error of the float32 evaluation on a dense grid. The
approximation (z = |x/√2|, clamped to ZMAX):

    z < Z0:   erf(z) = z + z·R(z²)                    R: degree 5, minimax relative error
    z ≥ Z0:   erf(z) = 1 − exp(−z²)·G(a·z + b)        G: degree 8 in t ∈ [−1, 1], minimax absolute
                                                      error of erfc (G ≈ erfcx = e^{z²}·erfc(z))
    exp(v) = 2^k·(1 + r + r²·E(r)), k = rint(v·log2 e), r = v − k·ln2 (Cody–Waite, two constants),
              E: degree 4, minimax relative error on |r| ≤ ln2/2

Z0 = 0.9 and ZMAX = 3.9375 (erfc(ZMAX) < 2^-25, so 1 − q rounds to exactly
1.0 there and beyond). Minimax by Lawson's algorithm (iteratively reweighted
least squares) on 20,000 points, then rounded to float32. The evaluation
below uses only float32 multiplications and additions in the kernels' order
(NumPy float32 arithmetic rounds each one exactly as the C scalar path and
the Numba twin do), so its error is theirs; the AVX2 path fuses the Horner
steps, and benchmarks/check_gelu_exhaustive.py checks the resulting GELU on
every float32 input. The references are scipy.special.erf / erfcx.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfcx

f32 = np.float32
Z0, ZMAX = 0.9, 3.9375
DEG_R, DEG_G, DEG_E = 5, 8, 4


def lawson(A, f, w, iters=400):
    """Coefficients c minimising max |w·(A c − f)| (Lawson's IRLS), and that maximum."""
    u = np.full(len(f), 1.0 / len(f))
    for _ in range(iters):
        sw = np.sqrt(u)
        c, *_ = np.linalg.lstsq(A * (sw * w)[:, None], f * sw * w, rcond=None)
        r = np.abs(w * (A @ c - f))
        u = u * r
        u /= u.sum()
    return c, r.max()


def horner(c, t):
    p = np.full_like(t, c[-1])
    for ci in c[-2::-1]:
        p = p * t + ci
    return p


def fit():
    z = np.linspace(1e-5, Z0, 20000)
    cr, er = lawson(np.vander(z * z, DEG_R + 1, increasing=True), erf(z) / z - 1, z / erf(z))
    a, b = 2 / (ZMAX - Z0), -(ZMAX + Z0) / (ZMAX - Z0)
    z = np.linspace(Z0, ZMAX, 20000)
    cg, eg = lawson(np.vander(z * a + b, DEG_G + 1, increasing=True), erfcx(z), np.exp(-z * z))
    r = np.linspace(-0.3466, 0.3466, 20000)
    ce, ee = lawson(np.vander(r, DEG_E + 1, increasing=True), (np.expm1(r) - r) / (r * r), r * r / np.exp(r))
    print(f"fit (float64): R rel {er:.3g}, G abs (erfc) {eg:.3g}, E rel (exp) {ee:.3g}")
    return cr.astype(f32), cg.astype(f32), ce.astype(f32), f32(a), f32(b)


LOG2E, LN2HI, LN2LO, MAGIC = f32(1.44269504), f32(0.693145751953125), f32(1.42860677e-06), f32(12582912.0)


def erf32(z, cr, cg, ce, a, b):
    """The kernels' erf, float32 operation by operation (csrc/gelu.c: erf_f32)."""
    az = np.minimum(np.abs(z), f32(ZMAX))
    w = az * az
    small = az + az * horner(cr, w)
    v = -w
    kf = (v * LOG2E + MAGIC) - MAGIC
    r = (v - kf * LN2HI) - kf * LN2LO
    ex = ((r * r) * horner(ce, r) + r + f32(1)) * np.exp2(kf).astype(f32)
    big = f32(1) - ex * horner(cg, az * a + b)
    return np.copysign(np.where(az < f32(Z0), small, big), z)


def main():
    cr, cg, ce, a, b = fit()
    for name, c in (("ERF_R", cr), ("ERF_G", cg), ("EXP_E", ce)):
        print(f"static const float {name}[{len(c)}] = {{" + ", ".join(f"{v:.9g}f" for v in c) + "};")
    print(f"#define ERF_A {a:.9g}f\n#define ERF_B {b:.9g}f")
    z = np.concatenate([np.linspace(0, 6, 2_000_001, dtype=f32), np.geomspace(1e-38, 1e-3, 10_000).astype(f32)])
    got, want = erf32(z, cr, cg, ce, a, b), erf(z.astype(np.float64))
    ulps = np.abs(got - want) / np.spacing(np.abs(want).astype(f32))
    print(f"float32 evaluation: max {ulps.max():.3f} ulp of the float32 erf (at z = {z[ulps.argmax()]}), "
          f"{np.mean(got == want.astype(f32)):.4f} of the grid correctly rounded")


if __name__ == "__main__":
    main()
