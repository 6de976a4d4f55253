"""Module, Parameter, Sequential, hooks: the containers' contract, stated with tiny layers written here.

The layers below compute by formulas simple enough to write out (y = a·x, y = x + 1), and
record what the containers call them with, so every expected value is a hand computation.
"""

import numpy as np
import pytest

from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import Dense
from refcomp.formats.base import WeightFormat
from refcomp.nn.module import (LAYER_TYPES, HookHandle, Module, Parameter, Sequential, _accumulate, as_rng,
                               register_layer, run_batch, run_with_hooks)


class Scale(Module):
    """y = a·x with one trainable scalar a; dL/da = Σ dy·x, dL/dx = a·dy (None when not wanted)."""

    accepts_input_grad = True

    def __init__(self, a, log=None, name=""):
        self.a = Parameter(np.array([a], np.float64))
        self._log, self._name, self._x = log if log is not None else [], name, None

    def forward(self, x):
        self._x = x
        return self.a.data[0] * x

    def backward(self, dy, *, input_grad=True):
        self._log.append((self._name, input_grad))
        _accumulate(self.a, np.array([np.sum(dy * self._x)]))
        return self.a.data[0] * dy if input_grad else None


class Shift(Module):
    """y = x + 1, no parameters, and a backward without an input_grad argument."""

    def __init__(self, log=None, name=""):
        self._log, self._name = log if log is not None else [], name

    def forward(self, x):
        return x + 1

    def backward(self, dy):
        self._log.append((self._name, True))
        return dy


class Negate(Module):
    """y = -x, no parameters, but a backward that can skip dL/dx."""

    accepts_input_grad = True

    def __init__(self, log, name):
        self._log, self._name = log, name

    def forward(self, x):
        return -x

    def backward(self, dy, *, input_grad=True):
        self._log.append((self._name, input_grad))
        return -dy if input_grad else None


class Codes(WeightFormat):
    """A stored (non-Dense) format with two fields and one trained parameter of its own."""

    def __init__(self):
        self.codes = np.array([1, 2, 3], np.int8)
        self.scale = np.array(0.5, np.float32)
        self.step = Parameter(np.array([0.25]))
        self.shape = (3,)

    def to_dense(self):
        return self.codes * self.scale

    @property
    def nbytes(self):
        return 7

    def fields(self):
        return {"codes": self.codes, "scale": self.scale}

    def named_parameters(self):
        return (("step", self.step),)


class Holder(Module):
    """A module with a Dense weight, a Parameter, a stored format and a buffer."""

    _buffer_names = ("running",)

    def __init__(self):
        self.weight = Dense(np.arange(6, dtype=np.float32).reshape(2, 3))
        self.bias = Parameter([1.0, 2.0])
        self.q = Codes()
        self.running = np.zeros(2)


# ---------------------------------------------------------------------------------------- as_rng, register


def test_as_rng_passes_a_generator_through_and_seeds_from_an_int():
    g = np.random.default_rng(1)
    assert as_rng(g) is g
    for seed in (7, np.int64(7), np.uint8(7)):
        assert as_rng(seed).random(3).tolist() == np.random.default_rng(7).random(3).tolist()


@pytest.mark.parametrize("bad", [True, False, 1.0, "7", None])
def test_as_rng_refuses_anything_else_naming_the_argument(bad):
    with pytest.raises(ValidationError) as e:
        as_rng(bad, "seed")
    assert e.value.argument == "seed"
    with pytest.raises(ValidationError) as e:
        as_rng(bad)
    assert e.value.argument == "rng"


def test_register_layer_records_the_class_by_its_name():
    class MyLayerForRegistry(Module):
        pass

    try:
        assert register_layer(MyLayerForRegistry) is MyLayerForRegistry
        assert LAYER_TYPES["MyLayerForRegistry"] is MyLayerForRegistry
        assert LAYER_TYPES["Sequential"] is Sequential
    finally:
        LAYER_TYPES.pop("MyLayerForRegistry", None)


