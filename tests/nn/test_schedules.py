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


# --- each schedule against its closed form over a range of t, boundaries included ------------

def test_closed_forms_over_t():
    for t in range(25):
        assert schedules.StepLR(0.3, 4, 0.5)(t) == pytest.approx(0.3 * 0.5 ** (t // 4), rel=1e-15)
        assert schedules.StepLR(0.3, 4)(t) == pytest.approx(0.3 * 0.1 ** (t // 4), rel=1e-15)  # γ = 0.1
        assert schedules.ExponentialLR(0.3, 0.8)(t) == pytest.approx(0.3 * 0.8 ** t, rel=1e-15)
        cos = 0.02 + (0.3 - 0.02) * (1 + math.cos(math.pi * min(t, 12) / 12)) / 2
        assert schedules.CosineLR(0.3, 12, 0.02)(t) == pytest.approx(cos, rel=1e-15)
        assert schedules.CosineLR(0.3, 12)(t) == pytest.approx(0.3 * (1 + math.cos(math.pi * min(t, 12) / 12)) / 2,
                                                                abs=1e-17)   # η_min = 0
        assert schedules.Constant(0.3)(t) == 0.3
        inner = schedules.ExponentialLR(0.3, 0.9)
        f = 0.25 + 0.75 * t / 5 if t < 5 else 1.0
        assert schedules.LinearWarmup(inner, 5, 0.25)(t) == pytest.approx(0.3 * 0.9 ** t * f, rel=1e-15)
        f0 = t / 5 if t < 5 else 1.0      # start_factor 0 by default
        assert schedules.LinearWarmup(inner, 5)(t) == pytest.approx(0.3 * 0.9 ** t * f0, abs=1e-17)
    assert schedules.CosineLR(0.3, 12, 0.3)(6) == 0.3          # η_min = base is allowed: constant
    assert schedules.LinearWarmup(schedules.Constant(1.0), 1, 1.0)(0) == 1.0


@pytest.mark.parametrize("make,argument", [
    (lambda v: schedules.Constant(v), "base"),
    (lambda v: schedules.StepLR(v, 2), "base"),
    (lambda v: schedules.StepLR(0.1, 2, v), "gamma"),
    (lambda v: schedules.ExponentialLR(v, 0.9), "base"),
    (lambda v: schedules.ExponentialLR(0.1, v), "gamma"),
    (lambda v: schedules.CosineLR(v, 10), "base"),
])
@pytest.mark.parametrize("bad", [0.0, -0.1, math.inf, math.nan])
def test_rates_must_be_finite_and_positive(make, argument, bad):
    with pytest.raises(ValidationError) as info:
        make(bad)
    assert info.value.argument == argument


@pytest.mark.parametrize("make,argument", [
    (lambda: schedules.StepLR(0.1, 0), "step_size"), (lambda: schedules.StepLR(0.1, 2.0), "step_size"),
    (lambda: schedules.StepLR(0.1, True), "step_size"),
    (lambda: schedules.CosineLR(0.1, 0), "total"), (lambda: schedules.CosineLR(0.1, 5.0), "total"),
    (lambda: schedules.CosineLR(0.1, True), "total"),
    (lambda: schedules.CosineLR(0.1, 5, -0.01), "eta_min"), (lambda: schedules.CosineLR(0.1, 5, 0.2), "eta_min"),
    (lambda: schedules.LinearWarmup(0.1, 5), "inner"),
    (lambda: schedules.LinearWarmup(schedules.Constant(0.1), 0), "warmup"),
    (lambda: schedules.LinearWarmup(schedules.Constant(0.1), 2.0), "warmup"),
    (lambda: schedules.LinearWarmup(schedules.Constant(0.1), True), "warmup"),
    (lambda: schedules.LinearWarmup(schedules.Constant(0.1), 5, -0.1), "start_factor"),
    (lambda: schedules.LinearWarmup(schedules.Constant(0.1), 5, 1.1), "start_factor"),
])
def test_bad_settings_are_refused_by_name(make, argument):
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.argument == argument


@pytest.mark.parametrize("sched", [schedules.Constant(0.1), schedules.StepLR(0.1, 2), schedules.ExponentialLR(0.1, 0.9),
                                   schedules.CosineLR(0.1, 5), schedules.LinearWarmup(schedules.Constant(0.1), 3)])
@pytest.mark.parametrize("t", [-1, 1.0, True, "2"])
def test_step_index_must_be_an_int_ge_0(sched, t):
    with pytest.raises(ValidationError) as info:
        sched(t)
    assert info.value.argument == "t"


def test_one_step_periods_are_allowed():
    assert schedules.StepLR(0.1, 1, 0.5)(3) == pytest.approx(0.1 * 0.5 ** 3, rel=1e-15)
    assert schedules.CosineLR(0.1, 1)(0) == 0.1 and schedules.CosineLR(0.1, 1)(1) == pytest.approx(0.0, abs=1e-17)
