"""Graph: building rules, forward/backward (fan-out sums), names, node swaps, train(), hooks."""

import numpy as np
import pytest

from .graph_gradcheck import check_module
from .nn_gradcheck import check_layer, numeric_gradient
from refcomp import datasets, nn
from refcomp.errors import ShapeError, ValidationError

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
