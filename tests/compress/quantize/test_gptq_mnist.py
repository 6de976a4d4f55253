"""GPTQ vs RTN and bias correction on real data: a linear classifier on MNIST pixels.

The layer is a ridge-regression classifier y = x Wᵀ + b (784 -> 10) fitted in
closed form on the 8,000-image split; the same images are the calibration set
(Hessian, input mean), accuracy is on the 2,000 held-out images. MNIST's
always-black border pixels are real dead inputs (H_jj = 0). The table in
docs/gptq_and_ptq.md §2 comes from the same computation.
"""

import numpy as np
import pytest

from refcomp.compress.quantize import correct_bias, gptq_quantize, hessian_from_inputs, input_mean, rtn_quantize


@pytest.fixture(scope="module")
def layer(mnist_dir):
    from refcomp.datasets import mnist_fixture

    (x_tr, y_tr), (x_te, y_te) = mnist_fixture(mnist_dir, flatten=True)
    x_tr, x_te = x_tr.astype(np.float64), x_te.astype(np.float64)
    x1 = np.hstack([x_tr, np.ones((len(x_tr), 1))])
    wb = np.linalg.solve(x1.T @ x1 + np.eye(785), x1.T @ np.eye(10)[y_tr]).T
    return dict(w=wb[:, :784], b=wb[:, 784], h=hessian_from_inputs(x_tr), mu=input_mean(x_tr), x_te=x_te, y_te=y_te)


def _acc(layer, w, b=None):
    b = layer["b"] if b is None else b
    return 100 * np.mean((layer["x_te"] @ w.T + b).argmax(1) == layer["y_te"])


def test_float_classifier_and_dead_pixels(layer):
    assert 84.0 <= _acc(layer, layer["w"]) <= 86.0
    assert np.sum(np.diag(layer["h"]) == 0) > 50  # border pixels never lit in these 8,000 images


@pytest.mark.parametrize("bits, group_size, min_gain", [(4, None, 4.0), (3, None, 25.0), (2, 32, 30.0)])
def test_gptq_beats_rtn_on_mnist(layer, bits, group_size, min_gain):
    rtn = _acc(layer, rtn_quantize(layer["w"], bits=bits, group_size=group_size).to_dense())
    gptq = _acc(layer, gptq_quantize(layer["w"], layer["h"], bits=bits, group_size=group_size).to_dense())
    assert gptq >= rtn + min_gain, (rtn, gptq)


def test_gptq_int4_stays_close_to_float_and_bias_correction_helps_rtn(layer):
    w = layer["w"]
    assert _acc(layer, gptq_quantize(w, layer["h"], bits=4).to_dense()) >= _acc(layer, w) - 1.5
    r = rtn_quantize(w, bits=3).to_dense()
    assert _acc(layer, r, correct_bias(w, r, layer["b"], layer["mu"])) >= _acc(layer, r) + 5.0
