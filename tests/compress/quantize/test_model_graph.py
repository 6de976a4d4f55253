"""A Sequential model read as quantization stages (model_graph): the table of the module's docstring, the
fused ReLUs, the layers a calibration hook watches, and the folded eval-mode copy the algorithms start from."""

import numpy as np
import pytest

from refcomp.compress.quantize.model_graph import (Stage, flat_layers, prepare, stage_output_modules, stages_of,
                                                   value_stage)
from refcomp.errors import ValidationError
from refcomp.nn import BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tanh


def _nested(rng=0):
    """a -> blk(b ReLU, inner(c Linear)) -> relu ReLU -> d Linear: nested Sequentials, read as if flat."""
    rng = np.random.default_rng(rng)
    return Sequential(("a", Linear(4, 5, rng=rng)),
                      ("blk", Sequential(("b", ReLU()), ("inner", Sequential(("c", Linear(5, 3, rng=rng)))))),
                      ("relu", ReLU()), ("d", Linear(3, 2, rng=rng)))


def test_flat_layers_expand_nested_sequentials_in_order_with_dotted_names():
    m = _nested()
    assert [(n, type(layer).__name__) for n, layer in flat_layers(m)] == [
        ("a", "Linear"), ("blk.b", "ReLU"), ("blk.inner.c", "Linear"), ("relu", "ReLU"), ("d", "Linear")]
    assert flat_layers(m, "top")[2][0] == "top.blk.inner.c"
    lone = Linear(2, 2, rng=0)
    assert flat_layers(lone) == [("", lone)] and flat_layers(lone, "x") == [("x", lone)]


def test_stages_fuse_the_relu_right_after_a_compute_layer():
    """A ReLU right after a Conv2d / Linear is fused into its stage (even across a nested Sequential's
    edge); any other ReLU is a stage of its own; the last compute layer, with nothing after it, is unfused."""
    m = _nested()
    st = stages_of(m)
    assert [(s.kind, s.name, s.relu) for s in st] == [
        ("compute", "a", True), ("compute", "blk.inner.c", True), ("compute", "d", False)]
    assert st[0].layer is m["a"] and st[2].layer is m["d"]
    rng = np.random.default_rng(1)
    cnn = Sequential(("conv", Conv2d(1, 2, 3, rng=rng)), ("pool", MaxPool2d(2)), ("r", ReLU()), ("drop", Dropout()),
                     ("flatten", Flatten()), ("fc", Linear(2 * 3 * 3, 3, rng=rng)), ("out", ReLU()))
    assert [(s.kind, s.name, s.relu) for s in stages_of(cnn)] == [
        ("compute", "conv", False), ("maxpool", "pool", False), ("relu", "r", False), ("identity", "drop", False),
        ("flatten", "flatten", False), ("compute", "fc", True)]


def test_layers_without_an_exact_integer_stage_are_named():
    for layer in (Tanh(), BatchNorm2d(2)):
        m = Sequential(("conv", Conv2d(1, 2, 3, rng=0)), ("odd", layer))
        with pytest.raises(ValidationError, match="^model layer 'odd': "):
            stages_of(m)
    with pytest.raises(ValidationError, match="^model layer 'x': "):
        value_stage("x", Linear(2, 2, rng=0))                      # a compute layer is no value stage
    with pytest.raises(ValidationError, match="^model: "):
        stages_of(Sequential(("r", ReLU()), ("f", Flatten())))     # nothing to quantize
    layers = (("p", MaxPool2d(2)), ("r", ReLU()), ("f", Flatten()), ("d", Dropout()))
    stages = [value_stage(n, m) for n, m in layers]
    assert [s.kind for s in stages] == ["maxpool", "relu", "flatten", "identity"]
    assert all(s.name == n and s.layer is m and not s.relu for s, (n, m) in zip(stages, layers))


def test_forward_float_of_each_kind_of_stage():
    """compute: the layer, then max(·, 0) when a ReLU is fused; identity: x itself, even for a Dropout left in
    training mode (eval mode is what the integer model computes); the others: their layer."""
    rng = np.random.default_rng(2)
    fc = Linear(4, 3, rng=rng, dtype="float64")
    x = rng.normal(size=(6, 4))
    z = x @ fc.weight.to_dense().T + fc.bias.data
    assert (z < 0).any() and (z > 0).any()
    np.testing.assert_array_equal(Stage("compute", "fc", fc).forward_float(x), z)
    np.testing.assert_array_equal(Stage("compute", "fc", fc, relu=True).forward_float(x), np.maximum(z, 0))
    drop = Dropout(0.5, rng=0).train()
    np.testing.assert_array_equal(Stage("identity", "d", drop).forward_float(x), x)
    np.testing.assert_array_equal(Stage("relu", "r", ReLU()).forward_float(z), np.maximum(z, 0))
    y = rng.normal(size=(2, 3, 4, 4))
    np.testing.assert_array_equal(Stage("maxpool", "p", MaxPool2d(2)).forward_float(y),
                                  y.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5)))


def test_stage_output_modules_are_the_fused_relu_else_the_layer():
    m = _nested()
    out = stage_output_modules(m)
    assert list(out) == ["a", "blk.inner.c", "d"]
    assert out["a"] is m["blk"]["b"] and out["blk.inner.c"] is m["relu"] and out["d"] is m["d"]


def test_prepare_is_a_folded_eval_copy():
    """Sequentials and Graphs get their BatchNorms folded; any other Module is deep-copied; the copy is in
    eval mode and shares no array with the model."""
    from refcomp.nn.blocks import residual_block

    rng = np.random.default_rng(3)
    m = Sequential(("conv", Conv2d(1, 2, 3, rng=rng)), ("bn", BatchNorm2d(2)), ("drop", Dropout()))
    m["bn"].running_mean[...] = [0.5, -1.0]
    m.train()
    p = prepare(m)
    assert list(p.layers) == ["conv", "drop"] and not p.training and not p["drop"].training and m.training
    x = rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(p.forward(x), m.eval().forward(x), rtol=1e-5, atol=1e-6)
    g = prepare(residual_block(2, 3, stride=2, rng=0))
    assert not any(isinstance(mod, BatchNorm2d) for _, mod in g.named_modules())
    lone = Linear(2, 2, rng=0).train()
    c = prepare(lone)
    assert c is not lone and not c.training and lone.training
    c.weight.data[...] = 0
    assert np.any(lone.weight.to_dense() != 0)
    with pytest.raises(ValidationError, match="^model: "):
        prepare(np.zeros((2, 2)))
