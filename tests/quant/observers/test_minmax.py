"""Min-max observers (refcomp.quant.observers.minmax): the running extremes cover every value (eq. 10),
the moving average follows eq. (11)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import ValidationError
from refcomp.quant import MinMaxObserver, MovingAverageMinMaxObserver, dequantize, quantize

from .cases import batches


@settings(max_examples=25)
@given(xs=batches, symmetric=st.booleans(), dtype=st.sampled_from(["int8", "uint8", "int4", "float8_e4m3fn"]))
def test_minmax_covers_every_observed_value(xs, symmetric, dtype):
    obs = MinMaxObserver(dtype, symmetric=symmetric)
    for x in xs:
        obs.observe(x)
    qp = obs.qparams()
    for x in xs:
        if qp.dtype.is_float:
            assert np.all(np.abs(x) <= qp.representable_range()[1] * (1 + 1e-6))
            continue
        # covered: no value is clipped beyond what rounding does
        err = np.abs(dequantize(quantize(x, qp), qp).astype(np.float64) - x)
        assert np.all(err <= 0.5 * float(qp.scale) * (1 + 1e-5) + 1e-6 * np.abs(x))


def test_moving_average_formula():
    c = 0.25
    obs = MovingAverageMinMaxObserver("int8", averaging_constant=c)
    batches = [np.array([-1.0, 2.0]), np.array([-3.0, 1.0]), np.array([0.5, 4.0])]
    m_min, m_max = -1.0, 2.0
    for x in batches[1:]:
        m_min += c * (x.min() - m_min)
        m_max += c * (x.max() - m_max)
    for x in batches:
        obs.observe(x)
    lo, hi = obs.range()
    assert lo == pytest.approx(m_min, abs=0) and hi == pytest.approx(m_max, abs=0)


@pytest.mark.parametrize("c", [0.0, 1.5])
def test_bad_averaging_constant(c):
    with pytest.raises(ValidationError) as info:
        MovingAverageMinMaxObserver(averaging_constant=c)
    assert info.value.argument == "averaging_constant"


# ---- the moving average's options: c in (0, 1], default 0.01, int8 by default
def test_moving_average_defaults_c_001_and_int8():
    obs = MovingAverageMinMaxObserver()
    assert obs.averaging_constant == 0.01
    for x in (np.array([-1.0, 2.0]), np.array([-3.0, 6.0])):
        obs.observe(x)
    assert obs.range() == (-1.0 + 0.01 * (-3.0 + 1.0), 2.0 + 0.01 * (6.0 - 2.0))
    assert obs.qparams().dtype.name == "int8"


def test_moving_average_c_1_keeps_only_the_last_batch():
    obs = MovingAverageMinMaxObserver(averaging_constant=1)
    for x in (np.array([-5.0, 9.0]), np.array([-1.0, 0.5]), np.array([-2.0, 3.0])):
        obs.observe(x)
    assert obs.range() == (-2.0, 3.0)


@pytest.mark.parametrize("c", [True, "0.5", None])
def test_averaging_constant_must_be_a_number(c):
    with pytest.raises(ValidationError) as info:
        MovingAverageMinMaxObserver(averaging_constant=c)
    assert info.value.argument == "averaging_constant"


def test_moving_average_reset_forgets_the_averages():
    obs = MovingAverageMinMaxObserver(averaging_constant=0.5).observe(np.array([-8.0, 8.0]))
    obs.reset()
    assert obs.avg_min is None and obs.avg_max is None
    assert obs.observe(np.array([-1.0, 2.0])).range() == (-1.0, 2.0)
