"""Graph models in files: a ResNet-style and a transformer model trained, saved, loaded bit-exact;
corrupted graph headers raise FileFormatError before anything is built."""

import json
import struct

import numpy as np
import pytest

from refcomp import datasets, nn
from refcomp.errors import FileFormatError
from refcomp.io import load_model, model_header, save_model
from refcomp.io.model_file import _checksum
from refcomp.io.model_file import SUFFIXES

pytest.importorskip("safetensors")
FORMATS = ["safetensors", "npz", "compact"]


def resnet_model():
    m = nn.Graph("x")
    m.add("block1", nn.residual_block(1, 4, 2, rng=0), "x")
    m.add("block2", nn.residual_block(4, 4, 1, rng=1), "block1")
    m.add("gap", nn.GlobalAvgPool2d(), "block2")
    m.add("fc", nn.Linear(4, 10, rng=2), "gap")
    m.outputs = ["fc"]
    return m


def transformer_model():
    """Token ids and a padding mask -> (N, T, 8): an embedding and two encoder blocks."""
    m = nn.Graph(["ids", "mask"])
    m.add("emb", nn.Embedding(11, 8, rng=0), "ids")
    m.add("layer0", nn.transformer_encoder_block(8, 2, 16, rng=1), "emb", "mask")
    m.add("layer1", nn.transformer_encoder_block(8, 2, 16, approximate="tanh", rng=2), "layer0", "mask")
    m.outputs = ["layer1"]
    return m


def token_data(rng, n=16, t=5):
    ids = rng.integers(1, 11, (n, t))
    mask = (np.arange(t)[None, :] < rng.integers(2, t + 1, n)[:, None]).astype(np.int64)
    return ids * mask, mask        # id 0 = padding


def assert_same_model(a, b):
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].tobytes() == sb[k].tobytes(), k


def test_resnet_trains_saves_and_loads_bit_exact(tmp_path):
    x, y = datasets.digits()
    x, y = x[:320].reshape(-1, 1, 8, 8), y[:320]
    model = resnet_model()
    hist = nn.train(model, (x, y), epochs=3, batch_size=32, lr=0.05, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    want = model.eval().forward(x[:50])
    for fmt in FORMATS:
        back = load_model(save_model(model, tmp_path / f"resnet{SUFFIXES[fmt]}"))
        assert isinstance(back, nn.Graph) and not back.training
        assert_same_model(model, back)
        assert back.forward(x[:50]).tobytes() == want.tobytes()
        assert [n for n, _ in back.named_buffers()][:2] == ["block1.bn1.running_mean", "block1.bn1.running_var"]


def test_transformer_trains_saves_and_loads_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    ids, mask = token_data(rng)
    target = rng.standard_normal((16, 5, 8)).astype(np.float32)
    model = transformer_model()
    params = model.parameters()
    assert len(params) == 1 + 2 * 16
    opt = nn.SGD(params, lr=0.05, momentum=0.9)
    loss = nn.MSELoss()
    losses = []
    for _ in range(8):
        out = model.forward(ids, mask)
        losses.append(loss.forward(out * mask[..., None], target * mask[..., None]))   # padded tokens ignored
        model.zero_grad()
        assert model.backward(loss.backward() * mask[..., None]) == (None, None)
        opt.step()
    assert losses[-1] < 0.9 * losses[0]
    want = model.eval().forward(ids, mask)
    for fmt in FORMATS:
        back = load_model(save_model(model, tmp_path / f"bert{SUFFIXES[fmt]}"))
        assert_same_model(model, back)
        assert back.forward(ids, mask).tobytes() == want.tobytes()
        assert back["layer0"]["attn"].q_proj.weight.data.tobytes() == \
            model["layer0"]["attn"].q_proj.weight.data.tobytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_sequential_and_graph_nest_in_files(tmp_path, fmt):
    inner = nn.Sequential(("fc", nn.Linear(3, 3, rng=0)), ("act", nn.GELU()))
    g = nn.Graph("x")
    g.add("seq", inner, "x")
    g.add("add", nn.Add(), "seq", "x")
    g.outputs = ["add"]
    model = nn.Sequential(("pre", nn.Linear(2, 3, rng=1)), ("res", g), ("soft", nn.Softmax()))
    back = load_model(save_model(model, tmp_path / f"m{SUFFIXES[fmt]}"))
    assert_same_model(model, back)
    x = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    assert back.forward(x).tobytes() == model.forward(x).tobytes()


def test_graph_header_layout():
    h = model_header(transformer_model())["graph"]
    assert h["type"] == "Graph" and h["inputs"] == ["ids", "mask"] and h["outputs"] == ["layer1"]
    node = h["nodes"][1]
    assert node["name"] == "layer0" and node["inputs"] == ["emb", "mask"] and node["module"]["type"] == "Graph"
    attn = node["module"]["nodes"][0]
    assert attn == {"name": "attn", "inputs": ["x", "mask"], "module": {
        "type": "MultiHeadAttention", "config": {"d_model": 8, "num_heads": 2, "bias": True, "dtype": "float32"}}}
    json.dumps(h)   # JSON-able


def _rewrite_header(path, edit):
    from safetensors.numpy import load, save

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["refcomp"])
    edit(header["graph"])
    tensors = load(raw)
    # a checksum made for the edited header: what is tested is the check behind it
    header["checksum"] = _checksum(header, tensors)
    path.write_bytes(save(tensors, metadata={"refcomp": json.dumps(header)}))


