"""precision.model's functions on tiny models, each against its formula written out (docs/precision.md):
the cast of every layer, one loss-scaled float16 step, the sensitivity table and the bit budget."""

import itertools

import ml_dtypes
import numpy as np
import pytest

from refcomp.compress.precision.casts import DynamicLossScaler, MasterWeights
from refcomp.compress.precision.model import cast_model, mixed_precision_step, model_bytes, select_layer_bits
from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.errors import OverflowRiskError, ValidationError
from refcomp.nn import Conv2d, CrossEntropyLoss, Flatten, Linear, ReLU, Sequential

from ..models_for_tests import small_mlp


def _cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(("conv", Conv2d(1, 2, 2, rng=rng)), ("relu", ReLU()), ("flatten", Flatten()),
                      ("fc", Linear(2 * 2 * 2, 3, rng=rng)))


@pytest.mark.parametrize("dtype, store", [(None, np.float16), ("bfloat16", ml_dtypes.bfloat16)])
def test_cast_model_rounds_every_layer_once_and_reports_its_errors(dtype, store):
    """Each Conv2d / Linear weight is the round-to-nearest-even cast of the float32 weight (NumPy / ml_dtypes),
    float16 by default; the report holds the largest absolute and relative errors and the flushed count."""
    m = _cnn()
    m["fc"].weight.data[0, 0] = 1e-9                                    # flushes to 0 in float16, not in bfloat16
    h, report = cast_model(m) if dtype is None else cast_model(m, dtype)
    assert set(report) == {"conv", "fc"}
    for name in ("conv", "fc"):
        w = m[name].weight.to_dense()
        want = w.astype(store)
        assert h[name].weight.data.dtype == store
        np.testing.assert_array_equal(h[name].weight.data, want)
        err = np.abs(want.astype(np.float64) - w.astype(np.float64))
        kept = want.astype(np.float64) != 0
        assert report[name] == {"max_abs_error": err.max(), "max_rel_error": (err[kept] / np.abs(w[kept])).max(),
                                "n_flushed_to_zero": int(np.sum((w != 0) & ~kept))}
    assert report["fc"]["n_flushed_to_zero"] == (1 if store == np.float16 else 0)
    assert isinstance(m["fc"].weight.data, np.ndarray) and m["fc"].weight.data.dtype == np.float32   # untouched


def test_cast_model_overflow_raises_or_saturates():
    """|w| = 1e5 > 65504 rounds to inf in float16: an error by default, ±65504 with on_overflow="saturate"."""
    m = _cnn()
    m["fc"].weight.data[1, 2] = -1e5
    with pytest.raises(OverflowRiskError):
        cast_model(m)
    h, _ = cast_model(m, on_overflow="saturate")
    assert h["fc"].weight.data[1, 2] == np.float16(-65504)


def _grads_by_hand(w16, b16, x16, y, scale):
    """∂(S·L)/∂W and ∂(S·L)/∂b of the mean cross-entropy of z = x Wᵀ + b, in float64 from the float16 values."""
    x, w, b = (a.astype(np.float64) for a in (x16, w16, b16))
    z = x @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(w.shape[0])[y]) / len(y) * scale
    return dz.T @ x, dz.sum(axis=0)


def test_one_mixed_precision_step_by_hand():
    """The model gets fl16(master); the gradients are those of S·L on those float16 values (float16-rounded:
    a few ulps); master ← master − lr·g/S with the S that made g, in float32; a second step starts afresh
    (the gradients are not accumulated)."""
    rng = np.random.default_rng(0)
    model = Sequential(("fc", Linear(5, 3, rng=rng)))
    master = MasterWeights({n: p.data for n, p in model.named_parameters()}, dtype="float16")
    scaler = DynamicLossScaler(init_scale=2.0**4, growth_interval=1)          # grows after every clean step
    x = rng.normal(size=(8, 5))
    y = rng.integers(0, 3, size=8)
    for step in range(2):
        old = {k: v.copy() for k, v in master.master.items()}
        s = scaler.scale
        assert mixed_precision_step(model, master, scaler, x, y, CrossEntropyLoss(), lr=0.5)
        w16, b16 = old["fc.weight"].astype(np.float16), old["fc.bias"].astype(np.float16)
        np.testing.assert_array_equal(model["fc"].weight.data, w16)      # the model ran on fl16(master)
        assert model["fc"].weight.data.dtype == np.float16
        gw, gb = _grads_by_hand(w16, b16, x.astype(np.float16), y, s)
        got_w, got_b = model["fc"].weight.grad, model["fc"].bias.grad
        assert got_w.dtype == got_b.dtype == np.float16                  # the backward ran in float16
        np.testing.assert_allclose(got_w.astype(np.float64), gw, rtol=2e-2, atol=2e-2 * np.abs(gw).max())
        np.testing.assert_allclose(got_b.astype(np.float64), gb, rtol=2e-2, atol=2e-2 * np.abs(gb).max())
        for k, g in (("fc.weight", got_w), ("fc.bias", got_b)):
            want = old[k] - np.float32(0.5) * (g.astype(np.float32) / np.float32(s))
            np.testing.assert_array_equal(master.master[k], want)
        assert scaler.scale == 2 * s                                         # the next step's S


