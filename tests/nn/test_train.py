"""Training end to end (short CI versions of the accuracy runs), models, formats in layers."""

import io
import re
import time

import numpy as np
import pytest

from refcomp import datasets, models, nn
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats.base import WeightFormat
from refcomp.nn import Linear, Module, Sequential, train

from .._support.terminal import TerminalStream


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



class _DrawEachBatch:
    """Draws the open bars at each batch (else they are drawn 10 times a second: maybe never in a short run)."""

    def on_batch_start(self, x, y):
        from refcomp import progress
        progress._OPEN[-1].refresh()


def test_progress_bar_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    from refcomp.progress import Display

    x, y = datasets.digits()
    out = TerminalStream()
    with Display(out):
        nn.train(models.digits_mlp(0), (x[:256], y[:256]), epochs=2, progress="auto", callbacks=[_DrawEachBatch()])
    text = out.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "loss" in text and "acc" in text


def test_a_failed_training_takes_its_bar_off_a_shared_display(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    from refcomp.progress import Display

    class Fail:
        def on_batch_start(self, x, y):
            shown.refresh()
            raise RuntimeError("stop")

    x, y = datasets.digits()
    term = TerminalStream()
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


# ------------------------------------------------ the loop's contract, piece by piece (tiny problems, hand oracles)

class Recorder:
    """A callback that records what the loop shows it: batch sizes and orders, the model's mode, the records."""

    def __init__(self, model=None):
        self.model, self.xs, self.ys, self.modes, self.records = model, [], [], [], []

    def on_batch_start(self, xb, yb):
        self.xs.append(xb.copy())
        self.ys.append(yb.copy())
        if self.model is not None:
            self.modes.append(self.model.training)

    def on_epoch_end(self, rec):
        self.records.append(rec)


def _tiny(n=10, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32) + rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    return Sequential(("fc", Linear(3, 2, rng=0))), x, y


@pytest.mark.parametrize("data", [np.zeros((2, 3)), (np.zeros((2, 3)),), (np.zeros((2, 3)), np.zeros(2), np.zeros(2)),
                                  "xy"])
def test_data_must_be_a_pair(data):
    with pytest.raises(ValidationError) as e:
        train(Sequential(Linear(3, 2)), data, progress=False)
    assert e.value.argument == "data"
    with pytest.raises(ValidationError) as e:
        nn.evaluate(Sequential(Linear(3, 2)), data)
    assert e.value.argument == "data"


def test_data_x_and_every_target_have_the_same_non_zero_length():
    model = Sequential(Linear(3, 2))
    for data in ((np.zeros((3, 3)), np.zeros(2, int)), (np.zeros((0, 3)), np.zeros(0, int)),
                 (np.zeros((2, 3)), (np.zeros(2, int), np.zeros(3))), (np.zeros((2, 3)), (np.zeros(3, int), np.zeros(2)))):
        with pytest.raises(ShapeError) as e:
            train(model, data, progress=False)
        assert e.value.argument == "data"
    # a list pair is a pair too
    assert len(train(model, [np.zeros((2, 3), np.float32), np.zeros(2, int)], progress=False)) == 1


@pytest.mark.parametrize("epochs", [0, -1, True, 1.0, "2"])
def test_epochs_is_an_int_of_at_least_one(epochs):
    with pytest.raises(ValidationError) as e:
        train(Sequential(Linear(3, 2)), (np.zeros((2, 3)), np.zeros(2, int)), epochs=epochs, progress=False)
    assert e.value.argument == "epochs"


def test_schedule_and_progress_are_checked():
    model, x, y = _tiny()
    with pytest.raises(ValidationError) as e:
        train(model, (x, y), schedule="linear", progress=False)
    assert e.value.argument == "schedule"
    with pytest.raises(ValidationError) as e:
        train(model, (x, y), progress="bars")
    assert e.value.argument == "progress"


def test_one_epoch_visits_every_sample_once_in_the_seeded_order():
    # the batch order is default_rng(rng).permutation(n) cut in batch_size pieces; the default rng is 0
    model, x, y = _tiny()
    for kwargs, seed in (({}, 0), ({"rng": 3}, 3), ({"rng": np.random.default_rng(4)}, 4)):
        r = Recorder()
        train(model, (x, y), epochs=1, batch_size=4, callbacks=[r], progress=False, **kwargs)
        order = np.random.default_rng(seed).permutation(10)
        assert [len(b) for b in r.xs] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate(r.xs), x[order])
        np.testing.assert_array_equal(np.concatenate(r.ys), y[order])
    # the default batch size is 64, and the default is one epoch
    model, x, y = _tiny(n=130)
    r = Recorder()
    assert len(train(model, (x, y), callbacks=[r], progress=False)) == 1
    assert [len(b) for b in r.xs] == [64, 64, 2]


