"""Distillation trainer (gradient by finite differences, cached logits) and fp16 training with loss scaling."""

import numpy as np
import pytest

from refcomp.compress.distill.loss import distillation_loss
from refcomp.compress.distill.train import distill_train, teacher_logits
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats.dense import Dense
from refcomp.nn import Dropout, Linear, ReLU, Sequential, evaluate

from ..models_for_tests import digits_split, small_mlp
from ..._support.terminal import TerminalStream


def test_distillation_gradient_through_student_by_finite_differences():
    """dL/dθ from the trainer's path (loss gradient, then student.backward) vs central differences."""
    rng = np.random.default_rng(0)
    student = Sequential(("fc0", Linear(6, 5, rng=rng, dtype="float64")), ("relu", ReLU()),
                         ("fc1", Linear(5, 4, rng=rng, dtype="float64")))
    x = rng.normal(size=(7, 6))
    t = rng.normal(size=(7, 4)) * 3
    y = rng.integers(0, 4, size=7)

    def loss():
        return distillation_loss(student.forward(x), t, y, temperature=3.0, alpha=0.3)[0]

    _, g = distillation_loss(student.forward(x), t, y, temperature=3.0, alpha=0.3)
    student.zero_grad()
    student.backward(g)
    for name, p in student.named_parameters():
        arr = p.data
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + 1e-6
            lp = loss()
            arr[i] = old - 1e-6
            lm = loss()
            arr[i] = old
            num[i] = (lp - lm) / 2e-6
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-8, err_msg=name)


def test_cached_logits_give_the_same_training():
    tr, te = digits_split()
    teacher = small_mlp(1, sizes=(64, 32, 10))
    teacher.add("drop", Dropout(0.5, rng=0))          # eval mode must switch it off
    data = (tr[0][:300], tr[1][:300])
    runs = []
    for cache in (True, False):
        student = small_mlp(2, sizes=(64, 8, 10))
        h = distill_train(student, teacher, data, epochs=2, cache_logits=cache, rng=0)
        runs.append((student["fc0"].weight.data.copy(), h[-1]["loss"]))
    # equal up to float rounding: BLAS sums in another order for a 300-row than for a 64-row batch
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-4, atol=1e-6)
    assert abs(runs[0][1] - runs[1][1]) < 1e-5
    assert teacher.training                          # the teacher's mode is restored
    np.testing.assert_array_equal(teacher_logits(teacher, te[0][:5]), teacher_logits(teacher, te[0][:5]))


def test_distilled_student_learns_on_digits():
    tr, te = digits_split()
    from refcomp.nn import train

    teacher = small_mlp(1, sizes=(64, 64, 10))
    train(teacher, tr, epochs=15, lr=0.05, rng=0, progress=False)
    student = small_mlp(2, sizes=(64, 8, 10))
    h = distill_train(student, teacher, tr, epochs=15, alpha=0.2, temperature=3.0, val_data=te)
    assert h[-1]["val_accuracy"] >= 0.85
    assert evaluate(student, te)["accuracy"] == h[-1]["val_accuracy"]


def test_distill_train_bad_input():
    m = small_mlp(0, sizes=(4, 3))
    with pytest.raises(ValidationError, match="data"):
        distill_train(m, m, (np.zeros((2, 4), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ValidationError, match="alpha"):
        distill_train(m, m, (np.zeros((2, 4), np.float32), np.zeros(2, np.int64)), alpha=1.5)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.3), (8.0, 0.0)])