# ---------------------------------------------------------------------------------------- Parameter, gradients


def test_parameter_makes_non_float_data_float32_and_keeps_float_dtypes():
    p = Parameter([1, 2, 3])
    assert p.dtype == np.float32 and p.data.tolist() == [1.0, 2.0, 3.0] and p.grad is None
    for dt in (np.float16, np.float32, np.float64):
        assert Parameter(np.ones(2, dt)).dtype == dt
    strided = np.arange(8.0)[::2]
    p = Parameter(strided)
    assert p.data.flags.c_contiguous and p.shape == (4,) and p.data.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert repr(Parameter(np.zeros((2, 3)))) == "Parameter(shape=(2, 3), dtype=float64)"
    assert Parameter.trainable is True


def test_accumulate_adds_into_a_copy_in_the_parameter_dtype():
    p = Parameter(np.zeros(2, np.float32))
    _accumulate(p, np.array([1.0, 1.0]))            # a float64 first gradient is stored as float32
    assert p.grad.dtype == np.float32 and p.grad.tolist() == [1.0, 1.0]
    q = Parameter(np.zeros(2, np.float32))
    g = np.array([0.5, 1.5], np.float32)
    _accumulate(q, g)
    assert q.grad is not g
    _accumulate(q, g)
    _accumulate(q, np.array([1.0, 1.0]))            # a float64 gradient adds into the float32 one
    assert q.grad.tolist() == [2.0, 4.0] and q.grad.dtype == np.float32
    assert g.tolist() == [0.5, 1.5]                 # the first gradient was copied, not adopted


def test_accumulate_hands_the_gradient_to_a_format_that_has_its_own_rule():
    class Trained:
        dtype = np.float32
        grad = None

        def __init__(self):
            self.got = []

        def accumulate_grad(self, g):
            self.got.append(g)

    t = Trained()
    g = np.ones(2)
    _accumulate(t, g)
    assert t.got == [g] and t.grad is None


# ---------------------------------------------------------------------------------------- hooks


def test_hooks_run_after_forward_in_registration_order_and_see_the_call():
    layer, seen = Shift(), []
    h1 = layer.register_forward_hook(lambda m, inputs, out: seen.append(("first", m, inputs, out.tolist())))
    h2 = layer.register_forward_hook(lambda m, inputs, out: seen.append(("second", m, inputs, out.tolist())))
    assert isinstance(h1, HookHandle) and h2.id > h1.id
    x = np.array([1.0, 2.0])
    assert layer(x).tolist() == [2.0, 3.0]
    assert [s[0] for s in seen] == ["first", "second"]
    assert seen[0][1] is layer and seen[0][2][0] is x and len(seen[0][2]) == 1 and seen[0][3] == [2.0, 3.0]
    h1.remove()
    h1.remove()                                     # a second remove does nothing
    layer(x)
    assert [s[0] for s in seen] == ["first", "second", "second"]
    with h2:
        pass
    layer(x)                                        # the context manager removed the second one
    assert len(seen) == 3
    assert layer.forward(x).tolist() == [2.0, 3.0]  # forward alone never runs hooks


def test_a_hook_may_remove_itself_while_it_runs():
    layer, calls = Shift(), []
    handles = []

    def once(m, inputs, out):
        calls.append("once")
        handles[0].remove()

    handles.append(layer.register_forward_hook(once))
    layer.register_forward_hook(lambda m, i, o: calls.append("always"))
    layer(np.zeros(1))
    layer(np.zeros(1))
    assert calls == ["once", "always", "always"]


def test_a_hook_that_returns_a_value_or_is_not_callable_is_refused():
    layer = Shift()
    with pytest.raises(ValidationError, match="fn"):
        layer.register_forward_hook("print")
    layer.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(ValidationError, match="forward hook"):
        layer(np.zeros(1))