def test_mixed_precision_step_refuses_a_bfloat16_master_and_foreign_names():
    model = Sequential(("fc", Linear(2, 2, rng=0)))
    x, y = np.zeros((2, 2)), np.zeros(2, np.int64)
    bf = MasterWeights({n: p.data for n, p in model.named_parameters()}, dtype="bfloat16")
    with pytest.raises(ValidationError, match="master.dtype"):
        mixed_precision_step(model, bf, DynamicLossScaler(), x, y, CrossEntropyLoss(), lr=0.1)
    with pytest.raises(ValidationError, match="master"):
        mixed_precision_step(model, MasterWeights({"fc.weight": np.zeros((2, 2))}), DynamicLossScaler(), x, y,
                             CrossEntropyLoss(), lr=0.1)


def _sensitivity_by_hand(m, x, bit_choices, group_size):
    """{layer: {b: mean((f_b(x) − f(x))²)}} with only that layer RTN-quantized to b bits."""
    ref = m.forward(x).astype(np.float64)
    table = {}
    for name in ("fc0", "fc1", "fc2"):
        table[name] = {}
        for b in bit_choices:
            q, _ = quantize_weights(m, bits={name: b}, group_size=group_size)
            table[name][b] = float(np.mean((q.forward(x).astype(np.float64) - ref) ** 2))
    return table


@pytest.mark.parametrize("group_size, method", [("default", "exact"), (None, "exact"), (4, "greedy")])
def test_layer_bits_minimise_the_summed_sensitivity_under_the_average_width(group_size, method):
    """The table: output MSE with only one layer quantized (float32 inputs; groups of 16 by default); the
    choice: a brute force minimum of Σ error over every assignment with Σ n·b <= avg_bits·Σ n (greedy:
    within that budget)."""
    m = small_mlp(1, sizes=(20, 12, 8, 4))                           # fc0's rows: a group of 16, then 4
    x = np.random.default_rng(2).normal(size=(16, 20))
    kw = {} if group_size == "default" else {"group_size": group_size}
    alloc, sens = select_layer_bits(m, x, 4.5, bit_choices=(2, 4, 8), method=method, **kw)
    want = _sensitivity_by_hand(m, x.astype(np.float32), (2, 4, 8), 16 if group_size == "default" else group_size)
    assert sens.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose([sens[name][b] for b in (2, 4, 8)], [want[name][b] for b in (2, 4, 8)],
                                   rtol=1e-9)
    sizes = {"fc0": 240, "fc1": 96, "fc2": 32}
    budget = int(4.5 * sum(sizes.values()))
    assert alloc.total_bits == sum(sizes[n] * b for n, b in alloc.bits.items()) <= budget
    if method == "exact":
        best = min((sum(want[n][b] for n, b in zip(sizes, combo)), combo)
                   for combo in itertools.product((2, 4, 8), repeat=3)
                   if sum(sizes[n] * b for n, b in zip(sizes, combo)) <= budget)
        assert tuple(alloc.bits[n] for n in sizes) == best[1]


