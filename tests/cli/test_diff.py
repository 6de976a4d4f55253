"""`refcomp diff`: the comparison numbers, layer matching, the command and its errors."""

import json
import math

import numpy as np
import pytest

from refcomp import datasets, models
from refcomp.cli import main
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.io import save_model
from refcomp.nn import Linear, ReLU, Sequential
from refcomp.pipelines.diff import (
    cosine,
    diff_files,
    match_names,
    max_abs_error,
    saturated_share,
    sqnr_db,
)

pytest.importorskip("sklearn")


# -- the numbers ---------------------------------------------------------------------------------
def test_metrics_by_their_formulas():
    a = np.array([3.0, 4.0], np.float32)
    assert sqnr_db(a, a) == math.inf and cosine(a, a) == pytest.approx(1.0) and max_abs_error(a, a) == 0
    b = a + np.array([0.3, -0.4], np.float32)            # noise power 0.25, signal 25: 20 dB
    assert sqnr_db(a, b) == pytest.approx(20.0, abs=1e-5)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.zeros(2), np.zeros(2)) == 1.0 and cosine(np.zeros(2), a) == 0.0
    assert sqnr_db(np.zeros(2), a) == -math.inf
    assert max_abs_error(a, b) == pytest.approx(0.4)
    assert saturated_share(np.array([0, 5, 255, 255], np.uint8), 0, 255) == 0.75


def test_names_match_after_a_prefix():
    assert match_names(["fc1", "relu1", "fc2"], ["model", "model.fc1", "model.relu1", "model.fc2", "quantize"]) == [
        ("fc1", "model.fc1"), ("relu1", "model.relu1"), ("fc2", "model.fc2")]
    assert match_names(["a"], ["b"]) == []


# -- the command -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    (x, _), _ = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    q, _ = quantize_static(m, x[:256], requantize="float", integer_only=False)
    save_model(m, d / "float.safetensors")
    save_model(q, d / "w8a8.rcm", format="compact")
    return d


def _json(capsys, args):
    assert main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_model_against_itself(files, capsys):
    out = _json(capsys, ["diff", str(files / "float.safetensors"), str(files / "float.safetensors"),
                         "--data", "digits"])
    assert out["samples"] == 360
    assert [r["layer"] for r in out["layers"]] == ["fc1", "relu1", "fc2", "(output)"]
    for r in out["layers"]:
        assert r["sqnr_db"] == "inf" and r["cosine"] == pytest.approx(1.0) and r["max_abs_error"] == 0


def test_model_against_its_w8a8_version(files, capsys):
    out = _json(capsys, ["diff", str(files / "float.safetensors"), str(files / "w8a8.rcm"), "--data", "digits"])
    rows = out["layers"]
    assert {r["layer"] for r in rows} == {"fc1", "relu1", "fc2", "(output)"}
    sq = [r["sqnr_db"] for r in rows]
    assert all(isinstance(v, float) and 20 < v < 80 for v in sq)
    assert sq == sorted(sq)                                   # worst first
    assert all(0.99 < r["cosine"] < 1 and r["max_abs_error"] > 0 for r in rows)
    fc1 = next(r for r in rows if r["layer"] == "fc1")        # an island: its codes' saturation
    assert 0 <= fc1["saturated_b"] <= 1 and fc1["saturated_a"] is None
    assert _json(capsys, ["diff", str(files / "float.safetensors"), str(files / "w8a8.rcm"), "--data", "digits",
                          "--layers", "1"])["layers"] == rows[:1]
    assert main(["diff", str(files / "float.safetensors"), str(files / "w8a8.rcm"), "--data", "digits"]) == 0
    text = capsys.readouterr().out
    assert "SQNR dB" in text and text.index(rows[0]["layer"]) < text.index(rows[-1]["layer"] + " ")


def test_integer_only_model_matches_by_prefix():
    (x, _), (xt, _) = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    q, _ = quantize_static(m, x[:256], requantize="float")       # layers are model.fc1, ...
    rows = diff_files(m, q, xt[:50])
    assert {r["b"] for r in rows} == {"model.fc1", "model.relu1", "model.fc2", "(output)"}
    assert all(math.isfinite(r["sqnr_db"]) for r in rows)


def test_onnx_files_in_refcomp_and_onnxruntime(files, capsys):
    onnx_mod = pytest.importorskip("refcomp.onnx")
    pytest.importorskip("onnxruntime")
    m = models.digits_mlp(0)
    onnx_mod.export(m, files / "float.onnx", style="float", input_shape=(1, 64))
    for runtime in ("refcomp", "onnxruntime"):
        rows = _json(capsys, ["diff", str(files / "float.safetensors"), str(files / "float.onnx"),
                              "--data", "digits", "--runtime", runtime])["layers"]
        assert {r["a"] for r in rows} == {"fc1", "relu1", "fc2", "(output)"}, runtime
        if runtime == "refcomp":                                 # the imported nodes, by their ONNX values
            assert {r["b"] for r in rows} == {"fc1_matmul_MatMul", "relu1_Relu", "fc2_matmul_MatMul", "(output)"}
        for r in rows:
            assert r["sqnr_db"] == "inf" or r["sqnr_db"] > 100, (runtime, r)


@pytest.mark.parametrize("case", ["missing", "format", "shape", "no_common", "data"])
def test_errors_are_one_line(files, tmp_path, capsys, case):
    a = str(files / "float.safetensors")
    b = a
    data = "digits"
    if case == "missing":
        b = str(tmp_path / "nope.safetensors")
    elif case == "format":
        (tmp_path / "junk.safetensors").write_bytes(b"not a model file at all")
        b = str(tmp_path / "junk.safetensors")
    elif case == "shape":
        np.save(tmp_path / "x.npy", np.zeros((4, 1, 28, 28), np.float32))
        data = str(tmp_path / "x.npy")
    elif case == "no_common":
        save_model(Sequential(("head", Linear(64, 10)), ("act", ReLU())), tmp_path / "other.safetensors")
        b = str(tmp_path / "other.safetensors")
    else:
        data = "cifar"
    assert main(["diff", a, b, "--data", data]) == 2
    lines = capsys.readouterr().err.strip().splitlines()          # the error, then how to fix it
    assert len(lines) == 2 and lines[0].startswith("refcomp diff: error:") and lines[1].startswith("refcomp diff: hint:")



def test_w8a8_model_against_its_qoperator_export(files, capsys):
    """refcomp's integer islands and onnxruntime (exact setting) agree on every exposed value."""
    onnx_mod = pytest.importorskip("refcomp.onnx")
    pytest.importorskip("onnxruntime")
    from refcomp.io import load_model

    onnx_mod.export(load_model(files / "w8a8.rcm"), files / "w8a8.onnx", style="qoperator", input_shape=(1, 64))
    rows = _json(capsys, ["diff", str(files / "w8a8.rcm"), str(files / "w8a8.onnx"), "--data", "digits",
                          "--runtime", "onnxruntime-exact"])["layers"]
    assert {"fc1.quantize", "fc1.layer", "fc1.dequantize", "relu1", "(output)"} <= {r["layer"] for r in rows}
    assert all(r["sqnr_db"] == "inf" and r["max_abs_error"] == 0 for r in rows)
    layer = next(r for r in rows if r["layer"] == "fc1.layer")       # codes on both sides: the same saturation
    assert layer["saturated_a"] == layer["saturated_b"]
