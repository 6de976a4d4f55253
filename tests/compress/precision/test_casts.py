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


def test_cast_report_counts_and_errors_by_hand():
    """float64 input: nbytes_before is the input's 8 bytes per value; the errors are measured against the
    float32 weight; a value below half of float16's smallest subnormal 2^-24 is flushed (counted, left out
    of the relative error); the absolute error of 1 + 2^-11 (a tie, to even: 1) is 2^-11."""
    w = np.array([1 + 2.0**-11, 2.0**-26, 0.0, -3.0], np.float64)
    r = cast_weights(w, "float16")
    assert r.nbytes_before == 32 and r.nbytes_after == 8
    np.testing.assert_array_equal(r.array.astype(np.float64), [1.0, 0.0, 0.0, -3.0])
    assert r.n_flushed_to_zero == 1 and r.n_saturated == 0
    assert r.max_abs_error == 2.0**-11 and r.max_rel_error == 2.0**-11 / (1 + 2.0**-11)
    empty = cast_weights(np.zeros(0, np.float32))
    assert empty.max_abs_error == 0.0 and empty.max_rel_error == 0.0 and empty.array.dtype == np.float16
    zeros = cast_weights(np.zeros(3, np.float32), "bfloat16")
    assert zeros.max_rel_error == 0.0 and zeros.n_flushed_to_zero == 0


def test_the_error_reference_is_the_float32_weight():
    """A float64 input is rounded to float32 first (one rounding float32 -> target): the report measures
    against that float32 value, so 1 + 2^-30 (float32: 1.0) casts to 1.0 with no error at all."""
    r = cast_weights(np.array([1 + 2.0**-30, 2.0]), "bfloat16")
    assert r.max_abs_error == 0.0 and r.max_rel_error == 0.0


def test_saturation_keeps_the_sign_and_the_in_range_values():
    """on_overflow="saturate": ±inf after rounding becomes ±max; the others are the plain RNE cast
    (ml_dtypes' own float32 -> 16-bit conversion is the oracle)."""
    w = np.array([7e4, -7e4, 65504.0, -1.5, 1e-3], np.float32)
    r = cast_weights(w, "float16", on_overflow="saturate")
    np.testing.assert_array_equal(r.array, np.array([65504, -65504, 65504, -1.5, w[4]], np.float16))
    assert r.n_saturated == 2 and r.array.dtype == np.float16
    big = np.float32(3.4e38)
    b = cast_weights(np.array([big, -big, 1.0], np.float32), "bfloat16", on_overflow="saturate")
    bmax = ml_dtypes.finfo(ml_dtypes.bfloat16).max
    np.testing.assert_array_equal(b.array.astype(np.float64), [float(bmax), -float(bmax), 1.0])
    assert b.n_saturated == 2
    with pytest.raises(OverflowRiskError, match="2 values"):
        cast_weights(np.array([big, -big, 1.0], np.float32), "bfloat16")


def test_loss_scaler_with_other_factors_and_bounds():
    """The rule written out, with growth ×4 and backoff ×1/4: S ← max(S·backoff, min_scale) on a non-finite
    step, S ← min(S·growth, max_scale) after growth_interval clean steps in a row (an overflow restarts the
    count); last_scale is the scale in force when the step's gradients were made."""
    s = DynamicLossScaler(2.0**8, growth_factor=4.0, backoff_factor=0.25, growth_interval=2, min_scale=2.0**5,
                          max_scale=2.0**11)
    bad, ok = np.array([1.0, np.nan]), np.ones(2)
    assert not s.step(bad) and s.scale == 2.0**6 and s.last_scale == 2.0**8
    assert not s.step(bad) and s.scale == 2.0**5                   # floor: max(2^4, 2^5)
    assert s.step(ok) and s.scale == 2.0**5 and s.clean_steps == 1
    assert not s.step(bad) and s.clean_steps == 0 and s.scale == 2.0**5
    assert s.step(ok) and s.step(ok) and s.scale == 2.0**7 and s.clean_steps == 0
    assert s.step(ok) and s.step(ok) and s.scale == 2.0**9
    assert s.step(ok) and s.step(ok) and s.scale == 2.0**11       # min(2^11, 2^11)
    assert s.step(ok) and s.step(ok) and s.scale == 2.0**11       # capped
    assert s.last_scale == 2.0**11 and s.skipped_steps == 3