def test_the_default_optimizer_is_sgd_with_lr_0_05_and_momentum_0_9():
    model, x, y = _full_batch_problem(seed=1)
    w0, b0 = model["fc"].weight.to_dense().copy(), model["fc"].bias.data.copy()
    hist = train(model, (x, y), epochs=3, batch_size=len(x), schedule="constant", progress=False)
    assert [h["lr"] for h in hist] == [0.05] * 3
    onehot = np.eye(3)[y]
    w, b = _sgd_by_hand(w0, b0, x.astype(np.float64), y, [0.05] * 3, 0.9, lambda z: (_softmax(z) - onehot) / len(x))
    np.testing.assert_allclose(model["fc"].weight.to_dense(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model["fc"].bias.data, b, rtol=1e-4, atol=1e-5)


def test_a_given_optimizer_keeps_its_lr_without_a_schedule_and_follows_a_callable_one():
    model, x, y = _tiny()
    opt = nn.SGD(model.parameters(), lr=0.2)
    hist = train(model, (x, y), epochs=2, optimizer=opt, schedule=None, progress=False)
    assert [h["lr"] for h in hist] == [0.2, 0.2] and opt.lr == 0.2
    hist = train(model, (x, y), epochs=3, optimizer=opt, schedule=lambda e: np.float32(0.5) / (e + 1), progress=False)
    assert [h["lr"] for h in hist] == [float(np.float32(0.5) / k) for k in (1, 2, 3)]
    assert all(type(h["lr"]) is float for h in hist)
    # "constant" holds the optimizer's lr of the start, whatever changes it between epochs
    opt = nn.SGD(model.parameters(), lr=0.2)

    class Halve:
        def on_epoch_end(self, rec):
            opt.lr /= 2

    hist = train(model, (x, y), epochs=2, optimizer=opt, schedule="constant", callbacks=[Halve()], progress=False)
    assert [h["lr"] for h in hist] == [0.2, 0.2]
    # the cosine schedule starts from the given optimizer's lr, not from train's lr argument
    hist = train(model, (x, y), epochs=2, optimizer=nn.SGD(model.parameters(), lr=0.4), lr=9.0, progress=False)
    assert [h["lr"] for h in hist] == [0.4, 0.2]


def test_the_record_is_the_mean_loss_and_accuracy_over_the_samples_seen():
    # an optimizer that never steps: the record is the loss and accuracy of the fixed model, by hand
    model, x, y = _tiny(n=11)
    w, b = model["fc"].weight.to_dense().astype(np.float64), model["fc"].bias.data.astype(np.float64)
    z = x.astype(np.float64) @ w.T + b
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    r = Recorder()
    t0 = time.perf_counter()
    hist = train(model, (x, y), epochs=2, batch_size=4, optimizer=_Frozen(), callbacks=[r], progress=False)
    wall = time.perf_counter() - t0
    assert r.records == hist and [h["epoch"] for h in hist] == [1, 2]
    for h in hist:
        assert h["loss"] == pytest.approx(-logp[np.arange(11), y].mean(), rel=1e-5)
        assert h["accuracy"] == pytest.approx(np.mean(z.argmax(axis=1) == y))
        assert 0 < h["seconds"] <= wall and h["samples_per_s"] == pytest.approx(11 / h["seconds"])
        assert "val_loss" not in h


def test_tuple_targets_count_the_samples_of_the_first():
    model, x, y = _tiny(n=11)
    hist = train(model, (x, (y, np.zeros(11))), epochs=1, batch_size=4, optimizer=_Frozen(), progress=False,
                 loss=_FirstTargetLoss())
    assert hist[0]["samples_per_s"] * hist[0]["seconds"] == pytest.approx(11)
    assert hist[0]["loss"] == pytest.approx(np.mean(y))      # the mean of per-batch means, weighted by size
    # the labels are the first target (the second is a float array that would count the zeros)
    z = x.astype(np.float64) @ model["fc"].weight.to_dense().T.astype(np.float64) + model["fc"].bias.data
    assert hist[0]["accuracy"] == pytest.approx(np.mean(z.argmax(axis=1) == y))


class _Frozen:
    """An optimizer that never changes the model."""

    lr = 0.1

    def step(self):
        pass


class _ConstantLoss:
    """L = a given constant, gradient 0: a loss that needs its constructor's argument."""

    def __init__(self, value):
        self.value = value

    def forward(self, z, y):
        self._g = np.zeros_like(z)
        return self.value

    def backward(self):
        return self._g


class _FirstTargetLoss:
    """L = mean of the first target (whatever the logits): a loss whose value is known."""

    def forward(self, z, y):
        lb = y[0] if isinstance(y, tuple) else y
        self._g = np.zeros_like(z)
        return float(np.mean(lb))

    def backward(self):
        return self._g


def test_float_targets_have_no_accuracy_and_no_validation():
    model, x, _ = _tiny()
    target = np.zeros((10, 2), np.float32)
    hist = train(model, (x, target), epochs=1, loss=nn.MSELoss(), val_data=(x, target), progress=False)
    assert np.isnan(hist[0]["accuracy"]) and "val_loss" not in hist[0]
    # integer targets of rank 2 are not class labels either
    hist = train(model, (x, np.zeros((10, 2), np.int64)), epochs=1, loss=_FirstTargetLoss(), progress=False)
    assert np.isnan(hist[0]["accuracy"])
    # unsigned labels are class labels
    _, x, y = _tiny()
    hist = train(model, (x, y.astype(np.uint8)), epochs=1, progress=False)
    assert 0 <= hist[0]["accuracy"] <= 1


def test_the_model_trains_in_train_mode_and_is_left_in_eval_mode():
    model, x, y = _tiny()
    model.eval()
    r = Recorder(model)
    train(model, (x, y), epochs=2, batch_size=5, callbacks=[r], progress=False)
    assert r.modes == [True] * 4 and model.training is False


def test_validation_uses_plain_cross_entropy_and_the_losses_own_choice():
    model, x, y = _tiny()
    xv, yv = x[:6], y[:6]

    def plain_ce(m):
        z = m.forward(xv).astype(np.float64)
        logp = z - z.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        return -logp[np.arange(6), yv].mean(), np.mean(z.argmax(axis=1) == yv)

    # label smoothing trains; the validation loss is the plain cross-entropy
    hist = train(model, (x, y), epochs=1, loss=nn.CrossEntropyLoss(label_smoothing=0.3), val_data=(xv, yv),
                 progress=False)
    loss, acc = plain_ce(model)
    assert hist[0]["val_loss"] == pytest.approx(loss, rel=1e-5) and hist[0]["val_accuracy"] == pytest.approx(acc)

    # a subclass of the cross-entropy: a fresh one with its default arguments (here its own smoothing 0.2)
    class SmoothedByDefault(nn.CrossEntropyLoss):
        def __init__(self, label_smoothing=0.2):
            super().__init__(label_smoothing)

    hist = train(model, (x, y), epochs=1, loss=SmoothedByDefault(0.5), val_data=(xv, yv), progress=False)
    z = model.forward(xv).astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    smoothed = (0.8 * -logp[np.arange(6), yv] - (0.2 / 2) * logp.sum(axis=1)).mean()
    assert hist[0]["val_loss"] == pytest.approx(smoothed, rel=1e-5)

    class Named(_FirstTargetLoss):
        def validation_loss(self):
            return _ConstantLoss(7.0)

    hist = train(model, (x, y), epochs=1, loss=Named(), val_data=(xv, yv), progress=False)
    assert hist[0]["val_loss"] == pytest.approx(7.0)
    # a loss of another kind, without validation_loss(), measures the validation set itself
    hist = train(model, (x, y), epochs=1, loss=_ConstantLoss(3.0), val_data=(xv, yv), progress=False)
    assert hist[0]["val_loss"] == pytest.approx(3.0)


def test_the_model_is_told_it_need_not_compute_the_input_gradient():
    class Spy(Module):
        accepts_input_grad = True

        def __init__(self):
            self.inner, self.flags = Linear(3, 2, rng=0), []

        def forward(self, x):
            return self.inner.forward(x)

        def backward(self, dy, input_grad=True):
            self.flags.append(input_grad)
            return self.inner.backward(dy)

    class Plain(Spy):
        accepts_input_grad = False

        def backward(self, dy):           # no input_grad argument: must be called without one
            self.flags.append("plain")
            return self.inner.backward(dy)

    _, x, y = _tiny()
    spy = Spy()
    train(spy, (x, y), epochs=1, batch_size=5, progress=False)
    assert spy.flags == [False, False]
    plain = Plain()
    train(plain, (x, y), epochs=1, batch_size=5, progress=False)
    assert plain.flags == ["plain", "plain"]
    del Plain.accepts_input_grad, Spy.accepts_input_grad   # no attribute at all: the plain call
    plain = Plain()
    train(plain, (x, y), epochs=1, batch_size=5, progress=False)
    assert plain.flags == ["plain", "plain"]


def test_a_regularizer_adds_its_penalty_and_gradient_then_steps_after():
    class L2Spy:
        """R = c Σ w², ∂R/∂w = 2 c w; records the lr after_step is given."""

        c = 0.5

        def __init__(self):
            self.lrs, self.models = [], []

        def penalty(self, model):
            return self.c * sum(float(np.sum(p.data.astype(np.float64) ** 2)) for p in model.parameters())

        def add_gradient(self, model):
            for p in model.parameters():
                p.grad += 2 * self.c * p.data

        def after_step(self, model, lr):
            self.lrs.append(lr)
            self.models.append(model)

    model, x, y = _full_batch_problem(seed=2)
    w0, b0 = model["fc"].weight.to_dense().copy(), model["fc"].bias.data.copy()
    reg = L2Spy()
    hist = train(model, (x, y), epochs=2, batch_size=len(x), lr=0.1, momentum=0.0, schedule="constant",
                 regularizer=reg, progress=False)
    assert reg.lrs == [0.1, 0.1] and all(m is model for m in reg.models)
    # the first record: the cross-entropy of the initial model plus the penalty of the initial weights
    z = x.astype(np.float64) @ w0.T.astype(np.float64) + b0
    ce = -np.log(_softmax(z)[np.arange(len(x)), y]).mean()
    penalty = 0.5 * (np.sum(w0.astype(np.float64) ** 2) + np.sum(b0.astype(np.float64) ** 2))
    assert hist[0]["loss"] == pytest.approx(ce + penalty, rel=1e-5)
    # the weights: SGD on the cross-entropy gradient plus 2 c w (c = 0.5: plus w)
    w, b = w0.astype(np.float64), b0.astype(np.float64)
    onehot = np.eye(3)[y]
    for _ in range(2):
        g = (_softmax(x @ w.T + b) - onehot) / len(x)
        w, b = w - 0.1 * (g.T @ x + w), b - 0.1 * (g.sum(axis=0) + b)
    np.testing.assert_allclose(model["fc"].weight.to_dense(), w, rtol=1e-4, atol=1e-5)


def test_a_regularizer_without_after_step_is_fine():
    class Nothing:
        def penalty(self, model):
            return 1.0

        def add_gradient(self, model):
            pass

    model, x, y = _tiny()
    hist = train(model, (x, y), epochs=1, optimizer=_Frozen(), loss=_FirstTargetLoss(), regularizer=Nothing(),
                 progress=False)
    assert hist[0]["loss"] == pytest.approx(np.mean(y) + 1.0)


def test_a_loss_scaling_optimizer_takes_part_in_the_passes():
    calls = []

    class Mixed:
        """An optimizer with the mixed-precision hooks: records each, and halves the gradient it scales."""

        lr = 0.1

        def __init__(self, params):
            self.params = params

        def cast_input(self, x):
            calls.append("in")
            return x

        def cast_output(self, z):
            calls.append("out")
            return z

        def scale_gradient(self, g):
            calls.append("scale")
            return g * 0

        def step(self):
            calls.append("step")

    model, x, y = _tiny()
    w0 = model["fc"].weight.to_dense().copy()
    train(model, (x, y), epochs=1, batch_size=10, optimizer=Mixed(model.parameters()), progress=False)
    assert calls == ["in", "out", "scale", "step"]
    assert model["fc"].weight.grad.tolist() == np.zeros_like(w0).tolist()   # the scaled (zeroed) gradient
    with pytest.raises(ValidationError) as e:
        train(model, (x, y), optimizer=Mixed(model.parameters()), regularizer=object(), progress=False)
    assert e.value.argument == "regularizer"


def test_a_non_finite_output_stops_training_with_the_epoch():
    model, x, y = _tiny()
    x[3, 0] = np.inf
    with pytest.raises(ValidationError) as e:
        train(model, (x, y), epochs=1, batch_size=10, progress=False)
    assert e.value.argument == "loss" and "epoch 1" in str(e.value)


def test_epoch_lines_state_the_record():
    model, x, y = _tiny()
    out = io.StringIO()
    hist = train(model, (x, y), epochs=2, progress="epoch", stream=out, val_data=(x, y))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    for line, h in zip(lines, hist):
        want = (f"epoch {h['epoch']}/2 lr {h['lr']:.5f} loss {h['loss']:.4f} acc {h['accuracy']:.4f} "
                f"{h['samples_per_s']:.0f} samples/s {h['seconds']:.2f} s "
                f"val_loss {h['val_loss']:.4f} val_acc {h['val_accuracy']:.4f}")
        assert line == want
    out = io.StringIO()
    train(model, (x, y), epochs=1, progress="epoch", stream=out)
    assert out.getvalue().startswith("epoch 1/1 lr ") and "val_" not in out.getvalue()
    # progress False, None, True or a Display: no lines
    from refcomp.progress import Display
    for progress in (False, None, True, Display(io.StringIO())):
        out = io.StringIO()
        train(model, (x, y), epochs=1, progress=progress, stream=out)
        assert out.getvalue() == ""


def test_evaluate_is_the_mean_loss_and_accuracy_in_batches_of_1000():
    class Sizes(_FirstTargetLoss):
        def __init__(self):
            self.sizes = []

        def forward(self, z, y):
            self.sizes.append(len(y))
            return super().forward(z, y)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2500, 3)).astype(np.float32)
    y = rng.integers(0, 2, 2500)
    model = Sequential(("fc", Linear(3, 2, rng=0))).eval()
    loss = Sizes()
    r = nn.evaluate(model, (x, y), loss=loss)
    assert loss.sizes == [1000, 1000, 500] and model.training is False
    assert r["loss"] == pytest.approx(np.mean(y))
    z = x.astype(np.float64) @ model["fc"].weight.to_dense().T.astype(np.float64) + model["fc"].bias.data
    assert r["accuracy"] == pytest.approx(np.mean(z.argmax(axis=1) == y))
    # the default loss is the cross-entropy
    r = nn.evaluate(model, (x[:7], y[:7]), batch_size=3)
    assert r["loss"] == pytest.approx(-np.log(_softmax(z[:7])[np.arange(7), y[:7]]).mean(), rel=1e-5)


