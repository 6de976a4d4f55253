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
        assert opt.cast_output(np.ones(2, np.float16)).dtype == np.float32
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
