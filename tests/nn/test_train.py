"""Training end to end (short CI versions of the accuracy runs), models, formats in layers."""

import io

import numpy as np
import pytest

from refcomp import datasets, models, nn
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats.base import WeightFormat
from refcomp.nn import Linear, Sequential, train


def test_digits_mlp_reaches_96_percent():
    train_set, test_set = datasets.load_split("digits", seed=0)
    model = models.digits_mlp(0)
    hist = nn.train(model, train_set, epochs=30, lr=0.05, momentum=0.9, rng=0, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"] / 5
    assert nn.evaluate(model, test_set)["accuracy"] >= 0.96


def test_training_is_deterministic_given_seeds():
    x, y = datasets.digits()
    runs = []
    for _ in range(2):
        m = models.digits_mlp(3)
        nn.train(m, (x[:300], y[:300]), epochs=2, rng=5, progress=False)
        runs.append(m["fc2"].weight.data.copy())
    np.testing.assert_array_equal(*runs)


def test_lenet_300_100_short_run_on_mnist(mnist_dir):
    (xtr, ytr), (xte, yte) = datasets.mnist_fixture(mnist_dir, n_train=4000, n_test=1000, seed=0)
    model = models.lenet_300_100(0)
    nn.train(model, (xtr, ytr), epochs=3, lr=0.05, rng=0, progress=False)
    assert nn.evaluate(model, (xte, yte))["accuracy"] >= 0.88


def test_progress_is_quiet_off_terminal_and_lines_on_request():
    x, y = datasets.digits()
    out = io.StringIO()
    nn.train(models.digits_mlp(0), (x[:128], y[:128]), epochs=2, progress="auto", stream=out)
    assert out.getvalue() == ""
    nn.train(models.digits_mlp(0), (x[:128], y[:128]), epochs=2, progress="epoch", stream=out,
             val_data=(x[128:256], y[128:256]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "samples/s" in lines[0] and "val_acc" in lines[1]


def test_evaluate_restores_mode_and_history_fields():
    x, y = datasets.digits()
    m = models.digits_mlp(0).train()
    nn.evaluate(m, (x[:50], y[:50]))
    assert m.training
    h = nn.train(m, (x[:64], y[:64]), epochs=1, progress=False)
    assert set(h[0]) >= {"epoch", "lr", "loss", "accuracy", "seconds", "samples_per_s"}


def test_divergence_raises_instead_of_nan():
    x, y = datasets.digits()
    with pytest.raises(ValidationError, match="diverged|finite"):
        # least squares with a step far above 2/λ_max: the iterates grow geometrically to inf
        onehot = np.eye(10, dtype=np.float32)[y]
        nn.train(nn.Sequential(nn.Linear(64, 10, rng=0)), (x * 100, onehot), epochs=50, lr=10.0,
                 loss=nn.MSELoss(), progress=False)


class ScaledWeight(WeightFormat):
    """A non-trainable format: int8 codes times one scale (stands in for QTensor)."""

    def __init__(self, w):
        self.scale = np.abs(w).max() / 127
        self.codes = np.round(w / self.scale).astype(np.int8)
        self.shape = w.shape

    def to_dense(self):
        return (self.codes * self.scale).astype(np.float32)

    @property
    def nbytes(self):
        return self.codes.nbytes + 4


def test_layer_goes_through_its_weight_format():
    rng = np.random.default_rng(0)
    lin = nn.Linear(6, 4, rng=0)
    q = ScaledWeight(lin.weight.data)
    lin.weight = q
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(lin.forward(x), x @ q.to_dense().T + lin.bias.data, rtol=1e-6)
    dx = lin.backward(np.ones((3, 4), np.float32))
    np.testing.assert_allclose(dx, np.ones((3, 4)) @ q.to_dense(), rtol=1e-6)
    # not trainable: no gradient, not in parameters(), optimizer leaves it alone
    assert [n for n, _ in lin.named_parameters()] == ["bias"]
    assert lin.num_parameters() == 28
    conv = nn.Conv2d(2, 3, 3, rng=0)
    conv.weight = ScaledWeight(conv.weight.data)
    y = conv.forward(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    assert conv.backward(np.ones_like(y)).shape == (1, 2, 5, 5)


def test_frozen_dense_weight_gets_no_gradient():
    lin = nn.Linear(3, 2, rng=0)
    lin.weight.trainable = False
    lin.forward(np.ones((1, 3), np.float32))
    lin.backward(np.ones((1, 2), np.float32))
    assert lin.weight.grad is None


def test_bad_inputs_raise_refcomp_errors():
    with pytest.raises(ShapeError, match="x"):
        nn.Linear(3, 2).forward(np.ones((2, 4), np.float32))
    with pytest.raises(ShapeError, match="x"):
        nn.Conv2d(1, 1, 5).forward(np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(ValidationError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValidationError, match="backward"):
        nn.Linear(3, 2).backward(np.ones((1, 2)))
    with pytest.raises(ValidationError, match="target"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValidationError, match="logits"):
        nn.CrossEntropyLoss()(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValidationError, match="kernel_size"):
        nn.MaxPool2d(0)
    with pytest.raises(ValidationError, match="rng"):
        nn.Linear(2, 2, rng="seed")


def test_sequential_names_and_replacement():
    m = nn.Sequential(("a", nn.Linear(2, 3, rng=0)), ("b", nn.ReLU()))
    assert m[0] is m["a"] and len(m) == 2
    m["a"] = nn.Linear(2, 3, rng=1)
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias"]
    with pytest.raises(ValidationError):
        m.add("a", nn.ReLU())
    sd = m.state_dict()
    m2 = nn.Sequential(("a", nn.Linear(2, 3)), ("b", nn.ReLU()))
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2["a"].weight.data, m["a"].weight.data)


def test_progress_bar_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    from refcomp.progress import Display

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class DrawNow:
        """Draws the bars at each batch (else they are drawn 10 times a second: maybe never in a short run)."""
        def on_batch_start(self, x, y):
            shown.refresh()

    x, y = datasets.digits()
    out = Terminal()
    with Display(out) as shown:
        nn.train(models.digits_mlp(0), (x[:256], y[:256]), epochs=2, progress="auto", callbacks=[DrawNow()])
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "loss" in text and "acc" in text


def test_a_failed_training_takes_its_bar_off_a_shared_display(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    from refcomp.progress import Display

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Fail:
        def on_batch_start(self, x, y):
            shown.refresh()
            raise RuntimeError("stop")

    x, y = datasets.digits()
    term = Terminal()
    with Display(term) as shown:
        with pytest.raises(RuntimeError):
            nn.train(models.digits_mlp(0), (x[:256], y[:256]), epochs=1, progress="auto", callbacks=[Fail()])
        shown.print("after")
        after = term.getvalue().split("after")[-1]
    assert "epoch 1/1" in term.getvalue() and "epoch 1/1" not in after


def test_skipping_the_input_gradient_keeps_parameter_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    grads = []
    for input_grad in (True, False):
        m = models.lenet5(0)
        dy = np.ones((4, 10), np.float32)
        m.forward(x)
        dx = m.backward(dy, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads.append({n: p.grad.copy() for n, p in m.named_parameters()})
    for n in grads[0]:
        np.testing.assert_array_equal(grads[0][n], grads[1][n])


def test_tuple_targets_and_callbacks_reach_the_loss():
    """y may be a tuple of per-sample targets cut like x; callbacks see every batch and epoch."""
    from refcomp.nn import Linear, Sequential

    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    labels = rng.integers(0, 2, 10)
    extra = np.arange(10) * 100  # a second target, tied to each sample

    class Recorder:
        def __init__(self):
            self.batches, self.epochs, self.seen_pairs = [], [], []

        def on_batch_start(self, xb, yb):
            self.batches.append(len(xb))

        def on_epoch_end(self, rec):
            self.epochs.append(rec["epoch"])

        # a loss that checks the targets stay paired with their samples
        def forward(self, z, y):
            lb, ex = y
            self.seen_pairs.extend(zip(lb.tolist(), ex.tolist()))
            self._g = np.zeros_like(z)
            return 0.0

        def backward(self):
            return self._g

    r = Recorder()
    model = Sequential(Linear(3, 2, rng=0))
    hist = nn.train(model, (x, (labels, extra)), epochs=2, batch_size=4, loss=r, callbacks=[r], progress=False)
    assert r.batches == [4, 4, 2] * 2 and r.epochs == [1, 2] and len(hist) == 2
    assert sorted(r.seen_pairs) == sorted(list(zip(labels.tolist(), extra.tolist())) * 2)
    assert np.isfinite(hist[0]["accuracy"])  # the first target holds class labels


# ------------------------------------------------ the loop against SGD written out (an oracle sharing no code)

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _full_batch_problem(seed=0, n=40, d=5, k=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    model = Sequential(("fc", Linear(d, k, rng=rng)))
    return model, x, y


def _sgd_by_hand(w, b, x, y, lrs, momentum, grad_of_logits):
    """w, b after full-batch SGD with the given per-epoch lrs: v ← μ v + g (v₀ = g), p ← p − lr v."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    vw = vb = None
    for lr in lrs:
        g = grad_of_logits(x @ w.T + b)                  # ∂L/∂z (n, k), the mean already in it
        gw, gb = g.T @ x, g.sum(axis=0)
        vw = gw if vw is None else momentum * vw + gw
        vb = gb if vb is None else momentum * vb + gb
        w, b = w - lr * vw, b - lr * vb
    return w, b


@pytest.mark.parametrize("schedule, momentum", [("cosine", 0.0), ("cosine", 0.9), ("constant", 0.5)])
def test_train_is_sgd_with_its_schedule_written_out(schedule, momentum):
    """Full-batch training = SGD by hand on the cross-entropy gradient (softmax − onehot)/N with
    lr_e = lr·(1 + cos(π e / E))/2 (cosine) or lr: a loop that ignores the schedule, the momentum or
    the batch mean fails here."""
    model, x, y = _full_batch_problem()
    w0, b0 = model["fc"].weight.to_dense().copy(), model["fc"].bias.data.copy()
    epochs, lr = 4, 0.3
    train(model, (x, y), epochs=epochs, batch_size=len(x), lr=lr, momentum=momentum, schedule=schedule,
          rng=0, progress=False)
    lrs = [lr * (1 + np.cos(np.pi * e / epochs)) / 2 if schedule == "cosine" else lr for e in range(epochs)]
    onehot = np.eye(3)[y]
    w, b = _sgd_by_hand(w0, b0, x.astype(np.float64), y, lrs, momentum,
                        lambda z: (_softmax(z) - onehot) / len(x))
    np.testing.assert_allclose(model["fc"].weight.to_dense(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model["fc"].bias.data, b, rtol=1e-4, atol=1e-5)
