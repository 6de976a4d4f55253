"""`--json` on every command: stdout is one JSON document with the documented keys, and nothing else.

(inspect and evaluate: tests/cli/test_inspect.py and test_evaluate.py; diff: test_diff.py.)
"""

import json

import numpy as np
import pytest

from refcomp import models
from refcomp.cli import main

pytest.importorskip("sklearn")


def _json(capsys, args) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)          # fails on anything printed beside the document


def test_demo(capsys):
    r = _json(capsys, ["demo", "--layer-only", "--out-features", "8", "--in-features", "32", "--batch", "32"])
    assert set(r) == {"config", "weights", "activations", "layer"}


def test_train(tmp_path, capsys):
    r = _json(capsys, ["train", "--model", "digits_mlp", "--epochs", "2", "--out", str(tmp_path / "m.npz")])
    assert set(r) == {"model", "data", "epochs", "seed", "test_samples", "accuracy", "loss", "history", "out"}
    assert r["out"] == str(tmp_path / "m.npz") and r["test_samples"] == 360 and 0 < r["accuracy"] <= 1
    assert [h["epoch"] for h in r["history"]] == [1, 2] and {"loss", "accuracy", "lr"} <= set(r["history"][0])


def test_compress_deep_compression(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("prune_rounds = 1\nprune_epochs = 1\nfinetune_epochs = 1\n")
    r = _json(capsys, ["compress", "--model", "digits_mlp", "--out", str(tmp_path / "r"), "--config", str(cfg),
                       "--baseline-epochs", "1"])
    assert r["route"] == "deep_compression" and r["model"] == "digits_mlp" and r["data"] == "digits"
    assert {"files", "accuracy", "seconds", "weights_ratio", "model_ratio", "file", "file_bytes", "config"} <= set(r)
    assert r["files"]["report"] == str(tmp_path / "r" / "report.md")
    assert r["accuracy"] == json.loads((tmp_path / "r" / "results.json").read_text())["accuracy"]


def test_compress_recipe(tmp_path, capsys):
    from pathlib import Path

    from refcomp.io import save_model

    src = save_model(models.digits_mlp(0), tmp_path / "m.safetensors")
    recipe = Path(__file__).resolve().parents[2] / "examples" / "w8a8_dynamic.toml"
    r = _json(capsys, ["compress", "--model-file", str(src), "--data", "digits", "--out", str(tmp_path / "r"),
                       "--recipe", str(recipe)])
    assert r["route"] == "recipe" and r["out"] == str(tmp_path / "r")
    assert r["record"] == json.loads((tmp_path / "r" / "run.json").read_text())


def test_compress_onnx(tmp_path, capsys):
    pytest.importorskip("onnx")
    from refcomp import onnx as rc_onnx

    rc_onnx.export(models.digits_mlp(0), tmp_path / "f.onnx", style="float", input_shape=(1, 64))
    r = _json(capsys, ["compress", "--onnx", str(tmp_path / "f.onnx"), "--data", "digits", "--recipe",
                       "w8a8-dynamic", "--out", str(tmp_path / "r")])
    assert set(r) == {"route", "onnx", "recipe", "data", "calibration", "test_samples", "accuracy", "model_file",
                      "export", "bytes", "report"}
    assert r["report"]["html"] == str(tmp_path / "r" / "report.html")
    assert r["route"] == "onnx" and set(r["accuracy"]) == {"float", "quantized"} and r["export"] is None
    assert r["bytes"]["model_file"] == (tmp_path / "r" / "model.rcm").stat().st_size


def test_embed(tmp_path, capsys, minilm_golden, minilm_model):
    (tmp_path / "s.txt").write_text("\n".join(minilm_golden["sentences"][:3]), encoding="utf-8")
    np.save(tmp_path / "ref.npy", minilm_golden["embeddings_unpadded"][:3])
    r = _json(capsys, ["embed", str(tmp_path / "s.txt"), "--out", str(tmp_path / "e.npy"),
                       "--compare", str(tmp_path / "ref.npy")])
    assert set(r) == {"sentences", "model", "out", "shape", "seconds", "compare", "score"}
    assert r["shape"] == [3, 384] and r["score"]["cos_mean"] > 0.9999


def test_bench(monkeypatch, capsys):
    """The harness's rows as JSON (the timing itself replaced by fixed rows: minutes otherwise)."""
    from refcomp.cli import bench

    real = bench._harness
    if real() is None:
        pytest.skip("no benchmarks/ beside the sources")

    def harness():
        h = real()
        h.gemm_rows = lambda **k: [{"shape": "8x8x8", "c_ms": np.float64(0.5)}]
        h.spmm_rows = lambda **k: [{"shape": "8x8", "numpy_ms": 1.0}]
        return h
    monkeypatch.setattr(bench, "_harness", harness)
    from refcomp.kernels import c_status

    if not c_status()["available"]:
        pytest.skip("the C kernels are not built")
    r = _json(capsys, ["bench", "--quick"])
    assert set(r) == {"machine", "threads", "clock", "quick", "gemm", "spmm"}
    assert r["gemm"] == [{"shape": "8x8x8", "c_ms": 0.5}] and r["quick"] is True
    assert main(["bench", "--json", "--output", "x.md"]) == 2 and "--output" in capsys.readouterr().err


def test_json_is_strict():
    """NaN and infinities (an exact SQNR, a loss without labels) become strings, not invalid JSON."""
    from refcomp.cli._common import json_safe

    doc = json_safe({"a": float("inf"), "b": np.float32("nan"), "c": np.arange(2), "d": (np.int64(3),)})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {"a": "inf", "b": "nan", "c": [0, 1], "d": [3]}