@pytest.mark.parametrize("kwargs, name", [({"growth_factor": 0.5}, "growth_factor"),
                                          ({"backoff_factor": 1.0}, "backoff_factor"),
                                          ({"backoff_factor": 0.0}, "backoff_factor"),
                                          ({"growth_interval": 0}, "growth_interval"),
                                          ({"init_scale": 2.0**25}, "init_scale"),
                                          ({"min_scale": 0.0}, "min_scale"),
                                          ({"max_scale": 0.0}, "max_scale"),
                                          ({"init_scale": 0.0}, "init_scale")])
def test_loss_scaler_refuses_bad_settings(kwargs, name):
    with pytest.raises(ValidationError, match=f"^{name}:"):
        DynamicLossScaler(**kwargs)


def test_loss_scaler_accepts_its_bounds():
    """init_scale may equal min_scale or max_scale; growth just above 1 and backoff just below 1 are valid."""
    assert DynamicLossScaler(1.0).scale == 1.0
    assert DynamicLossScaler(2.0**24).scale == 2.0**24
    s = DynamicLossScaler(4.0, growth_factor=1.5, backoff_factor=0.75, growth_interval=1, min_scale=4.0, max_scale=9.0)
    assert s.step(np.ones(1)) and s.scale == 6.0 and s.step(np.ones(1)) and s.scale == 9.0


def test_unscale_and_all_finite_keep_the_container():
    """grads / S in float32 for an array, a list, a tuple and a dict; all_finite looks into every one."""
    s = DynamicLossScaler(8.0)
    g = np.array([8.0, -4.0], np.float64)
    assert s.step([g, g])
    one = s.unscale(g)
    assert one.dtype == np.float32 and one.tolist() == [1.0, -0.5]
    as_list, as_tuple, as_dict = s.unscale([g, 2 * g]), s.unscale((g,)), s.unscale({"a": g})
    assert type(as_list) is list and as_list[1].tolist() == [2.0, -1.0] and as_list[1].dtype == np.float32
    assert type(as_tuple) is tuple and as_tuple[0].tolist() == [1.0, -0.5]
    assert set(as_dict) == {"a"} and as_dict["a"].dtype == np.float32 and as_dict["a"].tolist() == [1.0, -0.5]
    inf = np.array([1.0, np.inf])
    assert DynamicLossScaler.all_finite({"a": g, "b": g}) and not DynamicLossScaler.all_finite({"a": g, "b": inf})
    assert not DynamicLossScaler.all_finite((g, inf)) and not DynamicLossScaler.all_finite([inf])
    assert not DynamicLossScaler.all_finite(inf) and DynamicLossScaler.all_finite(g)
    # last_scale is the scale that made the gradients: after an overflow halves S, the next
    # unscale divides by the new S (the one the next gradients are made with)
    assert not s.step(inf) and s.last_scale == 8.0 and s.scale == 4.0
    assert s.step(g) and s.unscale(g).tolist() == [2.0, -1.0]
    # the division is float32's: the float64 gradient is rounded first, then divided (S = 3 is not a power of 2)
    s3 = DynamicLossScaler(3.0)
    g = np.random.default_rng(0).standard_normal(64)
    assert s3.step(g)
    np.testing.assert_array_equal(s3.unscale(g), g.astype(np.float32) / np.float32(3.0))


