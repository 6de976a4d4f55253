"""`refcomp inspect`: per weight format, shape, dtype, qparams, sparsity, bytes and share, for every container."""

import json

import numpy as np
import pytest

from refcomp import formats, models
from refcomp.cli import main
from refcomp.compress.quantize.dynamic import quantize_dynamic
from refcomp.io import save_model
from refcomp.quant import QParams


def _sparse_model():
    """digits_mlp with fc1 a relative-index CSR (3/4 of it zeros, 4 centroids) and fc2 low-rank."""
    m = models.digits_mlp(0)
    w = m.layers["fc1"].weight.data
    mask = np.zeros(w.shape, bool)
    mask[:, ::4] = True                                   # a quarter kept: sparsity exactly 0.75
    codebook = np.array([-0.1, -0.05, 0.05, 0.1], np.float32)
    idx = (np.arange(w.size).reshape(w.shape) % 4).astype(np.uint8)
    m.layers["fc1"].weight = formats.RelativeIndexCSR.encode(mask, np.where(mask, idx, 0), index_bits=4,
                                                             codebook=codebook)
    w2 = m.layers["fc2"].weight.data
    m.layers["fc2"].weight = formats.LowRank(w2[:, :3].copy(), np.eye(3, w2.shape[1], dtype=np.float32))
    return m


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    m = models.digits_mlp(0)
    save_model(m, d / "float.safetensors")
    q, _ = quantize_dynamic(m)
    save_model(q, d / "dynamic.npz")
    save_model(_sparse_model(), d / "sparse.rcm", format="compact")
    return d


def _report(capsys, path):
    assert main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_of_a_dense_file(files, capsys):
    r = _report(capsys, files / "float.safetensors")
    assert set(r) == {"file", "kind", "file_bytes", "layers", "total"} and r["kind"] == "refcomp"
    assert r["file_bytes"] == (files / "float.safetensors").stat().st_size
    assert [row["name"] for row in r["layers"]] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    fc1 = r["layers"][0]
    assert set(fc1) == {"name", "format", "shape", "dtype", "qparams", "sparsity", "bytes", "share"}
    assert fc1 == {"name": "fc1.weight", "format": "dense", "shape": [128, 64], "dtype": "float32", "qparams": None,
                   "sparsity": 0.0, "bytes": 128 * 64 * 4, "share": pytest.approx(128 * 64 * 4 / r["file_bytes"])}
    assert r["total"] == {"tensors": 4, "parameters": 9610, "bytes": 9610 * 4,
                          "share": pytest.approx(9610 * 4 / r["file_bytes"])}


def test_json_of_a_dynamic_quantized_file(files, capsys):
    r = _report(capsys, files / "dynamic.npz")
    fc1 = r["layers"][0]
    q = quantize_dynamic(models.digits_mlp(0))[0].layers["fc1"].weight.weight.qparams
    assert fc1["format"] == "dynamic quantized" and fc1["dtype"] == "int8" and fc1["shape"] == [128, 64]
    assert fc1["qparams"] == {"dtype": "int8", "granularity": "per-axis", "axis": 0, "block_size": None,
                              "scale": {"min": pytest.approx(float(q.scale.min())),
                                        "max": pytest.approx(float(q.scale.max())), "count": 128},
                              "zero_point": 0.0}
    assert fc1["bytes"] == 128 * 64 + 128 * 4                     # int8 codes + float32 scales, no zero points


def test_json_of_a_pruned_clustered_low_rank_file(files, capsys):
    r = _report(capsys, files / "sparse.rcm")
    rows = {row["name"]: row for row in r["layers"]}
    m = _sparse_model()
    fc1, fc2 = rows["fc1.weight"], rows["fc2.weight"]
    assert fc1["format"] == "relative-index CSR (clustered)" and fc1["sparsity"] == 0.75
    assert fc1["dtype"] == "2-bit index" and fc1["bytes"] == m.layers["fc1"].weight.nbytes
    assert fc2["format"] == "low-rank (rank 3)" and fc2["shape"] == [10, 128] and fc2["dtype"] == "float32"
    assert r["total"]["bytes"] == sum(row["bytes"] for row in r["layers"])
    assert r["total"]["share"] == pytest.approx(r["total"]["bytes"] / (files / "sparse.rcm").stat().st_size)


def test_formats_in_words():
    from refcomp.cli.inspect import format_of, qparams_of

    qt = formats.QTensor(np.zeros((4, 3), np.int8), QParams(0.5, 0, "int8"))
    assert format_of(qt) == "quantized" and qparams_of(qt)["scale"] == 0.5
    assert format_of(formats.Clustered(np.array([0.0, 1.0], np.float32), np.zeros((2, 2), np.uint8))) == \
        "clustered (2 centroids)"
    assert format_of(formats.HalfPrecision(np.zeros((2, 2), np.float16))) == "half precision"


def test_the_table(files, capsys):
    assert main(["inspect", str(files / "dynamic.npz")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"{files / 'dynamic.npz'}: refcomp model file, ")
    fc1 = next(line for line in lines if line.startswith("fc1.weight"))
    assert "dynamic quantized" in fc1 and "128x64" in fc1 and "int8" in fc1 and "per-axis scale " in fc1
    assert "(128)" in fc1 and "8,704" in fc1
    assert lines[-1].startswith("total") and "4 tensors" in lines[-1] and "9,610 values" in lines[-1]


def test_an_onnx_file(files, capsys):
    pytest.importorskip("onnx")
    from refcomp import onnx as rc_onnx

    rc_onnx.export(models.digits_mlp(0), files / "float.onnx", style="float", input_shape=(1, 64))
    r = _report(capsys, files / "float.onnx")
    assert r["kind"] == "onnx" and r["total"]["parameters"] == 9610
    assert {row["format"] for row in r["layers"]} == {"dense"}
    assert r["total"]["share"] > 0.9                      # an ONNX file is mostly its initializers


@pytest.mark.parametrize("name, make, words", [
    ("junk.safetensors", lambda p: p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json"), "junk.safetensors"),
    ("junk.safetensors", lambda p: p.write_bytes((p.parent / "float.safetensors").read_bytes()[:-100]),
     "junk.safetensors"),
    ("junk.rcm", lambda p: p.write_bytes(b"RCM\x01" + b"\x00" * 40), "junk.rcm"),
    ("junk.onnx", lambda p: p.write_bytes(b"not a protobuf \x00\xff"), "not a readable ONNX"),
    ("junk.safetensors", lambda p: p.mkdir(), "FILE"),
    ("junk.safetensors", lambda p: None, "FILE"),
])
def test_bad_files_are_one_error_line(files, tmp_path, capsys, name, make, words):
    if name.endswith(".onnx"):
        pytest.importorskip("onnx")
    p = tmp_path / name
    (tmp_path / "float.safetensors").write_bytes((files / "float.safetensors").read_bytes())
    make(p)
    assert main(["inspect", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "hint:" in err and "Traceback" not in err and words in err
