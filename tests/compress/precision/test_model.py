"""Precision on whole models: fp16 training with loss scaling, half-precision storage, per-layer bit widths."""

import numpy as np
import pytest

from refcomp.compress.precision.casts import DynamicLossScaler, MasterWeights
from refcomp.compress.precision.model import cast_model, mixed_precision_step
from refcomp.errors import ValidationError
from refcomp.formats.half import HalfPrecision
from refcomp.nn import CrossEntropyLoss, Linear, ReLU, Sequential, evaluate


def test_loss_scaling_never_applies_nonfinite_updates():
    """fp16 training step: with a huge loss scale the fp16 gradients overflow; those steps leave the
    float32 master weights untouched and halve the scale, until updates go through."""
    rng = np.random.default_rng(0)
    model = Sequential(("fc0", Linear(8, 16, rng=rng)), ("relu", ReLU()), ("fc1", Linear(16, 3, rng=rng)))
    master = MasterWeights({n: p.data for n, p in model.named_parameters()}, dtype="float16")
    scaler = DynamicLossScaler(init_scale=2.0**24, max_scale=2.0**24, growth_interval=1000)
    x = rng.normal(size=(32, 8)).astype(np.float32) * 4
    y = rng.integers(0, 3, size=32)
    applied = []
    for _ in range(30):
        before = {k: v.copy() for k, v in master.master.items()}
        ok = mixed_precision_step(model, master, scaler, x, y, CrossEntropyLoss(), lr=0.05)
        grads_finite = all(np.isfinite(p.grad.astype(np.float64)).all() for _, p in model.named_parameters())
        assert ok == grads_finite
        for k, v in master.master.items():
            assert np.isfinite(v).all()
            if not ok:
                np.testing.assert_array_equal(v, before[k])
        applied.append(ok)
    assert not applied[0] and scaler.skipped_steps >= 1      # 2^24 overflows float16 at first
    assert sum(applied) >= 10                                 # then the scale came down and training ran
    with pytest.raises(ValidationError):
        mixed_precision_step(model, MasterWeights({"a": np.zeros(2)}, dtype="float16"), scaler, x, y,
                             CrossEntropyLoss(), lr=0.1)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_storage(digits, dtype):
    m, tr, te, acc = digits
    h, rep = cast_model(m, dtype)
    assert isinstance(h["fc1"].weight, HalfPrecision)
    assert h["fc1"].weight.nbytes * 2 == m["fc1"].weight.nbytes
    assert abs(evaluate(h, te)["accuracy"] - acc) <= 0.01
    # round to nearest: at most half an ulp of the largest weight (unit roundoff 2^-11 / 2^-8)
    w_max = float(np.abs(m["fc1"].weight.data).max())
    assert rep["fc1"]["max_abs_error"] <= w_max * (2**-11 if dtype == "float16" else 2**-8)


def test_per_layer_bit_widths_under_budget(digits):
    from refcomp.compress.precision.model import select_layer_bits
    from refcomp.compress.quantize.weight_only import quantize_weights

    m, tr, te, acc = digits
    alloc, sens = select_layer_bits(m, tr[0][:300], 3.0, bit_choices=(2, 4, 8), group_size=16)
    sizes = {"fc1": m["fc1"].weight.data.size, "fc2": m["fc2"].weight.data.size}
    assert set(alloc.bits) == set(sizes)
    assert sum(sizes[k] * b for k, b in alloc.bits.items()) <= 3.0 * sum(sizes.values())
    for row in sens.values():                      # fewer bits never reduce the error here
        assert row[2] >= row[4] >= row[8]
    q, rep = quantize_weights(m, bits=alloc.bits, group_size=16)
    assert {k: r["bits"] for k, r in rep.items()} == alloc.bits
    assert evaluate(q, te)["accuracy"] >= acc - 0.05
    only, rep = quantize_weights(m, bits={"fc2": 4})          # fc1 absent: stays float
    assert set(rep) == {"fc2"} and type(only["fc1"].weight).__name__ == "Dense"
