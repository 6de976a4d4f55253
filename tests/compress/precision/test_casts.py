"""fp16/bf16 storage, dynamic loss scaling, master weights, bit-width selection."""

import itertools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.precision.casts import (DynamicLossScaler, MasterWeights, cast_weights, select_bitwidths,
                                        weight_sensitivity)
from refcomp.errors import OverflowRiskError, ValidationError

seeds = st.integers(0, 2**32 - 1)


def test_float16_rounds_half_to_even_and_overflows_at_65520():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-10)
    x = np.array([one + ulp / 2, one + 3 * ulp / 2, 65519.0, 2.0**-25, 2.0**-24 * 0.75], dtype=np.float32)
    r = cast_weights(x, "float16")
    # ties to even: 1 + ulp/2 -> 1, 1 + 3ulp/2 -> 1 + 2ulp; 65519 -> 65504; 2^-25 (half the smallest subnormal) -> 0
    np.testing.assert_array_equal(r.array.astype(np.float64), [1.0, 1 + 2 * 2.0**-10, 65504.0, 0.0, 2.0**-24])
    assert r.array.dtype == np.float16 and r.nbytes_before == 20 and r.nbytes_after == 10
    assert r.n_flushed_to_zero == 1 and r.n_saturated == 0
    with pytest.raises(OverflowRiskError, match="65504"):
        cast_weights(np.array([1.0, 65520.0], np.float32))
    sat = cast_weights(np.array([-1e6, 65520.0, 3.0], np.float32), on_overflow="saturate")
    np.testing.assert_array_equal(sat.array.astype(np.float64), [-65504.0, 65504.0, 3.0])
    assert sat.n_saturated == 2


def test_bfloat16_ties_to_even_and_range():
    x = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, 3.0e38], dtype=np.float32)
    r = cast_weights(x, "bfloat16")
    assert r.array.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(r.array.astype(np.float64)[:2], [1.0, 1 + 2 * 2.0**-7])
    assert np.isfinite(r.array.astype(np.float64)[2])  # bf16 keeps float32's exponent range
    with pytest.raises(OverflowRiskError):
        cast_weights(np.array([np.finfo(np.float32).max], np.float32), "bfloat16")


@settings(max_examples=40)
@given(seeds, st.sampled_from([("float16", 2.0**-11), ("bfloat16", 2.0**-8)]))
def test_cast_relative_error_is_half_an_ulp_in_the_normal_range(seed, case):
    dtype, unit_roundoff = case
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(200) * np.exp(rng.uniform(-5, 5, 200))).astype(np.float32)
    r = cast_weights(w, dtype)
    target = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    normal = np.abs(w) >= ml_dtypes.finfo(target).smallest_normal
    back = r.array.astype(np.float64)
    rel = np.abs(back - w) / np.abs(w)
    assert np.all(rel[normal] <= unit_roundoff)
    assert r.max_rel_error == pytest.approx(np.max(rel[(w != 0) & (back != 0)]))
    ref = w.astype(np.float16) if dtype == "float16" else w.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(r.array, ref)  # RNE, the NumPy / ml_dtypes cast itself


def test_float64_beyond_float32_range_is_an_overflow_not_a_nan():
    with pytest.raises(OverflowRiskError, match="1e"):
        cast_weights(np.array([1e39, 2.0]), "bfloat16")
    r = cast_weights(np.array([-1e39, 2.0]), "bfloat16", on_overflow="saturate")
    assert r.n_saturated == 1 and r.array.astype(np.float64)[0] == -ml_dtypes.finfo(ml_dtypes.bfloat16).max


def test_cast_rejects_non_finite_and_unknown_dtypes():
    with pytest.raises(ValidationError, match="finite"):
        cast_weights(np.array([np.nan], np.float32))
    with pytest.raises(ValidationError, match="dtype"):
        cast_weights(np.ones(2), "float8")
    with pytest.raises(ValidationError, match="on_overflow"):
        cast_weights(np.ones(2), on_overflow="wrap")


