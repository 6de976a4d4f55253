"""Mixed-precision training through refcomp.nn.train (eqs. 9-12 of docs/precision.md)."""

import ml_dtypes
import numpy as np
import pytest

from refcomp.compress.precision.casts import DynamicLossScaler
from refcomp.compress.precision.training import MixedPrecisionOptimizer
from refcomp.errors import ValidationError
from refcomp.nn import Linear, ReLU, Sequential, evaluate, train

from ..models_for_tests import digits_split, small_mlp


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(("fc0", Linear(4, 3, rng=rng)), ("relu", ReLU()), ("fc1", Linear(3, 2, rng=rng)))


def _set_grads(opt, value):
    for p in opt.params.values():
        p.grad = np.full(p.data.shape, value, dtype=p.data.dtype)


@pytest.mark.parametrize("compute", ["native", "emulated"])
def test_skip_on_inf_then_apply_unscaled_update_then_grow(compute):
    """By hand: an inf gradient skips the step (master and model untouched, S halved); a finite one
    moves the master by −lr·g/S with S the scale that made g (momentum 0); after N clean steps S doubles."""
    m = _model()
    opt = MixedPrecisionOptimizer(m, "float16", compute=compute, lr=0.5, momentum=0.0,
                                  scaler=DynamicLossScaler(2.0**10, growth_interval=3))
    before = {n: p.data.copy() for n, p in opt.master.items()}
    model_before = {n: p.data.copy() for n, p in opt.params.items()}
    _set_grads(opt, 1.0)
    opt.params["fc0.weight"].grad[0, 0] = np.inf
    assert opt.step() is False and opt.scaler.scale == 2.0**9 and opt.steps == 0
    for n, p in opt.master.items():
        np.testing.assert_array_equal(p.data, before[n])
        np.testing.assert_array_equal(opt.params[n].data, model_before[n])
    for k in range(3):
        _set_grads(opt, 64.0)                                   # a scaled gradient: 64 / 2^9 = 1/8 unscaled
        assert opt.step() is True
        for n, p in opt.master.items():
            np.testing.assert_array_equal(p.data, (before[n] - np.float32(0.5 / 8) * (k + 1)).astype(np.float32))
            assert p.data.dtype == np.float32
            np.testing.assert_array_equal(opt.params[n].data, p.data.astype(np.float16))
    assert opt.scaler.scale == 2.0**10 and opt.steps == 3           # grew after 3 clean steps
    assert opt.params["fc0.weight"].data.dtype == (np.float16 if compute == "native" else np.float32)


def test_gradient_overflow_in_float16_is_caught_in_emulation():
    """A finite float32 gradient of 7e4 is inf in float16 (> 65519): emulation rounds it and skips."""
    opt = MixedPrecisionOptimizer(_model(), "float16", scaler=DynamicLossScaler(2.0**4))
    _set_grads(opt, 7e4)
    assert opt.step() is False and opt.scaler.skipped_steps == 1
    opt_bf = MixedPrecisionOptimizer(_model(), "bfloat16")
    _set_grads(opt_bf, 7e4)                                        # bfloat16 holds it (float32's range)
    assert opt_bf.step() is True and opt_bf.scaler.scale == 1.0


@pytest.mark.parametrize("dtype, compute", [("float16", "native"), ("float16", "emulated"), ("bfloat16", "emulated")])
def test_16_bit_training_tracks_float32_on_digits(dtype, compute):
    """The same MLP, data order and SGD in float32 and in 16 bits with master weights: accuracies agree
    within 2 pp, the master weights stay float32 and close to the float32 run's, the model holds fl(master)."""
    tr, te = digits_split()
    ref = small_mlp(3, sizes=(64, 32, 10))
    train(ref, tr, epochs=8, lr=0.05, rng=0, progress=False)
    m = small_mlp(3, sizes=(64, 32, 10))
    opt = MixedPrecisionOptimizer(m, dtype, compute=compute, lr=0.05, momentum=0.9)
    h = train(m, tr, epochs=8, optimizer=opt, rng=0, progress=False, val_data=te)
    assert opt.steps > 0 and np.isfinite(h[-1]["loss"])
    store = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    for n, p in opt.master.items():
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(opt.params[n].data.astype(np.float32), p.data.astype(store).astype(np.float32))
    w16, w32 = opt.master["fc0.weight"].data, ref["fc0"].weight.data
    assert np.abs(w16 - w32).max() < 0.05 * np.abs(w32).max()
    acc32, acc16 = evaluate(ref, te)["accuracy"], h[-1]["val_accuracy"]
    assert acc32 > 0.85 and abs(acc16 - acc32) <= 0.02
    opt.use_master()
    assert m["fc0"].weight.data.dtype == np.float32