def _node(g, name):
    return next(n for n in g["nodes"] if n["name"] == name)


@pytest.mark.parametrize("edit,match", [
    (lambda g: _node(g, "fc")["module"].update(type="Teleporter"), "unknown layer type 'Teleporter'"),
    (lambda g: _node(g, "fc")["module"].update(type=["Linear"]), "unknown layer type"),
    (lambda g: _node(g, "fc").update(inputs=["nowhere"]), "reads 'nowhere', which is neither"),
    (lambda g: _node(g, "block1").update(inputs=["fc"]), "reads 'fc', which is defined later"),
    (lambda g: _node(g, "gap").update(inputs=["gap"]), "reads 'gap', which is the node itself"),
    (lambda g: _node(g, "gap").update(name="block1"), "duplicate name 'block1'"),
    (lambda g: _node(g, "block1").update(name="x"), "duplicate name 'x'"),
    (lambda g: g.update(outputs=["ghost"]), "output 'ghost'"),
    (lambda g: g.update(outputs="fc"), "'outputs' must be a non-empty list"),
    (lambda g: g.update(inputs=[]), "'inputs' must be a non-empty list"),
    (lambda g: g.update(nodes={"fc": {}}), "'nodes' must be a list"),
    (lambda g: _node(g, "fc").update(inputs="gap"), r"nodes\[3\] must be an object"),
    (lambda g: _node(g, "fc").pop("module"), r"nodes\[3\] must be an object"),
    (lambda g: g["nodes"].append(7), r"nodes\[4\] must be an object"),
    (lambda g: _node(g, "fc").update(name="f.c"), "node name 'f.c' is empty or contains '.'"),
    (lambda g: g.update(inputs=["x", "x"]), "inputs: expected distinct names"),
    (lambda g: _node(_node(g, "block1")["module"], "add").update(inputs=["bn2", "nope"]),
     "graph node block1: node 'add' reads 'nope'"),
    (lambda g: _node(g, "fc")["module"]["config"].update(in_features=5), "shape"),
])
def test_corrupted_graph_headers_rejected(tmp_path, edit, match):
    path = save_model(resnet_model(), tmp_path / "m.safetensors")
    _rewrite_header(path, edit)
    with pytest.raises(FileFormatError, match=match):
        load_model(path)
