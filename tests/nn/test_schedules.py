"""Learning-rate schedules against their formulas."""

import math

import pytest

from refcomp.errors import ValidationError
from refcomp.nn import schedules


def test_schedules():
    assert schedules.StepLR(0.1, 3, 0.5)(7) == pytest.approx(0.1 * 0.25)
    assert schedules.ExponentialLR(1.0, 0.9)(3) == pytest.approx(0.729)
    cos = schedules.CosineLR(0.05, 10, eta_min=0.01)
    assert cos(0) == 0.05 and cos(10) == pytest.approx(0.01) and cos(20) == pytest.approx(0.01)
    assert cos(5) == pytest.approx(0.01 + 0.04 * (1 + math.cos(math.pi / 2)) / 2)
    w = schedules.LinearWarmup(schedules.Constant(1.0), 4, start_factor=0.2)
    assert [w(t) for t in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    with pytest.raises(ValidationError, match="t"):
        cos(-1)