def test_loss_scaling_rescues_gradients_that_underflow_float16():
    """A loss weighted by 2^-24: with S fixed at 1 every float16 gradient flushes to 0 and nothing trains;
    with dynamic scaling (S₀ = 2^24) the model trains as in float32."""
    from refcomp.nn import CrossEntropyLoss

    class Tiny(CrossEntropyLoss):
        def forward(self, pred, y):
            return super().forward(pred, y) * 2.0**-24

        def backward(self):
            return super().backward() * np.float32(2.0**-24)

    tr, _ = digits_split()
    tr = (tr[0][:300], tr[1][:300])
    runs = {}
    for name, scaler in (("fixed", DynamicLossScaler(1.0, max_scale=1.0)), ("dynamic", DynamicLossScaler(2.0**24))):
        m = small_mlp(4, sizes=(64, 16, 10))
        w0 = m["fc0"].weight.data.copy()
        opt = MixedPrecisionOptimizer(m, "float16", lr=2.0**24 * 0.05, momentum=0.0, scaler=scaler)
        train(m, tr, epochs=1, optimizer=opt, loss=Tiny(), rng=0, progress=False, schedule="constant")
        runs[name] = np.abs(opt.master["fc0.weight"].data - w0).max()
    assert runs["fixed"] == 0.0 and runs["dynamic"] > 1e-3


def test_bad_arguments():
    m = _model()
    with pytest.raises(ValidationError, match="dtype"):
        MixedPrecisionOptimizer(m, "float8")
    with pytest.raises(ValidationError, match="compute"):
        MixedPrecisionOptimizer(m, "bfloat16", compute="native")
    with pytest.raises(ValidationError, match="scaler"):
        MixedPrecisionOptimizer(m, scaler=2.0)
    from refcomp.nn.regularizers import L1

    x, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValidationError, match="regularizer"):
        train(m, (x, y), optimizer=MixedPrecisionOptimizer(m), regularizer=L1(1e-4), progress=False)


def test_default_scalers_follow_the_papers():
    """float16: S₀ = 2^16, doubled after 2000 clean steps (Micikevicius et al. 2018 §3.2, as PyTorch's
    GradScaler); bfloat16: a constant S = 1 (float32's exponent range, Kalamkar et al. 2019 §3)."""
    half = MixedPrecisionOptimizer(_model(), "float16")
    assert half.scaler.scale == 2.0**16 and half.scaler.growth_interval == 2000 and half.compute == "emulated"
    bf = MixedPrecisionOptimizer(_model(), "bfloat16")
    assert bf.scaler.scale == 1.0 and bf.scaler.max_scale == 1.0
    assert bf.dtype == ml_dtypes.bfloat16 and half.dtype == np.float16


def test_casts_round_to_16_bits_and_keep_integer_inputs():
    """fl(x) is the round-to-nearest-even cast (ml_dtypes / NumPy are the oracle), held as float32 in
    emulation and as float16 natively; integer inputs (token ids) pass untouched; the logits go to the
    loss in float32; ∂L/∂z is multiplied by S before its rounding (eq. 10)."""
    x = np.array([[1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 7e4]], np.float64)

    def fl(a, store):
        with np.errstate(over="ignore"):        # 7e4 is inf in float16: what the scaler must see
            return a.astype(np.float32).astype(store).astype(np.float64)

    for dtype, compute, store in (("float16", "emulated", np.float16), ("float16", "native", np.float16),
                                  ("bfloat16", "emulated", ml_dtypes.bfloat16)):
        opt = MixedPrecisionOptimizer(_model(), dtype, compute=compute, scaler=DynamicLossScaler(2.0**10))
        got = opt.cast_input(x)
        assert got.dtype == (np.float16 if compute == "native" else np.float32)
        np.testing.assert_array_equal(got.astype(np.float64), fl(x, store))
        ids = np.array([[3, 1]], np.int64)
        assert opt.cast_input(ids) is ids
        z16 = np.array([[1.5, -2.0**-14], [6e4, 0.0]], np.float16)
        z = opt.cast_output(z16)                         # the logits widened (exactly) for the loss
        assert z.dtype == np.float32 and z.shape == (2, 2)
        np.testing.assert_array_equal(z, np.float32([[1.5, -2.0**-14], [z16[1, 0], 0.0]]))
        dz = np.array([2.0**-20, 1e-3, 100.0], np.float32)
        np.testing.assert_array_equal(opt.scale_gradient(dz).astype(np.float64), fl(dz * np.float32(2.0**10), store))
    opt = MixedPrecisionOptimizer(_model(), "float16", scaler=DynamicLossScaler(2.0**16))
    assert np.isinf(opt.scale_gradient(np.float32([2.0])))[0]                   # 2^17 overflows float16


