"""quantize_dynamic: layers hold DynamicQuantized weights; the outputs of the MatMulInteger / ConvInteger graph."""

import numpy as np
import pytest

from refcomp import nn
from refcomp.compress.quantize.dynamic import dynamic_weight, quantize_dynamic
from refcomp.compress.quantize.ptq import quantize_weight_per_channel
from refcomp.compress.quantize.weight_only import model_bytes
from refcomp.errors import ValidationError
from refcomp.formats import Dense, DynamicQuantized
from refcomp.nn import Conv2d, Linear, evaluate
from refcomp.ops import conv_integer, dynamic_quantize_linear, matmul_integer

from ..models_for_tests import digits_split, small_cnn, small_mlp, trained_digits_mlp


def test_dynamic_quantization_on_digits():
    _, te = digits_split()
    m = trained_digits_mlp()
    acc = evaluate(m, te)["accuracy"]
    d, _ = quantize_dynamic(m)
    assert evaluate(d, te)["accuracy"] >= acc - 0.01
    y, yd = m.forward(te[0]), d.forward(te[0])
    assert np.abs(y - yd).max() < 0.05 * np.abs(y).max()


def test_dynamic_conv_matches_float_closely():
    rng = np.random.default_rng(0)
    m = small_cnn(0, padding=1)
    x = rng.normal(size=(8, 1, 10, 10)).astype(np.float32)
    d, _ = quantize_dynamic(m)
    y, yd = m.forward(x), d.forward(x)
    assert np.abs(y - yd).max() < 0.05 * np.abs(y).max()


def _d1_graph(model, x):
    """The onnxruntime graph layer by layer: DynamicQuantizeLinear of each Conv2d / Linear input, then
    ConvInteger (on the unpadded x, padding with z_x) or MatMulInteger, float32 scaling, the float bias."""
    for layer in model.layers.values():
        if not isinstance(layer, (Conv2d, Linear)):
            x = layer.forward(x)
            continue
        codes, s_w = quantize_weight_per_channel(layer.weight.to_dense())
        q_x, s_x, z_x = dynamic_quantize_linear(x.astype(np.float32))
        if isinstance(layer, Conv2d):
            ph, pw = layer.padding
            acc = conv_integer(q_x, codes, z_x, None, strides=list(layer.stride), pads=[ph, pw, ph, pw],
                               dilations=list(layer.dilation))
            shape = (1, -1, 1, 1)
        else:
            acc = matmul_integer(q_x, np.ascontiguousarray(codes.T), z_x, None)
            shape = (1, -1)
        x = acc.astype(np.float32) * (np.float32(s_x) * s_w).reshape(shape) + layer.bias.data.reshape(shape)
    return x


@pytest.mark.parametrize("padding, stride", [(0, 1), (1, 1), (1, 2)])
def test_outputs_are_those_of_the_dynamic_quantization_graph_bit_for_bit(padding, stride):
    m = small_cnn(3, padding=padding, stride=stride)
    x = np.random.default_rng(4).random((5, 1, 10, 10), dtype=np.float32) - 0.2
    d, _ = quantize_dynamic(m)
    assert d.forward(x).tobytes() == _d1_graph(m, x).tobytes()
    _, te = digits_split()
    mlp = trained_digits_mlp()
    assert quantize_dynamic(mlp)[0].forward(te[0]).tobytes() == _d1_graph(mlp, te[0]).tobytes()