def test_layer_bits_of_a_two_input_model_take_the_tuple_as_its_inputs():
    """A tuple of arrays is the inputs of a multi-input model, run as one batch (run_batch)."""
    from refcomp.nn import Graph
    from refcomp.nn.layers.arithmetic import Add

    g = Graph(inputs=["a", "b"])
    g.add("fa", Linear(3, 4, rng=0), "a")
    g.add("fb", Linear(2, 4, rng=1), "b")
    g.add("sum", Add(), "fa", "fb")
    g.outputs = ["sum"]
    xa, xb = np.random.default_rng(0).normal(size=(5, 3)), np.random.default_rng(1).normal(size=(5, 2))
    alloc, sens = select_layer_bits(g, (xa, xb), 8, bit_choices=(2, 8), group_size=None)
    ref = g.forward(xa, xb).astype(np.float64)
    q, _ = quantize_weights(g, bits={"fb": 2})
    assert sens["fb"][2] == pytest.approx(float(np.mean((q.forward(xa, xb) - ref) ** 2)), rel=1e-9)
    assert alloc.bits == {"fa": 8, "fb": 8}


def test_model_bytes_counts_weights_and_biases():
    m = _cnn()
    assert model_bytes(m) == 4 * (2 * 1 * 2 * 2 + 2 + 8 * 3 + 3)
    h, _ = cast_model(m)
    assert model_bytes(h) == 2 * (8 + 24) + 4 * (2 + 3)                    # 16-bit weights, float32 biases
    nb = Sequential(("fc", Linear(4, 2, bias=False, rng=0)))
    assert model_bytes(nb) == 4 * 8


def test_mixed_bits_model_quantizes_in_groups_of_16_and_reports_its_budget():
    """By default the sensitivities, the bytes and the returned model all use groups of 16 (the model is
    quantize_weights' at the chosen widths); a budget of exactly every layer at 2 bits (with the float32
    biases) is met, one byte less is refused as budget_bytes; widths are 2…8 bits."""
    from refcomp.compress.precision.model import mixed_bits_model

    m = small_mlp(2, sizes=(16, 32, 16, 4))
    x = np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32)
    floor = model_bytes(quantize_weights(m, bits=2, group_size=16)[0])   # codes, scales and biases
    q, rep = mixed_bits_model(m, x, floor, bit_choices=(2, 4))
    assert rep["bits"] == {"fc0": 2, "fc1": 2, "fc2": 2} and rep["bytes"] == floor == rep["budget_bytes"]
    want = _sensitivity_by_hand(m, x, (2, 4), 16)
    for name in want:
        np.testing.assert_allclose([rep["sensitivity"][name][b] for b in (2, 4)], [want[name][b] for b in (2, 4)],
                                   rtol=1e-9)
    big = model_bytes(m)
    q, rep = mixed_bits_model(m, x, big, bit_choices=(2, 4))
    ref, _ = quantize_weights(m, bits=rep["bits"], group_size=16)
    assert rep["budget_bytes"] == big and rep["bytes"] == model_bytes(ref)
    np.testing.assert_array_equal(q.forward(x), ref.forward(x))
    _, rep = mixed_bits_model(m, x, big, bit_choices=(2, 4), group_size=8)   # the group size reaches the table
    want = _sensitivity_by_hand(m, x, (2, 4), 8)
    np.testing.assert_allclose([rep["sensitivity"][n][b] for n in want for b in (2, 4)],
                               [want[n][b] for n in want for b in (2, 4)], rtol=1e-9)
    with pytest.raises(ValidationError, match="budget_bytes"):
        mixed_bits_model(m, x, floor - 1, bit_choices=(2, 4))
    with pytest.raises(ValidationError, match="bit_choices"):
        mixed_bits_model(m, x, big, bit_choices=(2, 9))


def test_the_executor_given_runs_one_task_per_layer():
    """select_layer_bits and mixed_bits_model hand their layer tasks to the caller's executor."""
    from concurrent.futures import ThreadPoolExecutor

    from refcomp.compress.precision.model import mixed_bits_model

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn, *args, **kwargs):
            Counting.submitted += 1
            return super().submit(fn, *args, **kwargs)

    m = small_mlp(1, sizes=(8, 12, 8, 4))
    x = np.random.default_rng(2).normal(size=(8, 8)).astype(np.float32)
    with Counting(max_workers=1) as ex:
        select_layer_bits(m, x, 8, bit_choices=(2, 8), executor=ex)
        assert Counting.submitted == 3
        mixed_bits_model(m, x, model_bytes(m), bit_choices=(2, 8), executor=ex)
        assert Counting.submitted == 6