def test_lr_is_the_inner_sgd_lr_and_zero_grad_clears_the_model():
    opt = MixedPrecisionOptimizer(_model(), "float16", lr=0.25)
    assert opt.lr == 0.25 and opt.inner.lr == 0.25
    opt.lr = 0.125                                      # what refcomp.nn.train's schedules do
    assert opt.inner.lr == 0.125
    _set_grads(opt, 1.0)
    opt.zero_grad()
    assert all(p.grad is None for p in opt.params.values())


def test_step_is_float32_sgd_with_momentum_and_weight_decay_on_the_master():
    """Eq. (12) by hand (refcomp.nn.optim.SGD's rule written out): g = g16 / S + λθ, v ← μv + g (v₀ = g),
    θ ← θ − lr·v, all in float32; a parameter without a gradient keeps its value."""
    m = _model()
    opt = MixedPrecisionOptimizer(m, "float16", lr=0.5, momentum=0.5, weight_decay=0.25,
                                  scaler=DynamicLossScaler(4.0))
    theta = {n: p.data.astype(np.float32).copy() for n, p in opt.master.items()}
    v = {}
    for k in range(2):
        _set_grads(opt, 2.0)
        opt.params["fc1.bias"].grad = None
        assert opt.step()
        for n in theta:
            if n == "fc1.bias":
                continue
            g = np.float32(2.0 / 4.0) + np.float32(0.25) * theta[n]
            v[n] = g if k == 0 else np.float32(0.5) * v[n] + g
            theta[n] = theta[n] - np.float32(0.5) * v[n]
            np.testing.assert_allclose(opt.master[n].data, theta[n], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(opt.master["fc1.bias"].data, theta["fc1.bias"])
    assert opt.steps == 2


def test_use_master_gives_the_model_float32_copies():
    m = _model()
    opt = MixedPrecisionOptimizer(m, "bfloat16")
    opt.master["fc0.weight"].data[0, 0] = np.float32(1 + 2.0**-10)           # not a bfloat16 value
    opt.use_master()
    assert m["fc0"].weight.data.dtype == np.float32 and m["fc0"].weight.data[0, 0] == np.float32(1 + 2.0**-10)
    m["fc0"].weight.data[0, 0] = 5.0
    assert opt.master["fc0.weight"].data[0, 0] == np.float32(1 + 2.0**-10)    # a copy, not the master itself


def test_a_model_without_parameters_is_refused():
    with pytest.raises(ValidationError, match="model"):
        MixedPrecisionOptimizer(Sequential(("relu", ReLU())))


def test_defaults_are_the_float32_sgd_of_refcomp_nn_train():
    """lr 0.05, momentum 0.9, no weight decay (nor dampening, nor Nesterov): refcomp.nn.train's SGD defaults."""
    opt = MixedPrecisionOptimizer(_model())
    assert (opt.inner.lr, opt.inner.momentum, opt.inner.weight_decay) == (0.05, 0.9, 0.0)
    assert opt.inner.dampening == 0.0 and opt.inner.nesterov is False and opt.steps == 0


def test_master_weights_are_float32_copies_even_of_a_float64_model():
    """θ is float32 whatever the model held (eq. 12 updates float32 masters); the model then holds fl(θ),
    and the master is its own array: writing the model's does not touch it."""
    rng = np.random.default_rng(1)
    m = Sequential(("fc", Linear(5, 4, rng=rng, dtype="float64")))
    w64 = m["fc"].weight.data.copy()
    opt = MixedPrecisionOptimizer(m, "float16")
    for n, p in opt.master.items():
        assert p.data.dtype == np.float32
    np.testing.assert_array_equal(opt.master["fc.weight"].data, w64.astype(np.float32))
    np.testing.assert_array_equal(m["fc"].weight.data, w64.astype(np.float32).astype(np.float16).astype(np.float32))
    m["fc"].weight.data[...] = 7.0
    np.testing.assert_array_equal(opt.master["fc.weight"].data, w64.astype(np.float32))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_native_float16_steps_are_exact_float32_sgd_on_the_master(momentum):
    """Natively the gradients are float16 arrays: eq. (12) widens them to float32 before dividing by S, so
    the whole update is float32 arithmetic, bit for bit the SGD rule written out here (g = g16·(1/S) + λθ,
    b = g then b = μb + g, θ ← θ − η·b) — not a float64 computation rounded once at the end."""
    rng = np.random.default_rng(7)
    m = Sequential(("fc", Linear(32, 16, rng=rng)))
    lr, wd, s = 0.1, 0.01, 8.0
    opt = MixedPrecisionOptimizer(m, "float16", compute="native", lr=lr, momentum=momentum, weight_decay=wd,
                                  scaler=DynamicLossScaler(s))
    theta = {n: p.data.copy() for n, p in opt.master.items()}
    buf = {}
    f32 = np.float32
    for k in range(3):
        g16 = {n: rng.standard_normal(p.data.shape).astype(np.float16) for n, p in opt.params.items()}
        for n, p in opt.params.items():
            p.grad = g16[n]
        assert opt.step() is True
        for n in theta:
            g = g16[n].astype(f32) * f32(1 / s) + f32(wd) * theta[n]
            assert g.dtype == np.float32
            if momentum:
                buf[n] = g.copy() if k == 0 else buf[n] * f32(momentum) + f32(1.0) * g
                g = buf[n]
            theta[n] = theta[n] - f32(lr) * g
            np.testing.assert_array_equal(opt.master[n].data, theta[n])
            np.testing.assert_array_equal(opt.params[n].data, theta[n].astype(np.float16))
            assert opt.params[n].data.dtype == np.float16


def test_float64_values_are_rounded_to_float32_before_16_bits():
    """fl rounds the float32 value the float32 model would hold: a float64 input or loss gradient is cast to
    float32 first (round to nearest even twice). 1 + 2⁻¹¹ + 2⁻⁴⁰ is 1 + 2⁻¹¹ in float32, a tie in float16 that
    goes to the even 1; rounded directly it would go up to 1 + 2⁻¹⁰ (likewise 1 + 2⁻⁸ + 2⁻⁴⁰ in bfloat16)."""
    for dtype, tie in (("float16", 2.0**-11), ("bfloat16", 2.0**-8)):
        opt = MixedPrecisionOptimizer(_model(), dtype, scaler=DynamicLossScaler(1.0))
        x = np.array([1 + tie + 2.0**-40, -(1 + tie + 2.0**-40)], np.float64)
        np.testing.assert_array_equal(opt.cast_input(x), np.float32([1.0, -1.0]))
        np.testing.assert_array_equal(opt.scale_gradient(x), np.float32([1.0, -1.0]))
    # ∂L/∂z is taken in float32 before S multiplies it (S = 3, not a power of two: the product rounds):
    # dz = 1145/2048 − 3·2⁻²⁷ is 1145/2048 in float32 (0.75 of a half-ulp away), times 3 is 3435/2048 exactly,
    # a float16 tie that goes to the even 1718/1024; dz·3 in float64 lies below the tie and would go down
    opt = MixedPrecisionOptimizer(_model(), "float16", scaler=DynamicLossScaler(3.0))
    dz = np.array([1145 / 2048 - 3 * 2.0**-27], np.float64)
    np.testing.assert_array_equal(opt.scale_gradient(dz), np.float32([1718 / 1024]))


def test_overflow_to_inf_is_silent_and_a_nan_gradient_is_skipped():
    """A value beyond float16's range rounds to inf, any NaN to NaN, without a warning (it is what the scaler
    reads), and a NaN gradient skips the step like an inf one: S halves, the counter of clean steps restarts."""
    import warnings

    opt = MixedPrecisionOptimizer(_model(), "float16", scaler=DynamicLossScaler(2.0**4, growth_interval=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(opt.cast_input(np.float32([1e5, -1e5]))).all()
        # a signalling NaN (bit patterns 0x7ff0000000000001 in float64, 0x7f800001 in float32) is a NaN
        # too: its cast sets the invalid flag, which must not warn either
        snan64 = np.array([0x7FF0000000000001], np.uint64).view(np.float64)
        assert np.isnan(opt.cast_input(snan64)).all()
        bf = MixedPrecisionOptimizer(_model(), "bfloat16")
        assert np.isnan(bf.cast_input(np.array([0x7F800001], np.uint32).view(np.float32))).all()
        _set_grads(opt, 1.0)
        assert opt.step() is True and opt.scaler.clean_steps == 1
        _set_grads(opt, np.nan)
        assert opt.step() is False and opt.scaler.scale == 2.0**3 and opt.scaler.clean_steps == 0
        for _ in range(2):
            _set_grads(opt, 1.0)
            assert opt.step() is True
    assert opt.scaler.scale == 2.0**4 and opt.steps == 3 and opt.scaler.skipped_steps == 1
