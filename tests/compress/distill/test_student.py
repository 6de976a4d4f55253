"""Students initialised from the teacher: layer dropping (eq. 10) and width slicing (eqs. 11-12)."""

import numpy as np
import pytest

from refcomp.compress.distill.student import drop_layers, slice_width, unit_scores
from refcomp.errors import ShapeError, ValidationError
from refcomp.nn import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential


def _mlp(seed, sizes=(6, 8, 8, 8, 3)):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append((f"fc{i}", Linear(a, b, rng=rng, dtype="float64")))
        if i < len(sizes) - 2:
            layers += [(f"relu{i}", ReLU()), (f"drop{i}", Dropout(0.5, rng=0))]
    return Sequential(*layers)


def _relu(z):
    return np.maximum(z, 0)


def test_drop_layers_joins_the_input_to_the_next_layer():
    """Eq. (10) by hand: fc1 and its ReLU / Dropout go; the student computes W2 f(W0 x) with the
    teacher's own arrays, and the teacher is untouched."""
    teacher = _mlp(0)
    before = {n: p.data.copy() for n, p in teacher.named_parameters()}
    student, rep = drop_layers(teacher, ["fc1"])
    assert rep["dropped"] == ["fc1", "relu1", "drop1"]
    assert list(student.layers) == ["fc0", "relu0", "drop0", "fc2", "relu2", "drop2", "fc3"]
    x = np.random.default_rng(1).normal(size=(5, 6))
    W = {n: (teacher[n].weight.to_dense(), teacher[n].bias.data) for n in ("fc0", "fc2", "fc3")}
    h = _relu(x @ W["fc0"][0].T + W["fc0"][1])
    h = _relu(h @ W["fc2"][0].T + W["fc2"][1])
    want = h @ W["fc3"][0].T + W["fc3"][1]
    student.eval()
    np.testing.assert_allclose(student.forward(x), want, rtol=1e-12)
    student["fc0"].weight.data[...] = 0                       # a copy, not the teacher's arrays
    for n, p in teacher.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_drop_layers_refuses_what_would_break_shapes():
    teacher = _mlp(0, sizes=(6, 8, 5, 3))
    with pytest.raises(ShapeError, match="names"):
        drop_layers(teacher, ["fc1"])                         # 8 -> 5 is not square
    with pytest.raises(ValidationError, match="names"):
        drop_layers(teacher, ["fc9"])
    with pytest.raises(ValidationError, match="names"):
        drop_layers(teacher, 3)
    with pytest.raises(ShapeError, match="names"):
        drop_layers(_mlp(0, sizes=(6, 8, 8)), ["relu0"])
    with pytest.raises(ValidationError, match="names"):
        drop_layers(Sequential(("fc", Linear(3, 3, rng=0))), ["fc"])   # the output layer


def test_slice_width_keeps_the_top_units_and_the_next_columns():
    """Eqs. (11)-(12) by hand: the k rows of largest L1 norm of W1, b1[keep] and W2[:, keep]; the
    student equals the teacher's forward restricted to the kept units (a slicer that forgets the
    next layer's columns cannot even run, one that ranks by another norm keeps other units)."""
    teacher = _mlp(2, sizes=(6, 10, 4))
    w1, b1 = teacher["fc0"].weight.to_dense(), teacher["fc0"].bias.data
    w2, b2 = teacher["fc1"].weight.to_dense(), teacher["fc1"].bias.data
    norms = [sum(abs(v) for v in row) for row in w1]
    keep = sorted(sorted(range(10), key=lambda j: -norms[j])[:4])
    student, rep = slice_width(teacher, {"fc0": 4})
    assert rep["fc0"] == keep
    x = np.random.default_rng(3).normal(size=(7, 6))
    want = _relu(x @ w1[keep].T + b1[keep]) @ w2[:, keep].T + b2
    student.eval()
    np.testing.assert_allclose(student.forward(x), want, rtol=1e-12)
    assert student["fc0"].weight.shape == (4, 6) and student["fc1"].weight.shape == (4, 4)
    l2 = np.sqrt((w1 ** 2).sum(axis=1))
    assert slice_width(teacher, {"fc0": 4}, criterion="l2")[1]["fc0"] == sorted(np.argsort(-l2)[:4].tolist())
    np.testing.assert_allclose(unit_scores(teacher["fc0"]), norms)