def test_backward_before_forward_is_refused():
    with pytest.raises(ValidationError, match="backward"):
        Shift()._require_forward(None)
    Shift()._require_forward(np.zeros(0))           # any cache, even an empty one, is a forward's


def test_run_batch_unpacks_only_tuples():
    class Inputs(Module):
        def forward(self, *xs):
            return len(xs)

    m = Inputs()
    assert run_batch(m, (np.zeros(1), np.zeros(1))) == 2
    assert run_batch(m, [np.zeros(1), np.zeros(1)]) == 1
    assert run_batch(m, np.zeros((2, 1))) == 1


@pytest.mark.parametrize("mode", [True, False])
def test_run_with_hooks_runs_in_eval_mode_then_restores_everything(mode):
    inner = Shift()
    model = Sequential(("s", inner))
    model.train(mode)
    seen = []
    run_with_hooks(model, [(inner, lambda m, i, o: seen.append((m.training, o.tolist())))],
                   [np.zeros(1), np.ones(1)])
    assert seen == [(False, [1.0]), (False, [2.0])]
    assert model.training is mode and inner.training is mode
    model(np.zeros(1))
    assert len(seen) == 2                           # the hook is gone

    def fail(m, i, o):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        run_with_hooks(model, [(inner, fail)], [np.zeros(1)])
    assert model.training is mode and inner.training is mode
    model(np.zeros(1))                              # removed on error too: no RuntimeError


# ---------------------------------------------------------------------------------------- structure


def _nested():
    log = []
    inner = Sequential(("s1", Scale(2.0, log, "s1")), ("sh", Shift(log, "sh")))
    return Sequential(("block", inner), ("s2", Scale(3.0, log, "s2"))), log


def test_names_are_dotted_paths_in_assignment_order():
    model, _ = _nested()
    assert [n for n, _ in model.named_modules()] == ["", "block", "block.s1", "block.sh", "s2"]
    assert [n for n, _ in model.named_modules("m")] == ["m", "m.block", "m.block.s1", "m.block.sh", "m.s2"]
    assert [n for n, _ in model.named_parameters()] == ["block.s1.a", "s2.a"]
    assert [n for n, _ in model.named_parameters("m")] == ["m.block.s1.a", "m.s2.a"]
    assert model.parameters() == [model["block"]["s1"].a, model["s2"].a]
    assert [n for n, _ in model["block"].named_children()] == ["s1", "sh"]


def test_weights_include_stored_formats_and_their_own_parameters():
    h = Holder()
    names = [n for n, _ in h.named_weights()]
    assert names == ["weight", "bias", "q", "q.step"]
    # trainable: the Dense weight, the Parameter, the format's step; not the stored format itself
    assert [n for n, _ in h.named_parameters()] == ["weight", "bias", "q.step"]
    assert h.num_parameters() == 6 + 2 + 3 + 1
    assert [n for n, _ in Sequential(("h", h)).named_weights()] == ["h.weight", "h.bias", "h.q", "h.q.step"]
    h.weight.trainable = False
    assert [n for n, _ in h.named_parameters()] == ["bias", "q.step"]


def test_buffers_are_named_like_weights():
    h = Holder()
    assert [(n, b is h.running) for n, b in Sequential(("h", h)).named_buffers()] == [("h.running", True)]
    assert [n for n, _ in h.named_buffers()] == ["running"]
    assert [n for n, _ in h.named_buffers("m")] == ["m.running"]


def test_train_and_eval_set_every_submodule():
    model, _ = _nested()
    assert model.eval() is model
    assert [m.training for _, m in model.named_modules()] == [False] * 5
    assert model.train() is model
    assert [m.training for _, m in model.named_modules()] == [True] * 5
    model.train(0)
    assert all(m.training is False for _, m in model.named_modules())


def test_zero_grad_clears_every_gradient():
    h = Holder()
    for _, p in h.named_weights():
        if hasattr(p, "grad"):
            p.grad = np.ones(p.shape)
    h.zero_grad()
    assert h.weight.grad is None and h.bias.grad is None and h.q.step.grad is None


