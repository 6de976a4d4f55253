"""MSE observer (refcomp.quant.observers.mse): eq. (13)'s argmin, clipping only when it pays."""

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.quant import MSEObserver

from .cases import check_ignores_outliers, gaussian_with_outliers


def test_ignores_outliers_on_gaussian_data():
    # int8 steps are small enough that MSE keeps 10 outliers (their clipping error would dominate);
    # with int4's 16 levels it clips them.
    check_ignores_outliers(MSEObserver("int4", symmetric=True, num_candidates=40), "int4")


def test_mse_keeps_few_outliers_at_int8():
    # 10 values at ±40 clipped to t ~ 10 would cost ~10·30² = 9000; int8 rounding over
    # [-40, 40] costs ~20000·(40/127.5)²/12 ~ 160: the MSE optimum (almost) does not clip.
    x = gaussian_with_outliers()
    assert MSEObserver("int8", symmetric=True).observe(x).range()[1] >= 0.95 * 40.0


def test_mse_picks_the_minimum_of_its_error_curve():
    x = gaussian_with_outliers(5000)
    obs = MSEObserver("int4", symmetric=True, num_candidates=50).observe(x)
    alphas, errors = obs.candidate_errors()
    amax = float(np.abs(x).max())
    assert obs.range()[1] == pytest.approx(alphas[np.argmin(errors)] * amax, rel=1e-12)
    assert errors[np.argmin(errors)] < errors[-1]


def test_bad_num_candidates():
    with pytest.raises(ValidationError) as info:
        MSEObserver(num_candidates=0)
    assert info.value.argument == "num_candidates"