@pytest.mark.parametrize("cache_logits", [True, False])
def test_distill_train_is_sgd_on_hintons_gradient_written_out(temperature, alpha, cache_logits):
    """Full-batch distillation = SGD by hand on ∂L/∂s = [α (softmax(s) − onehot) + (1 − α) T
    (softmax(s/T) − softmax(t/T))] / N (Hinton et al. 2015 §2, eq. 3 of docs/distillation.md, written
    here from the paper): a trainer that drops the temperature, the T factor, the teacher or α fails."""
    rng = np.random.default_rng(0)
    n, d, k = 40, 6, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    teacher = Sequential(("fc", Linear(d, k, rng=rng)))
    teacher["fc"].weight = Dense(teacher["fc"].weight.to_dense() * 3)     # confident, so that T matters
    student = Sequential(("fc", Linear(d, k, rng=rng)))
    w, b = student["fc"].weight.to_dense().astype(np.float64), student["fc"].bias.data.astype(np.float64)
    t = x.astype(np.float64) @ teacher["fc"].weight.to_dense().T.astype(np.float64) + teacher["fc"].bias.data
    lr, epochs = 0.5, 3
    distill_train(student, teacher, (x, y), epochs=epochs, batch_size=n, lr=lr, momentum=0.0, schedule="constant",
                  alpha=alpha, temperature=temperature, cache_logits=cache_logits, rng=0)
    onehot, xd = np.eye(k)[y], x.astype(np.float64)
    for _ in range(epochs):
        s = xd @ w.T + b
        g = (alpha * (_softmax(s) - onehot)
             + (1 - alpha) * temperature * (_softmax(s / temperature) - _softmax(t / temperature))) / n
        w, b = w - lr * g.T @ xd, b - lr * g.sum(axis=0)
    np.testing.assert_allclose(student["fc"].weight.to_dense(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(student["fc"].bias.data, b, rtol=1e-4, atol=1e-5)


def test_distillation_closes_most_of_the_gap_on_mnist(mnist_dir):
    """The headline, CI-sized: a 784-32-10 student on 1,000 labelled MNIST images trained alone, and
    distilled from a LeNet-300-100 teacher (T = 4, α = 0.1; Hinton et al. 2015 §3) on the same images.
    Measured (3 seeds of the subset): alone 87.7-88.4 %, distilled 91.7-92.3 %, teacher 94.5 %."""
    from refcomp.datasets import mnist_fixture
    from refcomp.models import lenet_300_100
    from refcomp.nn import train

    tr, te = mnist_fixture(mnist_dir)
    flat = lambda d: (d[0].reshape(len(d[0]), -1), d[1])  # noqa: E731
    tr, te = flat(tr), flat(te)
    teacher = lenet_300_100(0)
    train(teacher, tr, epochs=4, lr=0.05, rng=0, progress=False)
    idx = np.random.default_rng(0).permutation(len(tr[0]))[:1000]
    subset = (tr[0][idx], tr[1][idx])

    def student():
        rng = np.random.default_rng(100)
        return Sequential(("fc1", Linear(784, 32, rng=rng)), ("relu", ReLU()), ("fc2", Linear(32, 10, rng=rng)))

    alone, distilled = student(), student()
    train(alone, subset, epochs=30, lr=0.05, rng=0, progress=False)
    distill_train(distilled, teacher, subset, epochs=30, lr=0.05, alpha=0.1, temperature=4.0, rng=0)
    acc = {k: evaluate(m, te)["accuracy"] for k, m in (("teacher", teacher), ("alone", alone),
                                                        ("distilled", distilled))}
    assert acc["distilled"] - acc["alone"] >= 0.02, acc
    assert acc["distilled"] - acc["alone"] >= 0.4 * (acc["teacher"] - acc["alone"]), acc


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_hard_label_distill_train_is_sgd_on_the_teachers_argmax(alpha):
    """targets="hard": full-batch SGD by hand on [softmax(s) − α onehot(y) − (1 − α) onehot(argmax t)] / N
    (eq. 9). The teacher is built to disagree with y on every row, so taking the hard labels from y fails."""
    rng = np.random.default_rng(1)
    n, d, k = 30, 5, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    teacher = Sequential(("fc", Linear(d, k, rng=rng)))
    t = x.astype(np.float64) @ teacher["fc"].weight.to_dense().T.astype(np.float64) + teacher["fc"].bias.data
    y = (t.argmax(axis=1) + 1) % k
    student = Sequential(("fc", Linear(d, k, rng=rng)))
    w, b = student["fc"].weight.to_dense().astype(np.float64), student["fc"].bias.data.astype(np.float64)
    lr, epochs = 0.5, 3
    distill_train(student, teacher, (x, y), epochs=epochs, batch_size=n, lr=lr, momentum=0.0, schedule="constant",
                  alpha=alpha, targets="hard", rng=0)
    xd, target = x.astype(np.float64), alpha * np.eye(k)[y] + (1 - alpha) * np.eye(k)[t.argmax(axis=1)]
    for _ in range(epochs):
        g = (_softmax(xd @ w.T + b) - target) / n
        w, b = w - lr * g.T @ xd, b - lr * g.sum(axis=0)
    np.testing.assert_allclose(student["fc"].weight.to_dense(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(student["fc"].bias.data, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValidationError, match="targets"):
        distill_train(student, teacher, (x, y), targets="argmax")


def test_hard_label_student_follows_the_teacher_not_the_labels():
    """A teacher that maps class c to (c + 1) mod 10: the hard-label student (α = 0) learns its labels."""
    tr, te = digits_split()
    from refcomp.nn import train

    teacher = small_mlp(1, sizes=(64, 32, 10))
    shifted = (tr[0], (tr[1] + 1) % 10)
    train(teacher, shifted, epochs=15, lr=0.05, rng=0, progress=False)
    student = small_mlp(2, sizes=(64, 16, 10))
    distill_train(student, teacher, tr, epochs=10, alpha=0.0, targets="hard", rng=0)
    assert evaluate(student, (te[0], (te[1] + 1) % 10))["accuracy"] >= 0.85


# --- defaults, the teacher's passes, the settings passed on to the loop


class _Counting:
    """Wraps a teacher's forward to count its passes and the rows of each."""

    def __init__(self, model):
        self.sizes = []
        inner = model.forward

        def forward(x):
            self.sizes.append(len(x))
            return inner(x)

        model.forward = forward


def _small(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    teacher = Sequential(("fc", Linear(5, 3, rng=rng)))
    student = Sequential(("fc", Linear(5, 3, rng=rng)))
    return x, y, teacher, student


def test_teacher_logits_are_computed_in_batches_of_1000():
    x, _, teacher, _ = _small(0, 2500)
    count = _Counting(teacher)
    want = x.astype(np.float64) @ teacher["fc"].weight.to_dense().T.astype(np.float64) + teacher["fc"].bias.data
    np.testing.assert_allclose(teacher_logits(teacher, x), want, rtol=1e-5, atol=1e-5)
    assert count.sizes == [1000, 1000, 500]


def test_the_teacher_runs_once_when_cached_else_once_per_batch():
    # 20 rows in batches of 7 for 2 epochs: one pass of 20 rows cached, else 2 x (7, 7, 6)
    for cache, want in ((True, [20]), (False, [7, 7, 6] * 2)):
        x, y, teacher, student = _small(1, 20)
        count = _Counting(teacher)
        distill_train(student, teacher, (x, y), epochs=2, batch_size=7, cache_logits=cache)
        assert count.sizes == want, cache


def test_distill_train_defaults():
    # 10 epochs of 64-row batches, lr 0.05, momentum 0.9, cosine, alpha 0.5, T = 4, soft targets, cached, seed 0
    import copy

    x, y, teacher, student = _small(2, 70)
    twin = copy.deepcopy(student)
    count = _Counting(teacher)
    h = distill_train(student, teacher, (x, y))
    assert count.sizes == [70]                                   # the logits cached: one teacher pass
    want = distill_train(twin, teacher, (x, y), epochs=10, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine",
                         alpha=0.5, temperature=4.0, targets="soft", cache_logits=True, rng=0)
    assert len(h) == 10 and [r["loss"] for r in h] == [r["loss"] for r in want]
    np.testing.assert_array_equal(student["fc"].weight.to_dense(), twin["fc"].weight.to_dense())


def test_distillation_loss_defaults_and_gradient_dtype():
    # T = 4, alpha = 0.5, soft targets; the gradient comes back in the logits' dtype
    from refcomp.compress.distill.train import DistillationLoss

    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1])
    loss = DistillationLoss()
    want, grad = distillation_loss(s, t, y, temperature=4.0, alpha=0.5)
    assert loss.forward(s, (y, t)) == want
    g = loss.backward()
    assert g.dtype == np.float32 and np.array_equal(g, grad.astype(np.float32))


def test_the_schedule_and_the_rng_are_passed_on():
    # cosine: lr_e = lr (1 + cos(pi e / E)) / 2 for epochs e = 0 .. E-1; the rng orders the batches
    import math

    x, y, teacher, _ = _small(4, 20)
    runs = {}
    for rng in (3, np.random.default_rng(3), 0):
        student = _small(4, 20)[3]
        h = distill_train(student, teacher, (x, y), epochs=3, batch_size=7, lr=0.1, schedule="cosine", rng=rng)
        assert [r["lr"] for r in h] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])
        runs[str(rng)[:9]] = student["fc"].weight.to_dense()
    same, other = list(runs.values())[:2], list(runs.values())[2]
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.array_equal(same[0], other)


def test_distill_train_data_checks():
    x, y, teacher, student = _small(5, 6)
    for data, error, argument in (((x, y, y), ValidationError, "data"), ((x, y[:5]), ShapeError, "data"),
                                  ((x[:0], y[:0]), ShapeError, "data")):
        with pytest.raises(error, match="same non-zero length" if error is ShapeError else "pair") as e:
            distill_train(student, teacher, data, epochs=1)
        assert e.value.argument == argument
    assert len(distill_train(student, teacher, (x[:1], y[:1]), epochs=1)) == 1      # one row is data


def test_distill_train_draws_no_progress_bars_even_on_a_terminal(monkeypatch):
    import sys

    out = TerminalStream()
    monkeypatch.setattr(sys, "stdout", out)
    x, y, teacher, student = _small(6, 20)
    distill_train(student, teacher, (x, y), epochs=1)
    assert out.getvalue() == ""