def test_slice_width_through_conv_flatten_linear():
    """A kept conv channel takes its H·W Flatten columns of the next Linear (channel-major)."""
    rng = np.random.default_rng(5)             # keeps channels 2 and 3: not a prefix of the columns
    teacher = Sequential(("conv", Conv2d(1, 4, 3, rng=rng, dtype="float64")), ("relu", ReLU()),
                         ("pool", MaxPool2d(2)), ("flat", Flatten()), ("fc", Linear(4 * 2 * 2, 3, rng=rng,
                                                                                      dtype="float64")))
    student, rep = slice_width(teacher, {"conv": 2})
    k = rep["conv"]
    assert k == [2, 3]
    x = rng.normal(size=(3, 1, 6, 6))
    teacher.forward(x)
    feats = teacher["relu"].forward(teacher["conv"].forward(x))
    pooled = feats.reshape(3, 4, 2, 2, 2, 2).max(axis=(3, 5))
    w = teacher["fc"].weight.to_dense().reshape(3, 4, 4)
    want = np.einsum("nchw,ochw->no", pooled[:, k].reshape(3, 2, 2, 2), w[:, k].reshape(3, 2, 2, 2)) \
        + teacher["fc"].bias.data
    np.testing.assert_allclose(student.forward(x), want, rtol=1e-10)


def test_slice_width_bad_arguments():
    teacher = _mlp(2, sizes=(6, 10, 4))
    with pytest.raises(ValidationError, match="widths"):
        slice_width(teacher, {"fc0": 11})
    with pytest.raises(ValidationError, match="widths"):
        slice_width(teacher, {"relu0": 2})
    with pytest.raises(ValidationError, match="widths"):
        slice_width(teacher, {"fc1": 2})                      # the output layer
    with pytest.raises(ValidationError, match="criterion"):
        slice_width(teacher, {"fc0": 2}, criterion="l3")
    with pytest.raises(ValidationError, match="teacher"):
        slice_width(object(), {"fc0": 2})


def test_a_single_name_and_an_activation_without_dropout():
    """A name alone is a list of one; only the parameter-free layers up to the next Linear go with it
    (here one ReLU: fc2 and what follows stay)."""
    rng = np.random.default_rng(8)
    teacher = Sequential(("fc0", Linear(4, 5, rng=rng, dtype="float64")), ("relu0", ReLU()),
                         ("fc1", Linear(5, 5, rng=rng, dtype="float64")), ("relu1", ReLU()),
                         ("fc2", Linear(5, 5, rng=rng, dtype="float64")), ("relu2", ReLU()),
                         ("fc3", Linear(5, 2, rng=rng, dtype="float64")))
    student, rep = drop_layers(teacher, "fc1")
    assert rep["dropped"] == ["fc1", "relu1"]
    assert list(student.layers) == ["fc0", "relu0", "fc2", "relu2", "fc3"]


def test_unit_scores_l2_is_the_euclidean_norm_of_each_row():
    w = np.array([[3.0, -4.0, 0.0], [1.0, 1.0, -1.0]])
    layer = Linear(3, 2, rng=0, dtype="float64")
    layer.weight.data[...] = w
    assert unit_scores(layer, "l2").tolist() == [5.0, 3 ** 0.5]
    assert unit_scores(layer, "l1").tolist() == [7.0, 3.0]


def test_slice_width_any_hidden_layer_and_a_single_unit():
    """Every hidden Linear may be sliced, not only the first; k = 1 keeps the unit of largest norm."""
    teacher = _mlp(4, sizes=(6, 8, 8, 3))
    norms = np.abs(teacher["fc1"].weight.to_dense()).sum(axis=1)
    student, rep = slice_width(teacher, {"fc1": 1})
    assert rep["fc1"] == [int(np.argmax(norms))]
    assert student["fc1"].weight.shape == (1, 8) and student["fc2"].weight.shape == (3, 1)


def test_slice_width_refusals_name_their_argument():
    teacher = _mlp(2, sizes=(6, 10, 4))
    for args, argument in (((object(), {"fc0": 2}), "teacher"), ((teacher, {}), "widths"),
                           ((teacher, [("fc0", 2)]), "widths"), ((teacher, {"fc0": 0}), "widths['fc0']")):
        with pytest.raises(ValidationError) as e:
            slice_width(*args)
        assert e.value.argument == argument, args
    with pytest.raises(ValidationError) as e:
        drop_layers(object(), ["fc0"])
    assert e.value.argument == "teacher"