def test_state_dict_holds_the_live_arrays_and_the_fields_of_stored_formats():
    h = Holder()
    sd = h.state_dict()
    assert list(sd) == ["weight", "bias", "q.codes", "q.scale", "q.step", "running"]
    assert sd["weight"] is h.weight.data and sd["bias"] is h.bias.data and sd["running"] is h.running
    assert sd["q.codes"] is h.q.codes and sd["q.step"] is h.q.step.data


def test_load_state_dict_copies_into_the_arrays_in_place():
    h = Holder()
    w, b, r = h.weight.data, h.bias.data, h.running
    h.load_state_dict({"weight": np.ones((2, 3)), "bias": [5, 6], "running": [7, 8], "q.step": [1.0]})
    assert h.weight.data is w and w.tolist() == [[1.0] * 3] * 2
    assert h.bias.data is b and b.tolist() == [5.0, 6.0]
    assert h.running is r and r.tolist() == [7.0, 8.0]
    assert h.q.step.data.tolist() == [1.0]          # the format's own parameter is a Parameter: loaded


def test_load_state_dict_refuses_missing_entries_and_wrong_shapes():
    full = {"weight": np.ones((2, 3)), "bias": [5, 6], "running": [7, 8], "q.step": [1.0]}
    for missing in full:
        h = Holder()
        with pytest.raises(ValidationError) as e:
            h.load_state_dict({k: v for k, v in full.items() if k != missing})
        assert e.value.argument == "state" and repr(missing) in str(e.value)
    for bad, shape in (("weight", (3, 2)), ("running", (3,))):
        h = Holder()
        with pytest.raises(ShapeError) as e:
            h.load_state_dict({**full, bad: np.zeros(shape)})
        assert e.value.argument == f"state[{bad!r}]"
    h = Holder()
    with pytest.raises(ShapeError):
        h.load_state_dict({**full, "bias": [1.0, 2.0, 3.0]})
    assert h.weight.data.tolist() == [[1.0] * 3] * 2   # weights before the bad one were copied


def test_config_and_repr():
    class Cfg(Module):
        def config(self):
            return {"a": 1, "b": "x"}

    assert Module().config() == {} and repr(Shift()) == "Shift()"
    assert Cfg().extra_repr() == "a=1, b=x" and repr(Cfg()) == "Cfg(a=1, b=x)"
    assert repr(Sequential(Shift(), Cfg())) == "Sequential(\n  (0): Shift()\n  (1): Cfg(a=1, b=x)\n)"
    nested = Sequential(("in", Sequential(Shift())))
    assert repr(nested) == "Sequential(\n  (in): Sequential(\n    (0): Shift()\n  )\n)"


def test_the_base_module_computes_nothing():
    with pytest.raises(NotImplementedError):
        Module().forward(np.zeros(1))
    with pytest.raises(NotImplementedError):
        Module().backward(np.zeros(1))


# ---------------------------------------------------------------------------------------- Sequential


def test_sequential_names_indexing_and_replacement():
    a, b, c = Shift(), Shift(), Shift()
    m = Sequential(a, ("named", b))
    assert list(m.layers) == ["0", "named"] and len(m) == 2 and list(m) == [a, b]
    assert m[0] is a and m[1] is b and m[-1] is b and m["named"] is b and m["0"] is a
    m["named"] = c
    assert m["named"] is c and list(m.layers) == ["0", "named"]
    with pytest.raises(ValidationError) as e:
        m["other"] = c
    assert e.value.argument == "key"
    m.add("x", a)
    assert list(m.layers) == ["0", "named", "x"]


@pytest.mark.parametrize("name", ["", "a.b", 3, "0"])
def test_sequential_refuses_bad_or_taken_names(name):
    m = Sequential(Shift())
    with pytest.raises(ValidationError) as e:
        m.add(name, Shift())
    assert e.value.argument == "name"
    assert list(m.layers) == ["0"]


