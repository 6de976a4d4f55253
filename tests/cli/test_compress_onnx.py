"""`refcomp compress --onnx`: an ONNX model quantized by a recipe, saved and exported (a few seconds)."""

import numpy as np
import pytest

from refcomp import datasets, models
from refcomp.cli import main
from refcomp.io import load_model

pytest.importorskip("sklearn")
rc_onnx = pytest.importorskip("refcomp.onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    rc_onnx.export(models.digits_mlp(0), path, style="float", input_shape=(1, 64))
    return path


@pytest.mark.parametrize("recipe,style", [("w8a8-static", "qoperator"), ("w8a8-static", "qdq"),
                                          ("w8a8-dynamic", "qoperator"), ("weight-only-w8", "qdq")])
def test_recipe_saves_and_exports(mlp_onnx, tmp_path, capsys, recipe, style):
    # the export may go into the --out folder the command creates (README's example)
    out, exported = tmp_path / "r", tmp_path / "r" / "q.onnx"
    assert main(["compress", "--onnx", str(mlp_onnx), "--data", "digits", "--recipe", recipe,
                 "--out", str(out), "--export", str(exported), "--style", style]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "quantized" in printed and "size:" in printed
    assert f"report: {out / 'report.html'}" in printed
    from refcomp.report import load_record

    record = load_record(out / "record.json")          # two layers, wrapped or not, by their ONNX names
    assert [la["name"] for la in record["layers"]] == ["fc1_matmul_MatMul", "fc2_matmul_MatMul"]
    assert all(la["bytes_after"] < la["bytes_before"] / 3 for la in record["layers"])
    assert all(len(w["grid"]) in (255, 256) for w in record["weights"])    # int8, full or restricted range
    assert [s["name"] for s in record["stages"]] == ["float32", recipe] and (out / "report.md").is_file()
    model = load_model(out / "model.rcm")
    _, (xt, _) = datasets.load_split("digits", seed=0)
    y = model.forward(xt[:64])
    so = ort.SessionOptions()
    so.add_session_config_entry("session.x64quantprecision", "1")      # exact u8 x s8 (docs/deviations.md D6)
    sess = ort.InferenceSession(str(exported), so, providers=["CPUExecutionProvider"])
    y_ort = sess.run(["y"], {"x": xt[:64]})[0]
    assert y.shape == y_ort.shape == (64, 10)
    if recipe == "w8a8-static" and style == "qoperator":
        np.testing.assert_array_equal(y, y_ort)       # requantize="float": the export computes the same bits
    else:
        assert np.abs(y - y_ort).max() <= 1e-2 * np.abs(y_ort).max() + 0.1


def test_then_diff_the_two_models(mlp_onnx, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["compress", "--onnx", str(mlp_onnx), "--data", "digits", "--recipe", "w8a8-static",
                 "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["diff", str(mlp_onnx), str(out / "model.rcm"), "--data", "digits"]) == 0
    assert "fc1_matmul_MatMul" in capsys.readouterr().out


@pytest.mark.parametrize("extra,needle", [
    (["--recipe", "weight-only-w4", "--group-size", "16", "--export", "X.onnx"], "int4"),
    (["--group-size", "16", "--recipe", "w8a8-static"], "--group-size"),
    ([], "--recipe"),
    (["--recipe", "w8a8-static", "--data", "mnist", "--mnist-dir", "NODIR"], "MNIST"),
])
def test_bad_input_is_one_line(mlp_onnx, tmp_path, capsys, extra, needle):
    extra = [str(tmp_path / e) if e.endswith(".onnx") or e == "NODIR" else e for e in extra]
    args = ["compress", "--onnx", str(mlp_onnx), "--out", str(tmp_path / "r")] + extra
    if "--data" not in extra:
        args += ["--data", "digits"]
    assert main(args) == 2
    err, hint = capsys.readouterr().err.strip().splitlines()      # the error, then how to fix it
    assert err.startswith("refcomp compress: error:") and needle in err and hint.startswith("refcomp compress: hint:")


def test_missing_file_and_deep_compression_flags(tmp_path, capsys):
    assert main(["compress", "--onnx", str(tmp_path / "none.onnx"), "--recipe", "w8a8-static",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--onnx" in capsys.readouterr().err
    assert main(["compress", "--model", "digits_mlp", "--recipe", "w8a8-static", "--out", str(tmp_path / "r")]) == 2
    assert "--recipe" in capsys.readouterr().err