def test_master_weights_sgd_step_by_the_formula():
    """master ← master − lr · float32(g) / S in float32, per key; bfloat16 model copies round to nearest even."""
    b0 = np.array([[0.5]], np.float32)
    mw = MasterWeights({"a": np.array([1.0, 2.0]), "b": b0}, "bfloat16")
    assert mw.master["a"].dtype == np.float32
    mw.sgd_step({"a": np.array([4.0, -8.0]), "b": np.array([[2.0]])}, lr=0.5, loss_scale=4.0)
    np.testing.assert_array_equal(mw.master["a"], np.float32([0.5, 3.0]))
    np.testing.assert_array_equal(mw.master["b"], np.float32([[0.25]]))
    assert b0[0, 0] == 0.5                                  # the master is a copy: the caller's array is untouched
    mw.sgd_step({"a": np.array([1.0, 1.0]), "b": np.array([[1.0]])}, lr=0.25)        # loss_scale 1 by default
    np.testing.assert_array_equal(mw.master["a"], np.float32([0.25, 2.75]))
    mw.master["a"][0] = np.float32(1 + 2.0**-8)                                      # a bfloat16 tie: to even, 1
    copy = mw.model_copy()
    assert copy["a"].dtype == ml_dtypes.bfloat16 and float(copy["a"][0]) == 1.0
    with pytest.raises(ValidationError, match=r"grads\['a'\]"):
        mw.sgd_step({"a": np.ones(3), "b": np.ones((1, 1))}, lr=0.1)             # wrong shape
    with pytest.raises(ValidationError, match="params"):
        MasterWeights([np.ones(2)])
    with pytest.raises(ValidationError, match="lr"):
        mw.sgd_step({"a": np.ones(2), "b": np.ones((1, 1))}, lr=0.0)
    with pytest.raises(ValidationError, match="loss_scale"):
        mw.sgd_step({"a": np.ones(2), "b": np.ones((1, 1))}, lr=0.1, loss_scale=0.0)


def test_greedy_narrows_the_cheapest_error_per_bit_first():
    """Eq. 8 by hand: from a = 8, b = 8 (cost 8·10 + 8·10 = 160 > 120), narrowing a to 4 costs
    (0.5 − 0.1) / 40 = 0.01 per bit, b to 4 costs (0.2 − 0.1) / 40 = 0.0025: b goes first (120 <= 120)."""
    sens = {"a": {4: 0.5, 8: 0.1}, "b": {4: 0.2, 8: 0.1}}
    alloc = select_bitwidths(sens, {"a": 10, "b": 10}, 120, method="greedy")
    assert alloc.bits == {"a": 8, "b": 4} and alloc.total_bits == 120 and alloc.total_error == pytest.approx(0.3)
    # a budget that needs both narrowed
    alloc = select_bitwidths(sens, {"a": 10, "b": 10}, 80, method="greedy")
    assert alloc.bits == {"a": 4, "b": 4}
    # a layer that loses nothing by narrowing (ratio 0) goes first, however large it is
    alloc = select_bitwidths({"a": {4: 0.3, 8: 0.1}, "b": {4: 0.0, 8: 0.0}}, {"a": 10, "b": 10}, 120, method="greedy")
    assert alloc.bits["a"] == 8
    # equal ratios: the first layer of the table is narrowed first
    tie = {"a": {4: 0.2, 8: 0.1}, "b": {4: 0.2, 8: 0.1}}
    assert select_bitwidths(tie, {"a": 10, "b": 10}, 120, method="greedy").bits == {"a": 4, "b": 8}
    # the options are read by cost whatever the order the table gives them in
    desc = {"a": {8: 0.1, 4: 0.5}, "b": {8: 0.1, 4: 0.2}}
    for method in ("greedy", "exact"):
        assert select_bitwidths(desc, {"a": 10, "b": 10}, 120, method=method).bits == {"a": 8, "b": 4}
        with pytest.raises(ValidationError, match="^budget_bits:"):
            select_bitwidths(desc, {"a": 10, "b": 10}, 79, method=method)
    assert select_bitwidths({"a": {1: 0.5, 2: 0.1}}, {"a": 4}, 4).bits == {"a": 1}      # 1 bit is a width


def test_exact_prefers_the_cheaper_of_two_equally_good_choices():
    """Among allocations with the same total error, the one with fewer bits (a tie on error, then cost)."""
    alloc = select_bitwidths({"a": {4: 0.0, 8: 0.0}}, {"a": 10}, 100)
    assert alloc.bits == {"a": 4} and alloc.total_bits == 40
    alloc = select_bitwidths({"a": {2: 0.5, 4: 0.25, 8: 0.25}}, {"a": 10}, 100, method="exact")
    assert alloc.bits == {"a": 4}
    assert select_bitwidths({"a": {4: 0.1}}, {"a": 10}, 40).bits == {"a": 4}        # the budget met exactly