@settings(max_examples=60)
@given(st.lists(st.sampled_from(["ok", "inf", "nan", "-inf"]), min_size=1, max_size=60), st.integers(1, 5))
def test_loss_scaler_never_applies_a_non_finite_update(events, interval):
    scaler = DynamicLossScaler(init_scale=2.0**10, growth_interval=interval, min_scale=1.0, max_scale=2.0**12)
    w = np.zeros(3)
    expected_scale, clean = 2.0**10, 0
    for ev in events:
        g = np.ones(3)
        if ev != "ok":
            g[1] = {"inf": np.inf, "nan": np.nan, "-inf": -np.inf}[ev]
        scale_used = scaler.scale
        if scaler.step({"w": g}):
            update = scaler.unscale({"w": g})["w"]
            assert np.all(np.isfinite(update))
            np.testing.assert_array_equal(update, np.float32(1.0 / scale_used))
            w -= update
        # the rule, written independently
        if ev == "ok":
            clean += 1
            if clean == interval:
                expected_scale, clean = min(expected_scale * 2, 2.0**12), 0
        else:
            expected_scale, clean = max(expected_scale / 2, 1.0), 0
        assert scaler.scale == expected_scale
    assert np.all(np.isfinite(w))
    assert scaler.skipped_steps == sum(ev != "ok" for ev in events)


def test_loss_scaler_defaults_follow_the_paper():
    scaler = DynamicLossScaler()
    assert scaler.scale == 2.0**16
    assert not scaler.step([np.array([np.inf])]) and scaler.scale == 2.0**15
    for _ in range(1999):
        assert scaler.step(np.ones(2))
    assert scaler.scale == 2.0**15
    assert scaler.step(np.ones(2)) and scaler.scale == 2.0**16  # doubled after N = 2000 clean steps
    with pytest.raises(ValidationError, match="growth_factor"):
        DynamicLossScaler(growth_factor=1.0)
    with pytest.raises(ValidationError, match="init_scale"):
        DynamicLossScaler(init_scale=0.5)


def test_master_weights_keep_updates_that_float16_loses():
    w0 = {"w": np.ones(4, np.float32)}
    mw = MasterWeights(w0, "float16")
    pure_half = np.ones(4, np.float16)
    g = np.full(4, 1e-4, np.float32)  # lr·g = 1e-4 < half an ulp of 1.0 in float16 (2^-11 ≈ 4.9e-4)
    for _ in range(100):
        mw.sgd_step({"w": g * 1024}, lr=1.0, loss_scale=1024.0)
        pure_half = (pure_half - np.float16(1e-4)).astype(np.float16)
    np.testing.assert_array_equal(pure_half, 1.0)  # every update rounded away
    np.testing.assert_allclose(mw.master["w"], 0.99, rtol=1e-5)
    copy = mw.model_copy()["w"]
    assert copy.dtype == np.float16 and abs(float(copy[0]) - 0.99) < 2.0**-10
    with pytest.raises(ValidationError, match="grads"):
        mw.sgd_step({"v": g}, lr=1.0)


def _brute_force(sens, sizes, budget):
    layers = list(sens)
    best = None
    for combo in itertools.product(*(sorted(sens[k]) for k in layers)):
        cost = sum(b * sizes[k] for k, b in zip(layers, combo))
        err = sum(sens[k][b] for k, b in zip(layers, combo))
        if cost <= budget and (best is None or err < best - 1e-12):
            best = err
    return best


