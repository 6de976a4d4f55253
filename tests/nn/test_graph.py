"""Graph: building rules, forward/backward (fan-out sums), names, node swaps, train(), hooks."""

import numpy as np
import pytest

from .graph_gradcheck import check_module
from .nn_gradcheck import check_layer, numeric_gradient
from refcomp import datasets, nn
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn.graph import replace_module

F64 = "float64"


def fan_out_graph():
    """x feeds fc1 and the residual add; t feeds fc2 and the final Mul: two fan-outs."""
    g = nn.Graph(inputs=["x"])
    g.add("fc1", nn.Linear(4, 4, rng=0, dtype=F64), "x")
    g.add("t", nn.Tanh(), "fc1")
    g.add("fc2", nn.Linear(4, 4, rng=1, dtype=F64), "t")
    g.add("add", nn.Add(), "fc2", "x")
    g.add("mul", nn.Mul(), "add", "t")
    g.outputs = ["mul"]
    return g


def test_fan_out_graph_gradients():
    rng = np.random.default_rng(0)
    check_layer(fan_out_graph(), rng.standard_normal((3, 4)), rng)


def test_two_inputs_two_outputs_with_integer_input():
    """ids (integer: gradient None) and x; outputs used again inside the graph."""
    g = nn.Graph(inputs=["ids", "x"])
    g.add("emb", nn.Embedding(5, 3, rng=0, dtype=F64), "ids")
    g.add("cat", nn.Concat(-1), "emb", "x")
    g.add("fc", nn.Linear(5, 3, rng=1, dtype=F64), "cat")
    g.add("prod", nn.Mul(), "fc", "emb")
    g.outputs = ["fc", "prod"]
    rng = np.random.default_rng(1)
    ids, x = np.array([0, 4, 2]), rng.standard_normal((3, 2))
    fc, prod = g.forward(ids, x)
    r1, r2 = rng.standard_normal(fc.shape), rng.standard_normal(prod.shape)
    g.zero_grad()
    dids, dx = g.backward(r1, r2)
    assert dids is None

    def loss():
        a, b = g.forward(ids, x)
        return float(np.sum(a * r1) + np.sum(b * r2))

    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-6)


def test_transformer_block_gradients():
    g = nn.transformer_encoder_block(6, 2, 8, eps=1e-5, rng=0, dtype=F64)
    rng = np.random.default_rng(2)
    check_module(g, [rng.standard_normal((2, 3, 6)), np.array([[1, 1, 0], [1, 1, 1]])], rng, max_coords=25)


def test_residual_block_gradients():
    rng = np.random.default_rng(3)
    for cin, cout, stride in ((2, 2, 1), (2, 3, 2)):
        g = nn.residual_block(cin, cout, stride, rng=3, dtype=F64)
        assert ("skip_conv" in g) == (cin != cout or stride != 1)
        check_layer(g, rng.standard_normal((2, cin, 5, 5)), rng, max_coords=25)


def test_nesting_graph_in_sequential_and_back():
    inner = fan_out_graph()
    seq = nn.Sequential(("pre", nn.Linear(3, 4, rng=2, dtype=F64)), ("block", inner))
    outer = nn.Graph("x")
    outer.add("seq", seq, "x")
    outer.add("skip", nn.Linear(3, 4, rng=3, dtype=F64), "x")
    outer.add("sum", nn.Add(), "seq", "skip")
    outer.outputs = "sum"
    rng = np.random.default_rng(4)
    check_layer(outer, rng.standard_normal((2, 3)), rng)
    names = [n for n, _ in outer.named_weights()]
    assert names[:4] == ["seq.pre.weight", "seq.pre.bias", "seq.block.fc1.weight", "seq.block.fc1.bias"]
    assert list(outer.state_dict()) == names