def test_sequential_refuses_what_is_not_a_module():
    with pytest.raises(ValidationError, match="layer 'f'"):
        Sequential(("f", np.zeros(1)))


def test_sequential_forward_backward_is_the_chain_rule_written_out():
    # y = 3·((2·x) + 1): dy/dx = 6, dL/da1 = Σ 3·dy·x, dL/da2 = Σ dy·(2x + 1)
    model, log = _nested()
    x = np.array([1.0, -2.0, 0.5])
    dy = np.array([1.0, 0.5, -1.0])
    seen = []
    model["s2"].register_forward_hook(lambda m, i, o: seen.append(i[0].tolist()))
    y = model(x)
    assert y.tolist() == [3 * (2 * v + 1) for v in x.tolist()]
    assert seen == [[2 * v + 1 for v in x.tolist()]]      # children run through __call__: hooks fire
    dx = model.backward(dy)
    assert dx.tolist() == [6 * d for d in dy.tolist()]
    assert log == [("s2", True), ("sh", True), ("s1", True)]
    assert model["block"]["s1"].a.grad.tolist() == [sum(3 * d * v for d, v in zip(dy.tolist(), x.tolist()))]
    assert model["s2"].a.grad.tolist() == [sum(d * (2 * v + 1) for d, v in zip(dy.tolist(), x.tolist()))]


def test_without_the_input_gradient_backward_stops_at_the_first_parametric_layer():
    # the parameter-free prefix needs no dy, and the first parametric layer is told not to compute dx
    log = []
    model = Sequential(("sh", Shift(log, "sh")), ("s1", Scale(2.0, log, "s1")), ("s2", Scale(3.0, log, "s2")))
    x = np.array([1.0, 2.0])
    model.forward(x)
    assert model.backward(np.ones(2), input_grad=False) is None
    assert log == [("s2", True), ("s1", False)]
    assert model["s1"].a.grad.tolist() == [3 * ((1 + 1) + (2 + 1))]
    log.clear()
    model.forward(x)
    assert model.backward(np.ones(2)).tolist() == [6.0, 6.0]
    assert log == [("s2", True), ("s1", True), ("sh", True)]


def test_without_the_input_gradient_a_first_layer_that_cannot_skip_it_still_runs():
    # a parameter-free model: layer 0 is "first"; Shift has no input_grad argument, so it runs as usual
    log = []
    model = Sequential(("a", Shift(log, "a")), ("b", Shift(log, "b")))
    model.forward(np.zeros(1))
    assert model.backward(np.ones(1), input_grad=False).tolist() == [1.0]
    assert log == [("b", True), ("a", True)]
    # a parameter-free model of layers that can skip dx: layer 0 is "first", the only one told to skip it
    log = []
    model = Sequential(("a", Negate(log, "a")), ("b", Negate(log, "b")))
    model.forward(np.zeros(1))
    assert model.backward(np.ones(1), input_grad=False) is None
    assert log == [("b", True), ("a", False)]
    # a Scale first among parameter-free layers that follow it: it is first, and skips dx
    log = []
    model = Sequential(("s", Scale(2.0, log, "s")), ("b", Shift(log, "b")))
    model.forward(np.ones(1))
    assert model.backward(np.ones(1), input_grad=False) is None
    assert log == [("b", True), ("s", False)]


def test_a_nested_sequential_passes_the_skip_on_to_its_own_first_parametric_layer():
    # Sequential accepts input_grad itself: as the first parametric layer of an outer one, it is told to
    # skip dx and tells its own first parametric layer
    model, log = _nested()
    model.forward(np.array([1.0, 2.0]))
    assert model.backward(np.ones(2), input_grad=False) is None
    assert log == [("s2", True), ("sh", True), ("s1", False)]
    assert Sequential.accepts_input_grad is True
