"""Pruning schedules: the cubic formula of Zhu & Gupta 2017, iterative and one-shot."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import Cubic, Iterative, OneShot
from refcomp.errors import ValidationError


def test_cubic_matches_formula_at_pruning_steps():
    c = Cubic(0.9, initial_sparsity=0.1, begin_step=100, num_steps=10, frequency=50)
    for k in range(11):
        t = 100 + 50 * k
        expected = 0.9 + (0.1 - 0.9) * (1 - (t - 100) / (10 * 50)) ** 3
        assert c.sparsity(t) == pytest.approx(expected, abs=1e-15)
        assert c.is_pruning_step(t)
    assert c.sparsity(100) == pytest.approx(0.1) and c.sparsity(600) == pytest.approx(0.9)
    assert c.pruning_steps() == list(range(100, 601, 50))


def test_cubic_before_between_and_after():
    c = Cubic(0.8, begin_step=10, num_steps=4, frequency=5)
    assert c.sparsity(0) == 0.0 and c.sparsity(9) == 0.0
    assert c.sparsity(12) == c.sparsity(10)  # holds between pruning steps
    assert not c.is_pruning_step(12) and not c.is_pruning_step(35)
    assert c.sparsity(10_000) == pytest.approx(0.8)


@settings(max_examples=50)
@given(st.floats(0, 0.99), st.floats(0, 1), st.integers(0, 50), st.integers(1, 20), st.integers(1, 10))
def test_cubic_is_monotone_and_decelerating(s_f, frac, t0, n, dt):
    s_i = s_f * frac
    c = Cubic(s_f, initial_sparsity=s_i, begin_step=t0, num_steps=n, frequency=dt)
    values = [c.sparsity(t) for t in c.pruning_steps()]
    assert all(b >= a - 1e-15 for a, b in zip(values, values[1:]))
    increments = np.diff(values)
    assert all(b <= a + 1e-12 for a, b in zip(increments, increments[1:]))  # fast first, then slower
    assert values[0] == pytest.approx(s_i) and values[-1] == pytest.approx(s_f)


def test_iterative_and_one_shot():
    it = Iterative([(0, 0.5), (100, 0.7), (200, 0.9)])
    assert [it.sparsity(t) for t in (0, 99, 100, 150, 200, 10**6)] == [0.5, 0.5, 0.7, 0.7, 0.9, 0.9]
    assert it.pruning_steps() == [0, 100, 200] and it.is_pruning_step(100) and not it.is_pruning_step(101)
    assert Iterative([(5, 0.3)]).sparsity(4) == 0.0
    one = OneShot(0.9, step=3)
    assert (one.sparsity(2), one.sparsity(3)) == (0.0, 0.9) and one.pruning_steps() == [3]


@pytest.mark.parametrize("kwargs,argument", [
    (dict(final_sparsity=1.0, num_steps=3), "final_sparsity"),
    (dict(final_sparsity=0.5, initial_sparsity=0.6, num_steps=3), "initial_sparsity"),
    (dict(final_sparsity=0.5, num_steps=0), "num_steps"),
    (dict(final_sparsity=0.5, num_steps=3, frequency=0), "frequency"),
    (dict(final_sparsity=0.5, num_steps=3, begin_step=-1), "begin_step"),
    (dict(final_sparsity=-0.1, num_steps=3), "final_sparsity"),
])
def test_cubic_validation(kwargs, argument):
    with pytest.raises(ValidationError, match=argument):
        Cubic(**kwargs)


@pytest.mark.parametrize("milestones,argument", [
    ([], "milestones"),
    ([(0, 0.5), (0, 0.6)], r"milestones\[1\]\[0\]"),
    ([(0, 0.5), (10, 0.4)], r"milestones\[1\]\[1\]"),
    ([(0, 1.2)], r"milestones\[0\]\[1\]"),
    ([(0.5, 0.2)], r"milestones\[0\]\[0\]"),
    ([0.5], r"milestones\[0\]"),
])
def test_iterative_validation(milestones, argument):
    with pytest.raises(ValidationError, match=argument):
        Iterative(milestones)


def test_step_validation():
    with pytest.raises(ValidationError, match="step"):
        OneShot(0.5).sparsity(-1)


# the defaults: pruning starts at step 0, and Cubic prunes at every step
def test_defaults_start_at_step_0_every_step():
    one = OneShot(0.9)
    assert one.pruning_steps() == [0] and one.is_pruning_step(0) and one.sparsity(0) == 0.9
    c = Cubic(0.5, num_steps=2)
    assert c.pruning_steps() == [0, 1, 2] and [c.is_pruning_step(t) for t in range(4)] == [True, True, True, False]
    assert [c.sparsity(t) for t in range(4)] == pytest.approx([0.0, 0.5 - 0.5 / 8, 0.5, 0.5])


# a step is an int >= 0, wherever it is given
@pytest.mark.parametrize("make, argument", [
    (lambda: OneShot(0.5, step=-1), "step"),
    (lambda: Iterative([(-1, 0.5)]), "milestones[0][0]"),
    (lambda: Iterative([(0, 0.1), (-3, 0.5)]), "milestones[1][0]"),
])
def test_negative_steps_are_refused(make, argument):
    with pytest.raises(ValidationError) as e:
        make()
    assert e.value.argument == argument


# Iterative's milestones: a sequence (not a set or an iterator, whose order is lost or spent),
# steps strictly increasing, sparsities non-decreasing (a repeated sparsity is a round of fine-tuning)
@pytest.mark.parametrize("milestones", [{(0, 0.5)}, iter([(0, 0.5)]), {0: 0.5}])
def test_iterative_needs_a_sequence(milestones):
    with pytest.raises(ValidationError) as e:
        Iterative(milestones)
    assert e.value.argument == "milestones"


def test_iterative_step_order_and_repeated_sparsity():
    with pytest.raises(ValidationError) as e:
        Iterative([(5, 0.5), (3, 0.6)])  # the steps go back, though 3 > the sparsity 0.5
    assert e.value.argument == "milestones[1][0]"
    it = Iterative([(0, 0.5), (10, 0.5), (20, 0.7)])
    assert [it.sparsity(t) for t in (0, 10, 20)] == [0.5, 0.5, 0.7] and it.pruning_steps() == [0, 10, 20]


# Cubic: is_pruning_step(t) is exactly "t is one of pruning_steps()" (t0 + kΔt, k = 0..n)
@settings(max_examples=60)
@given(st.integers(0, 30), st.integers(1, 6), st.integers(1, 7))
def test_cubic_is_pruning_step_agrees_with_pruning_steps(t0, n, dt):
    c = Cubic(0.5, begin_step=t0, num_steps=n, frequency=dt)
    steps = set(c.pruning_steps())
    assert steps == {t0 + k * dt for k in range(n + 1)}
    assert [c.is_pruning_step(t) for t in range(t0 + n * dt + 2 * dt + 1)] == \
        [t in steps for t in range(t0 + n * dt + 2 * dt + 1)]
