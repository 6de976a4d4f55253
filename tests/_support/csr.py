"""Sparse test matrices and a valid CSRMatrix to perturb (formats, ops and kernel tests)."""

import numpy as np

from refcomp.formats import CSRMatrix


def sparse_dense(rng, shape, density, dtype=np.float32):
    W = rng.standard_normal(shape).astype(dtype)
    W[rng.random(shape) >= density] = 0
    return W


GOOD = dict(indptr=[0, 2, 2, 3], indices=[0, 3, 1], data=np.array([1.0, 2.0, 3.0], np.float32), shape=(3, 4))


def make(**kw):
    args = dict(GOOD)
    args.update(kw)
    return CSRMatrix(args["indptr"], args["indices"], args["data"], args["shape"])