@pytest.mark.parametrize("sens, sizes, budget, match", [
    ({}, {}, 10, "sensitivity"), ([("a", 1)], {"a": 1}, 10, "sensitivity"),
    ({"a": {}}, {"a": 1}, 10, r"sensitivity\['a'\]"), ({"a": {4: 0.1}}, {"a": 0}, 10, r"sizes\['a'\]"),
    ({"a": {0: 0.1}}, {"a": 1}, 10, "key"), ({"a": {4: -0.1}}, {"a": 1}, 10, r"sensitivity\['a'\]\[4\]"),
    ({"a": {4: float("nan")}}, {"a": 1}, 10, r"\[4\]"), ({"a": {4: True}}, {"a": 1}, 10, r"\[4\]"),
    ({"a": {4: 0.1}}, [1], 10, "sizes"), ({"a": {4: 0.1}}, {"a": 1}, -1, "budget_bits"),
    ({"a": {4: 0.1}}, {"a": 1}, 10, "method")])
def test_bit_selection_refuses_bad_tables(sens, sizes, budget, match):
    kwargs = {"method": "best"} if match == "method" else {}
    with pytest.raises(ValidationError, match=match):
        select_bitwidths(sens, sizes, budget, **kwargs)


def test_weight_sensitivity_by_the_formula():
    """error[b] = ||W − RTN_b(W)||² / ||W||² with rows of groups (group_size) and a 1-D weight as one row;
    an all-zero weight has no error (its norm is read as 1)."""
    from refcomp.compress.quantize.rtn import rtn_quantize

    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 8))
    t = weight_sensitivity({"w": w, "v": w[0], "z": np.zeros((2, 2))}, bit_choices=(3,), group_size=4)
    want = rtn_quantize(w, bits=3, group_size=4).to_dense().astype(np.float64)
    assert t["w"][3] == pytest.approx(np.sum((w - want) ** 2) / np.sum(w * w), rel=1e-12)
    want_v = rtn_quantize(w[:1], bits=3, group_size=4).to_dense().astype(np.float64)
    assert t["v"][3] == pytest.approx(np.sum((w[:1] - want_v) ** 2) / np.sum(w[0] ** 2), rel=1e-12)
    assert t["z"] == {3: 0.0}
    coarse = weight_sensitivity({"w": w}, bit_choices=(3,))["w"][3]        # one scale per row
    rows = rtn_quantize(w, bits=3).to_dense().astype(np.float64)
    assert coarse == pytest.approx(np.sum((w - rows) ** 2) / np.sum(w * w), rel=1e-12) and coarse != t["w"][3]


def test_a_flushed_value_is_counted_and_a_value_that_casts_to_one_is_not():
    """n_flushed_to_zero counts the nonzero inputs that became 0, nothing else: 2^-26 (below half of float16's
    smallest subnormal 2^-24) is one; 1 + 2^-12 (float16: 1.0) and 1.0 itself are none."""
    assert cast_weights(np.array([2.0**-26], np.float32)).n_flushed_to_zero == 1
    assert cast_weights(np.array([1 + 2.0**-12, 1.0], np.float32)).n_flushed_to_zero == 0


def test_loss_scaler_below_one_and_unscale_before_the_first_step():
    """Scales below 1 are valid when the bounds allow them (max_scale = 1/2 with min_scale = 1/4); before any
    step, last_scale is the initial scale, so unscale divides by it."""
    s = DynamicLossScaler(0.5, min_scale=0.25, max_scale=0.5)
    assert s.scale == 0.5 and s.max_scale == 0.5
    assert s.last_scale == 0.5 and s.unscale(np.array([1.0, -2.0])).tolist() == [2.0, -4.0]


def test_all_finite_reads_ragged_lists_0d_arrays_and_any_real_numbers():
    """all_finite looks at each array of a list on its own (the arrays may differ in shape), reads a 0-D array
    or a Python number as one array, and converts any real numbers (Decimal) to float64 first."""
    from decimal import Decimal

    assert DynamicLossScaler.all_finite([np.ones(2), np.ones(3)])
    assert not DynamicLossScaler.all_finite([np.ones(2), np.array([1.0, 2.0, np.inf])])
    assert DynamicLossScaler.all_finite(np.array(2.0)) and not DynamicLossScaler.all_finite(np.array(np.inf))
    assert DynamicLossScaler.all_finite(3.0)
    assert DynamicLossScaler.all_finite({"a": [Decimal("1.5")]})
    assert not DynamicLossScaler.all_finite({"a": [Decimal("Infinity")]})