def test_layers_hold_the_format_and_the_input_model_is_untouched():
    m = small_cnn(1)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    d, _ = quantize_dynamic(m)
    assert all(type(layer.weight) is Dense for _, layer in m.named_modules() if isinstance(layer, (Conv2d, Linear)))
    assert all(v.tobytes() == before[k].tobytes() for k, v in m.state_dict().items())
    for name, layer in d.named_modules():
        if isinstance(layer, (Conv2d, Linear)):
            assert isinstance(layer.weight, DynamicQuantized) and type(layer) is type(m[name])
            o = layer.weight.shape[0]
            assert layer.weight.shape == (o, m[name].weight.to_dense().size // o)  # a kernel as its im2col matrix
    # bytes: int8 codes, one float32 scale per output channel, float32 biases
    n_w = sum(layer.weight.to_dense().size for _, layer in m.named_modules() if isinstance(layer, (Conv2d, Linear)))
    n_out = sum(layer.weight.shape[0] for _, layer in m.named_modules() if isinstance(layer, (Conv2d, Linear)))
    assert model_bytes(d) == n_w + 4 * n_out + 4 * n_out


def test_any_graph_and_grouped_convolutions_are_refused():
    g = nn.Graph("x")
    g.add("fc", nn.Linear(6, 6, rng=0), "x")
    g.add("add", nn.Add(), "fc", "x")
    g.outputs = ["add"]
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    d, _ = quantize_dynamic(g)
    assert isinstance(d["fc"].weight, DynamicQuantized)
    np.testing.assert_array_equal(d.forward(x), d["fc"].weight.matmul(x) + d["fc"].bias.data + x)
    grouped = nn.Sequential(("conv", Conv2d(2, 4, 3, groups=2, rng=0)))
    with pytest.raises(ValidationError, match="groups"):
        quantize_dynamic(grouped)


def test_dynamic_weight_is_int8_restricted_per_channel():
    w = np.random.default_rng(5).standard_normal((3, 2, 2, 2)).astype(np.float32)
    fmt = dynamic_weight(w)
    assert not fmt.per_token and dynamic_weight(w, per_token=True).per_token   # one input range per call by default
    qp = fmt.weight.qparams
    assert qp.dtype.name == "int8" and qp.per_axis and (qp.qmin, qp.qmax) == (-127, 127)
    codes, scales = quantize_weight_per_channel(w)
    np.testing.assert_array_equal(fmt.weight.data, codes.reshape(3, -1))
    np.testing.assert_array_equal(qp.scale, scales)


@pytest.mark.parametrize("container", ["safetensors", "npz"])
def test_the_dynamic_model_saves_and_loads_bit_for_bit(container, tmp_path):
    from refcomp.io import load_model, save_model

    d, _ = quantize_dynamic(small_cnn(2, padding=1))
    back = load_model(save_model(d, tmp_path / f"m.{container}"))
    assert isinstance(back["conv1"].weight, DynamicQuantized) and isinstance(back["fc"].weight, DynamicQuantized)
    x = np.random.default_rng(6).random((3, 1, 10, 10), dtype=np.float32)
    assert back.forward(x).tobytes() == d.forward(x).tobytes()
    assert model_bytes(back) == model_bytes(d)


def test_a_dynamic_model_deep_copies_after_running():
    """Model transforms deep-copy models: the QParams (immutable) and the packed-weight cache must allow it."""
    import copy

    m = small_cnn(2)
    x = np.random.default_rng(6).random((3, 1, 10, 10), dtype=np.float32) - 0.2
    d, _ = quantize_dynamic(m)
    y = d.forward(x)  # fills each weight's packed-B cache (a cffi handle with the C backend)
    twin = copy.deepcopy(d)
    assert twin.forward(x).tobytes() == y.tobytes() and model_bytes(twin) == model_bytes(d)


def test_per_token_outputs_are_the_graph_run_on_each_token_alone():
    # eq. (D2): every row of x gets its own DynamicQuantizeLinear range. Rows never mix in an MLP, so the
    # per-token model is the per-call graph (D1) run on one token at a time
    m = small_mlp(7)
    widths = np.float32([[0.1], [1], [5], [1], [30], [2]])                  # tokens of very different ranges
    x = np.random.default_rng(8).standard_normal((6, 12)).astype(np.float32) * widths
    d, _ = quantize_dynamic(m, per_token=True)
    assert all(layer.weight.per_token for _, layer in d.named_modules() if isinstance(layer, Linear))
    want = np.concatenate([_d1_graph(m, x[b:b + 1]) for b in range(len(x))])
    assert d.forward(x).tobytes() == want.tobytes()
    assert d.forward(x).tobytes() != quantize_dynamic(m)[0].forward(x).tobytes()   # one range per call differs
    with pytest.raises(ValidationError, match="Linear layers only"):
        quantize_dynamic(small_cnn(0), per_token=True)


def test_report_gives_each_layers_shape_and_bytes():
    m = small_cnn(1)
    _, report = quantize_dynamic(m)
    want = {}
    for name, layer in m.named_modules():
        if isinstance(layer, (Conv2d, Linear)):
            w = layer.weight.to_dense()
            o = w.shape[0]
            # int8 codes and a float32 scale per output channel, against the float32 weight
            want[name] = {"shape": list(w.shape), "bytes": w.size + 4 * o, "float_bytes": 4 * w.size}
    assert report == want


def test_a_float64_weight_is_quantized_as_its_float32_values():
    # the weight is read as float32 first, the dtype of the model's layers and of their scales
    rng = np.random.default_rng(9)
    w64 = rng.standard_normal((7, 3, 2, 2)) * rng.uniform(0.1, 5, (7, 1, 1, 1))
    w64[:, 0, 0, 0] = np.abs(w64).max(axis=(1, 2, 3)) * (1 - 2.0**-30)   # maxima that move when rounded to float32
    a, b = dynamic_weight(w64).weight, dynamic_weight(w64.astype(np.float32)).weight
    assert a.qparams.scale.tobytes() == b.qparams.scale.tobytes() and a.data.tobytes() == b.data.tobytes()