@settings(max_examples=60)
@given(st.integers(1, 5), seeds, st.floats(0.0, 1.0))
def test_exact_bit_selection_is_optimal_and_greedy_is_feasible(n_layers, seed, budget_frac):
    rng = np.random.default_rng(seed)
    sizes = {f"l{i}": int(rng.integers(1, 200)) for i in range(n_layers)}
    sens = {}
    for k in sizes:
        bits = sorted(rng.choice([2, 3, 4, 6, 8], size=int(rng.integers(1, 5)), replace=False).tolist())
        errs = np.sort(rng.uniform(0, 1, len(bits)))[::-1]  # more bits, less error
        sens[k] = dict(zip(bits, errs.tolist()))
    lo = sum(min(s) * sizes[k] for k, s in sens.items())
    hi = sum(max(s) * sizes[k] for k, s in sens.items())
    budget = int(lo + budget_frac * (hi - lo))
    exact = select_bitwidths(sens, sizes, budget)
    greedy = select_bitwidths(sens, sizes, budget, method="greedy")
    for alloc in (exact, greedy):
        assert alloc.total_bits == sum(alloc.bits[k] * sizes[k] for k in sizes) <= budget
        assert alloc.total_error == pytest.approx(sum(sens[k][alloc.bits[k]] for k in sizes))
    assert exact.total_error == pytest.approx(_brute_force(sens, sizes, budget), abs=1e-9)
    assert exact.total_error <= greedy.total_error + 1e-12


def test_bit_selection_errors_and_weight_sensitivity():
    with pytest.raises(ValidationError, match="budget_bits"):
        select_bitwidths({"a": {4: 0.1, 8: 0.0}}, {"a": 10}, 39)
    with pytest.raises(ValidationError, match="sizes"):
        select_bitwidths({"a": {4: 0.1}}, {"b": 10}, 100)
    rng = np.random.default_rng(0)
    table = weight_sensitivity({"fc1": rng.standard_normal((20, 30)), "conv": rng.standard_normal((4, 2, 3, 3))})
    for row in table.values():
        assert row[2] > row[4] > row[8] > 0
    alloc = select_bitwidths(table, {"fc1": 600, "conv": 72}, 600 * 4 + 72 * 8)
    assert alloc.bits == {"fc1": 4, "conv": 8}


def _fp16_grad(w16, x16, y16, loss_weight, loss_scale):
    """∂(S·c·L)/∂w of L = mean((x w − y)²)/2, the upstream gradient and the product rounded to float16."""
    err = (x16 @ w16 - y16).astype(np.float16)
    with np.errstate(over="ignore"):  # overflow to inf is what the scaler must catch
        upstream = (err.astype(np.float64) * (loss_scale * loss_weight / len(y16))).astype(np.float16)
        return (x16.T @ upstream).astype(np.float16)


def test_loss_scaling_rescues_fp16_gradients_and_training_matches_fp32():
    """The point of §3.2 of Micikevicius et al.: unscaled fp16 gradients underflow to 0."""
    rng = np.random.default_rng(0)
    n, c = 256, 2.0**-20  # a loss weighted by c (like a small auxiliary loss): per-sample gradients ~4e-9
    x = rng.standard_normal((n, 4)).astype(np.float32)
    w_true = np.array([1.0, -2.0, 0.5, 0.25], np.float32)
    x16, y16 = x.astype(np.float16), (x @ w_true).astype(np.float16)

    g_plain = _fp16_grad(np.zeros(4, np.float16), x16, y16, c, 1.0)
    assert np.all(g_plain == 0)  # below half of fp16's smallest subnormal (3e-8): no learning at all

    # S starts far too high (2^40): the first steps overflow, are skipped, and S backs off
    scaler = DynamicLossScaler(init_scale=2.0**40, max_scale=2.0**40, growth_interval=20)
    mw = MasterWeights({"w": np.zeros(4, np.float32)}, "float16")
    for _ in range(200):
        g = _fp16_grad(mw.model_copy()["w"], x16, y16, c, scaler.scale)
        if scaler.step({"w": g}):
            mw.sgd_step({"w": g.astype(np.float32)}, lr=0.5 / c, loss_scale=scaler.last_scale)
    assert scaler.skipped_steps >= 3  # (S grows back once the residual, and so the gradient, is small)
    # the float32 least-squares solution, up to fp16 rounding of x, y and the model copy of w
    w_ls = np.linalg.lstsq(x16.astype(np.float64), y16.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(mw.master["w"], w_ls, rtol=5e-3, atol=5e-3)