def test_sgd_step_rounds_a_float64_gradient_to_float32_first():
    """master ← master − lr · float32(g) / S: g = 2^-25 + 2^-50 (float64) is 2^-25 in float32, and 1 − 2^-25 is
    a tie between 1 − 2^-24 and 1 in float32: to even, 1.0. (Subtracting the float64 g would round below the
    tie, to 1 − 2^-24.)"""
    mw = MasterWeights({"w": np.ones(1, np.float32)})
    mw.sgd_step({"w": np.array([2.0**-25 + 2.0**-50])}, lr=1.0)
    assert mw.master["w"].dtype == np.float32 and mw.master["w"][0] == 1.0


def test_greedy_is_not_exact_and_exact_finds_the_optimum():
    """Sizes 10, a = {1: 0.5, 8: 0}, b = {4: 0.1, 8: 0}, budget 110 (from 160): greedy narrows b first (0.1 / 40
    per bit < 0.5 / 70), still over budget narrows a: {a: 1, b: 4}, error 0.6; the exact optimum (all four
    allocations by hand: a8b8 160, a8b4 120 over budget; a1b8 90, 0.5; a1b4 50, 0.6) is {a: 1, b: 8}, 0.5."""
    sens, sizes = {"a": {1: 0.5, 8: 0.0}, "b": {4: 0.1, 8: 0.0}}, {"a": 10, "b": 10}
    greedy = select_bitwidths(sens, sizes, 110, method="greedy")
    assert greedy.bits == {"a": 1, "b": 4} and greedy.total_bits == 50 and greedy.total_error == pytest.approx(0.6)
    exact = select_bitwidths(sens, sizes, 110, method="exact")
    assert exact.bits == {"a": 1, "b": 8} and exact.total_bits == 90 and exact.total_error == pytest.approx(0.5)


def test_greedy_ratio_is_the_error_increase_over_the_bits_saved():
    """Eq. 8 with unequal savings and nonzero errors: a 8 -> 1 saves 70 bits for (0.24 − 0.1) = 0.14, 0.002 per
    bit; b 8 -> 4 saves 40 bits for 0.1, 0.0025 per bit: a goes first, and 10 + 80 = 90 <= 150 ends it."""
    sens = {"a": {1: 0.24, 8: 0.1}, "b": {4: 0.1, 8: 0.0}}
    alloc = select_bitwidths(sens, {"a": 10, "b": 10}, 150, method="greedy")
    assert alloc.bits == {"a": 1, "b": 8} and alloc.total_bits == 90 and alloc.total_error == pytest.approx(0.24)


def test_exact_tells_tiny_errors_apart_and_accepts_equal_candidates():
    """Errors of 1e-17 and 2e-17 are different errors (the sums start from 0, not from a constant that would
    absorb them); two allocations of equal cost and equal error are both optimal (a tie is no failure)."""
    assert select_bitwidths({"a": {4: 2e-17, 8: 1e-17}}, {"a": 1}, 8).bits == {"a": 8}
    tie = {"a": {4: 0.1, 8: 0.0}, "b": {4: 0.1, 8: 0.0}}
    alloc = select_bitwidths(tie, {"a": 10, "b": 10}, 120)
    assert alloc.bits in ({"a": 4, "b": 8}, {"a": 8, "b": 4}) and alloc.total_bits == 120
    assert alloc.total_error == pytest.approx(0.1)


def test_weight_sensitivity_of_a_float32_and_a_1d_weight_is_computed_in_float64():
    """A float32 weight is widened to float64 before the sums (a float32 sum would be off by ~1e-7 relative);
    a 1-D weight is one row: one scale over all of it, not one per half."""
    from refcomp.compress.quantize.rtn import rtn_quantize

    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    w64 = w.astype(np.float64)
    want = rtn_quantize(w64, bits=4).to_dense().astype(np.float64)
    got = weight_sensitivity({"w": w}, bit_choices=(4,))["w"][4]
    assert got == pytest.approx(np.sum((w64 - want) ** 2) / np.sum(w64 * w64), rel=1e-12)
    v = rng.standard_normal(6) * np.array([1, 1, 1, 10, 10, 10])
    want_v = rtn_quantize(v[None, :], bits=3).to_dense().astype(np.float64)[0]
    got_v = weight_sensitivity({"v": v}, bit_choices=(3,))["v"][3]
    assert got_v == pytest.approx(np.sum((v - want_v) ** 2) / np.sum(v * v), rel=1e-12)
