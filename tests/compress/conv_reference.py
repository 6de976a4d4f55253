"""A direct 2-D convolution for checking factorized conv kernels (stride 1, no padding)."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv2d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y[n, o, i, j] = Σ_{c, k, l} x[n, c, i + k, j + l] · w[o, c, k, l]  (cross-correlation, 'valid')."""
    kh, kw = w.shape[2:]
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))  # (n, c, oh, ow, kh, kw)
    return np.einsum("ncijkl,ockl->noij", windows, w)