def test_names_getitem_setitem_like_sequential():
    g = fan_out_graph()
    assert [n for n, _ in g.named_children()] == ["fc1", "t", "fc2", "add", "mul"]
    assert [n for n, _ in g.named_weights()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(g.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    new = nn.Linear(4, 4, rng=9, dtype=F64)
    g["fc2"] = new
    assert g["fc2"] is new and g.node_inputs["fc2"] == ("t",)
    assert len(g) == 5 and list(g)[2] is new
    with pytest.raises(ValidationError, match="^key:"):
        g["nope"]
    with pytest.raises(ValidationError, match="^key:"):
        g["nope"] = new
    with pytest.raises(ValidationError, match="module of node 'fc2'"):
        g["fc2"] = g["fc1"]                        # one object, two nodes: caches would clash


@pytest.mark.parametrize("build,match", [
    (lambda g: g.add("a.b", nn.ReLU(), "x"), "^name:"),
    (lambda g: g.add("", nn.ReLU(), "x"), "^name:"),
    (lambda g: g.add("x", nn.ReLU(), "x"), "^name:"),                    # clashes with an input
    (lambda g: (g.add("r", nn.ReLU(), "x"), g.add("r", nn.ReLU(), "x")), "^name:"),
    (lambda g: g.add("r", nn.ReLU(), "later"), "inputs of node 'r'"),    # dangling / forward reference
    (lambda g: g.add("r", nn.ReLU(), "r"), "inputs of node 'r'"),        # self loop
    (lambda g: g.add("r", nn.ReLU()), "inputs of node 'r'"),
    (lambda g: g.add("r", np.tanh, "x"), "module of node 'r'"),
    (lambda g: setattr(g, "outputs", ["nope"]), "^outputs:"),
    (lambda g: setattr(g, "outputs", []), "^outputs:"),
])
def test_bad_graphs_rejected(build, match):
    with pytest.raises(ValidationError, match=match):
        build(nn.Graph(["x", "mask"]))


def test_bad_inputs_and_calls():
    with pytest.raises(ValidationError, match="^inputs:"):
        nn.Graph(["x", "x"])
    with pytest.raises(ValidationError, match=r"^inputs\[0\]:"):
        nn.Graph([1])
    g = fan_out_graph()
    with pytest.raises(ValidationError, match="^backward:"):
        g.backward(np.zeros((3, 4)))
    with pytest.raises(ValidationError, match="^inputs:"):
        g.forward(np.zeros((3, 4)), np.zeros((3, 4)))
    g.forward(np.zeros((3, 4)))
    with pytest.raises(ShapeError, match="^dL/dmul:"):
        g.backward(np.zeros((3, 5)))
    with pytest.raises(ValidationError, match="^dys:"):
        g.backward(np.zeros((3, 4)), np.zeros((3, 4)))
    empty = nn.Graph()
    empty.add("r", nn.ReLU(), "x")
    with pytest.raises(ValidationError, match="^outputs:"):
        empty.forward(np.zeros(3))


def test_unused_input_and_dead_node():
    g = nn.Graph(["x", "unused"])
    g.add("fc", nn.Linear(2, 2, rng=0), "x")
    g.add("dead", nn.Linear(2, 2, rng=1), "x")       # reaches no output: no gradient at all
    g.outputs = ["fc"]
    x = np.ones((1, 2), np.float32)
    g.forward(x, x)
    dx, dunused = g.backward(np.ones((1, 2), np.float32))
    assert dunused.shape == (1, 2) and not dunused.any()
    assert g["dead"].weight.grad is None


def test_input_grad_false_same_parameter_gradients():
    """train() passes input_grad=False: nodes fed only by graph inputs skip dL/dx, nothing else changes."""
    g = nn.transformer_encoder_block(8, 2, 16, rng=1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    dy = rng.standard_normal((2, 4, 8)).astype(np.float32)
    g.forward(x, mask)
    g.backward(dy)
    want = {k: p.grad.copy() for k, p in g.named_parameters()}
    g.zero_grad()
    g.forward(x, mask)
    assert g.backward(dy, input_grad=False) is None
    for k, p in g.named_parameters():
        assert p.grad.tobytes() == want[k].tobytes(), k


def test_train_and_evaluate_accept_a_graph():
    """A single-input graph (residual block + head) trains with nn.train; the loss decreases."""
    x, y = datasets.digits()
    x = x[:400].reshape(-1, 1, 8, 8)
    y = y[:400]
    model = nn.Graph("x")
    model.add("block", nn.residual_block(1, 4, 2, rng=0), "x")
    model.add("gap", nn.GlobalAvgPool2d(), "block")
    model.add("fc", nn.Linear(4, 10, rng=1), "gap")
    model.outputs = ["fc"]
    before = nn.evaluate(model, (x, y))["loss"]
    hist = nn.train(model, (x, y), epochs=3, batch_size=32, lr=0.05, progress=False)
    after = nn.evaluate(model, (x, y))["loss"]
    assert hist[-1]["loss"] < hist[0]["loss"] and after < before


# --- forward hooks ----------------------------------------------------------------------
def test_hooks_capture_inputs_in_graph_and_sequential_and_are_removable():
    g = fan_out_graph()
    seq = nn.Sequential(("g", g), ("act", nn.ReLU()))
    seen = []
    h1 = g["add"].register_forward_hook(lambda m, inputs, out: seen.append(("add", len(inputs), out.shape)))
    h2 = g["fc1"].register_forward_hook(lambda m, inputs, out: seen.append(("fc1", inputs[0].copy())))
    h3 = seq["act"].register_forward_hook(lambda m, inputs, out: seen.append(("act", m is seq["act"])))
    x = np.random.default_rng(6).standard_normal((2, 4))
    seq.forward(x)
    assert [s[0] for s in seen] == ["fc1", "add", "act"]
    assert np.array_equal(seen[0][1], x) and seen[1][1:] == (2, (2, 4)) and seen[2][1] is True
    for h in (h1, h2, h3):
        h.remove()
    h1.remove()                                   # removing twice is harmless
    seen.clear()
    seq.forward(x)
    assert seen == []
    with g["t"].register_forward_hook(lambda m, i, o: seen.append("t")):
        seq.forward(x)
    seq.forward(x)
    assert seen == ["t"]


def test_hooks_do_not_change_results_and_may_not_replace_outputs():
    model = nn.Sequential(("fc", nn.Linear(3, 2, rng=0)), ("r", nn.ReLU()))
    x = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float32)
    plain = x
    for layer in model:                          # the pre-hook Sequential.forward, written out
        plain = layer.forward(plain)
    assert model.forward(x).tobytes() == plain.tobytes()
    h = model["fc"].register_forward_hook(lambda m, i, o: None)
    assert model.forward(x).tobytes() == plain.tobytes()
    h.remove()
    model["fc"].register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(ValidationError, match="^forward hook:"):
        model.forward(x)
    with pytest.raises(ValidationError, match="^fn:"):
        model["r"].register_forward_hook("not callable")


def test_repr_lists_nodes_and_inputs():
    r = repr(fan_out_graph())
    assert r.startswith("Graph(inputs=['x'], outputs=['mul'])") and "(add <- fc2, x): Add()" in r


def test_run_with_hooks_unpacks_tuple_batches_for_a_multi_input_graph():
    """A batch that is a tuple is the graph's inputs in order (model.forward(*batch)); an array is one input."""
    block = nn.blocks.transformer_encoder_block(8, 2, 16, rng=0).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    seen = []
    nn.run_with_hooks(block, [(block["fc1"], lambda m, i, o: seen.append(i[0].shape))], [(x, mask), (x[:1], mask[:1])])
    assert seen == [(6, 8), (3, 8)] and block.training          # the mode is restored
    np.testing.assert_array_equal(nn.run_batch(block.eval(), (x, mask)), block.forward(x, mask))
    one = nn.blocks.transformer_encoder_block(8, 2, 16, mask=False, rng=0).eval()
    np.testing.assert_array_equal(nn.run_batch(one, x), one.forward(x))


# --- rules and corner cases stated one by one ---------------------------------------------
class _Pair(nn.Module):
    """A module with two outputs (not allowed as a node) or a backward with the wrong arity."""

    def forward(self, x):
        return x, x


class _TwoGrads(nn.Module):
    def forward(self, x):
        return x * 2.0

    def backward(self, dy):
        return dy * 2.0, dy


def test_default_input_is_x_and_a_name_is_one_list():
    assert nn.Graph().inputs == ["x"] and nn.Graph().outputs == []     # no outputs until set
    g = nn.Graph("a")
    assert g.inputs == ["a"]
    g.add("r", nn.ReLU(), "a")
    g.outputs = "r"
    assert g.outputs == ["r"]
    g.outputs = ("a", "r")                             # a graph input may be an output too
    x = np.array([-1.0, 2.0])
    a, r = g.forward(x)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(r, [0.0, 2.0])


def test_a_module_may_be_one_node_only():
    g = nn.Graph()
    relu = nn.ReLU()
    g.add("r1", relu, "x")
    with pytest.raises(ValidationError, match="module of node 'r2'"):
        g.add("r2", relu, "r1")
    g["r1"] = relu                                     # putting a node's own module back is allowed
    assert g["r1"] is relu
    with pytest.raises(ValidationError, match="module of node 'r1'"):
        g["r1"] = np.tanh


def test_node_names_are_non_empty_strings_without_dots():
    for bad in ("", "a.b", 3, None):
        with pytest.raises(ValidationError, match="^name:"):
            nn.Graph().add(bad, nn.ReLU(), "x")
    with pytest.raises(ValidationError, match=r"^outputs\[1\]:"):
        nn.Graph().outputs = ["x", "a.b"]
    with pytest.raises(ValidationError, match="^inputs:"):
        nn.Graph([])


def test_a_node_with_two_outputs_or_a_wrong_backward_is_refused():
    g = nn.Graph()
    g.add("pair", _Pair(), "x")
    g.outputs = ["pair"]
    with pytest.raises(ValidationError, match="^node 'pair':"):
        g.forward(np.zeros(2))
    h = nn.Graph()
    h.add("two", _TwoGrads(), "x")
    h.outputs = ["two"]
    np.testing.assert_array_equal(h.forward(np.ones(2)), [2.0, 2.0])
    with pytest.raises(ValidationError, match="^backward of node 'two':"):
        h.backward(np.ones(2))


def test_backward_sums_the_gradients_of_a_value_read_three_times():
    """y = x + x + x·x (Add then Mul, x read three times): dL/dx = dy·(2 + 2x), by hand."""
    g = nn.Graph()
    g.add("twice", nn.Add(), "x", "x")
    g.add("sq", nn.Mul(), "x", "x")
    g.add("y", nn.Add(), "twice", "sq")
    g.outputs = ["y"]
    x = np.array([[0.5, -2.0, 3.0]])
    np.testing.assert_array_equal(g.forward(x), x + x + x * x)
    dy = np.array([[1.0, 2.0, -1.0]])
    np.testing.assert_array_equal(g.backward(dy), dy * (2 + 2 * x))


def test_backward_of_two_outputs_adds_their_gradients():
    """Outputs a = 3·x (Linear, no bias, w = 3) and b = relu(a) = a: dL/dx = 3·(da + db)."""
    g = nn.Graph()
    fc = nn.Linear(1, 1, bias=False, dtype=F64)
    fc.weight.data[:] = 3.0
    g.add("a", fc, "x")
    g.add("b", nn.ReLU(), "a")                          # a > 0 here: b = a
    g.outputs = ["a", "b"]
    g.forward(np.array([[1.0], [2.0]]))
    dx = g.backward(np.array([[1.0], [0.0]]), np.array([[2.0], [5.0]]))
    np.testing.assert_array_equal(dx, [[9.0], [15.0]])


def test_input_grad_false_still_trains_a_norm_on_a_graph_input():
    """A LayerNorm (weights, no input_grad option) fed by the graph input still gets its gradients;
    an integer input and a float one both get None, and the call returns None."""
    g = nn.Graph(["x", "ids"])
    g.add("ln", nn.LayerNorm(3, dtype=F64), "x")
    g.add("emb", nn.Embedding(4, 3, rng=0, dtype=F64), "ids")
    g.add("sum", nn.Add(), "ln", "emb")
    g.add("fc", nn.Linear(3, 2, rng=1, dtype=F64), "x")
    g.add("cat", nn.Concat(-1), "sum", "fc")
    g.outputs = ["cat"]
    rng = np.random.default_rng(8)
    x, ids = rng.standard_normal((2, 3)), np.array([1, 3])
    dy = rng.standard_normal((2, 5))
    g.forward(x, ids)
    dx, dids = g.backward(dy)
    assert dids is None and dx.shape == (2, 3)
    want = {k: p.grad.copy() for k, p in g.named_parameters()}
    g.zero_grad()
    g.forward(x, ids)
    assert g.backward(dy, input_grad=False) is None
    for k, p in g.named_parameters():
        assert p.grad is not None and p.grad.tobytes() == want[k].tobytes(), k
    # the LayerNorm's weight gradient by hand: Σ_n dy ⊙ x̂
    xhat = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(want["ln.weight"], (dy[:, :3] * xhat).sum(0), rtol=1e-12)


def test_repr_indents_a_nested_graph():
    outer = nn.Graph()
    outer.add("inner", fan_out_graph(), "x")
    outer.outputs = ["inner"]
    lines = repr(outer).splitlines()
    assert lines[0] == "Graph(inputs=['x'], outputs=['inner'])("
    assert lines[1] == "  (inner <- x): Graph(inputs=['x'], outputs=['mul'])("
    assert lines[2].startswith("    (fc1 <- x): Linear(") and lines[-1] == ")" and lines[-2] == "  )"


def test_replace_module_in_graph_sequential_and_attribute():
    g = nn.Graph(["x", "mask"])
    g.add("attn", nn.MultiHeadAttention(4, 2, rng=0), "x", "mask")
    g.add("seq", nn.Sequential(("fc", nn.Linear(4, 4, rng=1)), ("act", nn.ReLU())), "attn")
    g.outputs = ["seq"]
    new_fc, new_q, new_seq = nn.Linear(4, 4, rng=2), nn.Linear(4, 4, rng=3), nn.Sequential(("r", nn.ReLU()))
    replace_module(g, "seq.fc", new_fc)
    replace_module(g, "attn.q_proj", new_q)
    assert g["seq"]["fc"] is new_fc and g["attn"].q_proj is new_q
    replace_module(g, "seq", new_seq)                  # a top-level node: the root is the parent
    assert g["seq"] is new_seq and g.node_inputs["seq"] == ("attn",)


class _Recorder(nn.Module):
    """A weightless module that accepts input_grad and records what it was told."""

    accepts_input_grad = True

    def forward(self, x):
        return x * 2.0

    def backward(self, dy, *, input_grad: bool = True):
        self.told = input_grad
        return dy * 2.0 if input_grad else None


def test_input_grad_false_is_passed_to_nodes_fed_only_by_graph_inputs():
    """A node reading only graph inputs is told input_grad=False when it accepts it (its dL/dx is not
    needed); a node reading an inner value is run in full."""
    g = nn.Graph()
    first, second = _Recorder(), _Recorder()
    g.add("first", first, "x")
    g.add("second", second, "first")
    g.outputs = ["second"]
    g.forward(np.ones(3))
    assert g.backward(np.ones(3), input_grad=False) is None
    assert first.told is False and second.told is True
    g.forward(np.ones(3))
    np.testing.assert_array_equal(g.backward(np.ones(3)), [4.0, 4.0, 4.0])
    assert first.told is True


def test_unused_input_gets_zeros_of_its_dtype():
    g = nn.Graph(["x", "unused"])
    g.add("r", nn.ReLU(), "x")
    g.outputs = ["r"]
    x = np.ones((2, 3), np.float32)
    g.forward(x, np.ones((4,), np.float32))
    dx, dunused = g.backward(np.ones((2, 3), np.float32))
    assert dx.dtype == np.float32 and dunused.dtype == np.float32 and dunused.shape == (4,) and not dunused.any()


def test_repr_is_one_line_per_node():
    g = nn.Graph()
    g.add("a", nn.ReLU(), "x")
    g.add("b", nn.Tanh(), "a")
    g.outputs = ["b"]
    assert repr(g) == "Graph(inputs=['x'], outputs=['b'])(\n  (a <- x): ReLU()\n  (b <- a): Tanh()\n)"


def test_unknown_names_are_refused_with_the_names_known():
    g = nn.Graph(["x", "mask"])
    g.add("r", nn.ReLU(), "x")
    with pytest.raises(ValidationError, match=r"\(x, mask, r\)"):
        g.add("s", nn.ReLU(), "nope")
    with pytest.raises(ValidationError, match=r"\(x, mask, r\)"):
        g.outputs = ["nope"]