def test_bars_are_drawn_on_the_given_terminal_stream(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")      # a terminal that moves its cursor (CI may say dumb)
    x, y = datasets.digits()
    term = TerminalStream()
    nn.train(models.digits_mlp(0), (x[:256], y[:256]), epochs=1, batch_size=64, stream=term,
             callbacks=[_DrawEachBatch()])        # progress="auto", the default
    text = term.getvalue()
    # the bar: its epoch, samples seen of 256, and the running loss and accuracy to 4 decimals
    assert "epoch 1/1" in text and "64/256" in text and "192/256" in text and re.search(r"\bsamples\b", text)
    # a mean cross-entropy over 10 classes starts near ln 10 = 2.3: one digit before the point
    assert re.search(r"loss \d\.\d{4} acc [01]\.\d{4}", text)
    # targets that are not class labels: no accuracy on the bar either
    term = TerminalStream()
    nn.train(models.digits_mlp(0), (x[:128], np.eye(10, dtype=np.float32)[y[:128]]), epochs=1, loss=nn.MSELoss(),
             stream=term, callbacks=[_DrawEachBatch()])
    assert "acc nan" in term.getvalue()
    # progress False or None: nothing at all, even on a terminal
    for quiet in (False, None):
        term = TerminalStream()
        nn.train(models.digits_mlp(0), (x[:128], y[:128]), epochs=1, stream=term, progress=quiet,
                 callbacks=[_DrawEachBatch()])
        assert term.getvalue() == ""


def test_epoch_lines_go_to_the_given_stream_through_a_shared_display():
    from refcomp.progress import Display

    model, x, y = _tiny()
    other, out = io.StringIO(), io.StringIO()
    with Display(other):
        train(model, (x, y), epochs=1, progress="epoch", stream=out)
    assert out.getvalue().startswith("epoch 1/1 lr ") and other.getvalue() == ""


def test_float_overflow_in_the_passes_becomes_the_divergence_error():
    """An overflow to ±inf (and the NaN of inf - inf after it) in the forward or the backward pass raises
    no floating-point warning (the tests make those errors): the finite check names the loss instead."""
    def model(w_b):
        m = Sequential(("a", Linear(2, 2, rng=0)), ("b", Linear(2, 2, rng=0)))
        m["a"].weight.data[...] = [[1, 1], [-1, -1]]
        m["b"].weight.data[...] = w_b
        return m

    # forward: a's outputs overflow to +inf and -inf, b sums them: inf - inf = NaN
    x = np.array([[3e38, 3e38]], np.float32)
    with pytest.raises(ValidationError) as e:
        train(model([[1, 1], [-1, -1]]), (x, np.zeros(1, int)), epochs=1, progress=False)
    assert e.value.argument == "loss"

    class Huge(_ConstantLoss):
        def backward(self):
            return np.full_like(self._g, 3e38)

    # backward: b's dx overflows (3e38 + 3e38 = inf), a's weight gradient sums inf·1 + inf·(-1) = NaN over
    # the batch; the SGD step makes the weights NaN, and the second epoch's forward meets them
    x = np.array([[1, -1], [-1, 1]], np.float32)
    with pytest.raises(ValidationError) as e:
        train(model([[1, 1], [1, 1]]), (x, np.zeros(2, int)), epochs=2, batch_size=2, loss=Huge(0.0),
              progress=False)
    assert e.value.argument == "loss" and "epoch 2" in str(e.value)
