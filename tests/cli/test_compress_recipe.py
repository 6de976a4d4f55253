"""`refcomp compress --recipe FILE`: any recipe on a reference model, a model file or an ONNX file (seconds),
its run.json, and a bad recipe refused in one line before any data is loaded."""

import json
import re
from pathlib import Path

import pytest

from refcomp import datasets, models
from refcomp.cli import main
from refcomp.io import load_model, save_model
from refcomp.nn.train import evaluate

pytest.importorskip("sklearn")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_a_recipe_on_a_reference_model(tmp_path, capsys):
    out = tmp_path / "r"
    over = tmp_path / "over.toml"
    over.write_text('[steps.1]\nobserver = "minmax"\n')         # an override merged into the example
    assert main(["compress", "--model", "digits_mlp", "--baseline-epochs", "2", "--out", str(out),
                 "--recipe", str(EXAMPLES / "w8a8_static.toml"), "--config", str(over), "--calibration", "100"]) == 0
    printed = capsys.readouterr().out
    assert "step 1 (quantize_static)" in printed and "run.json" in printed
    rec = _record(out)
    assert rec["format"] == "refcomp.recipe_run" and rec["model"]["kind"] == "reference"
    assert rec["recipe"]["steps"] == [{"name": "quantize_static", "observer": "minmax", "integer_only": False,
                                       "requantize": "float"}]
    assert rec["steps"][0]["report"]["activation_qparams"]                   # the function's own report
    model = load_model(out / rec["final"]["file"])
    _, test_set = datasets.load_split("digits", seed=0)
    assert evaluate(model, test_set)["accuracy"] == pytest.approx(rec["final"]["accuracy"])
    assert rec["final"]["file_bytes"] == (out / "model.rcm").stat().st_size
    assert (out / "baseline.safetensors").is_file() and "| 1 | quantize_static |" in (out / "report.md").read_text()
    assert "--recipe" in rec["command"] and "--config" in rec["command"]


def test_a_recipe_on_a_model_file_and_on_an_onnx_file(tmp_path, capsys):
    src = save_model(models.digits_mlp(0), tmp_path / "m.safetensors")
    assert main(["compress", "--model-file", str(src), "--data", "digits", "--out", str(tmp_path / "a"),
                 "--recipe", str(EXAMPLES / "gptq_w4.toml"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    rec = _record(tmp_path / "a")
    assert rec["model"] == {"kind": "model_file", "path": str(src), "data": "digits"} and rec["final"]["ratio"] > 4
    rc_onnx = pytest.importorskip("refcomp.onnx")
    onnx_file = tmp_path / "m.onnx"
    rc_onnx.export(models.digits_mlp(0), onnx_file, style="float", input_shape=(1, 64))
    assert main(["compress", "--onnx", str(onnx_file), "--data", "digits", "--out", str(tmp_path / "b"),
                 "--recipe", str(EXAMPLES / "w8a8_dynamic.toml"), "--quiet"]) == 0
    assert _record(tmp_path / "b")["model"]["kind"] == "onnx"
    assert main(["compress", "--onnx", str(onnx_file), "--data", "digits", "--out", str(tmp_path / "c"),
                 "--recipe", str(EXAMPLES / "w8a8_static.toml"), "--quiet"]) == 0          # any graph
    assert _record(tmp_path / "c")["final"]["ratio"] > 3


BAD = {
    "unknown key": ('[[step]]\nname = "quantize_static"\nobservr = "mse"\n',
                    r"step 1 \(quantize_static\): observr: expected a key among"),
    "unknown step": ('[[step]]\nname = "quantize_dynamic"\n[[step]]\nname = "prune_magic"\n',
                     r"step 2: name: expected one of"),
    "range": ('[[step]]\nname = "prune"\nsparsity = 2.0\n', r"step 1 \(prune\): sparsity: expected a real number"),
    "missing key": ('[[step]]\nname = "lowrank"\n', r"step 1 \(lowrank\): ranks: .*required"),
    "not TOML": ("[[step]\n", "not valid TOML"),
}


@pytest.mark.parametrize("route", ["model", "model-file", "minilm"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_recipe_is_one_error_line_before_any_work(case, route, tmp_path, capsys, monkeypatch):
    import refcomp.cli.compress as compress_cli
    import refcomp.cli.compress_recipe as recipe_cli

    def no_data(*a, **k):
        raise AssertionError("data loaded before the recipe was checked")

    monkeypatch.setattr(compress_cli, "load_split", no_data)
    monkeypatch.setattr(recipe_cli, "load_split", no_data)
    text, message = BAD[case]
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    src = {"model": ["--model", "digits_mlp"], "minilm": ["--model", "minilm"],
           "model-file": ["--model-file", str(save_model(models.digits_mlp(0), tmp_path / "m.safetensors"))]}[route]
    assert main(["compress", *src, "--out", str(tmp_path / "r"), "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("refcomp compress: error: ") and "Traceback" not in err[0]
    assert re.search(message, err[0]), err[0]
    assert err[1].startswith("refcomp compress: hint: ")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "w9a9"], "or a recipe file"),
    (["--model-file", "{tmp}/m.safetensors"], "--model-file: expected --recipe FILE"),
    (["--recipe", "{ex}/qat.toml", "--sensitivity"], "--sensitivity: expected not with --recipe FILE"),
    (["--recipe", "{ex}/qat.toml", "--calibration", "0"], "--calibration: expected an int >= 1"),
    (["--model", "minilm", "--recipe", "{ex}/qat.toml"],
     "step 1 (qat): expected a route with calibration inputs and training data (x, y), got --model minilm"),
])
def test_recipe_flags_are_checked(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, ex=EXAMPLES) for a in argv]
    args = ["compress", "--model", "digits_mlp"] if "--model" not in argv else ["compress"]
    assert main([*args, *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "minilm" in argv:
        assert "hint: --model minilm has no training or test data" in err
    assert not (tmp_path / "r").exists()


def test_minilm_route_refuses_a_golden_folder_without_golden_npz(tmp_path, capsys):
    assert main(["compress", "--model", "minilm", "--recipe", str(EXAMPLES / "minilm_int8.toml"),
                 "--golden", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "--golden: expected a folder holding golden.npz" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_named_recipe_wins_over_a_file_of_that_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w8a8-dynamic").write_text("not a recipe\n")
    onnx = pytest.importorskip("refcomp.onnx")
    onnx.export(models.digits_mlp(0), tmp_path / "m.onnx", style="float", input_shape=(1, 64))
    assert main(["compress", "--onnx", "m.onnx", "--data", "digits", "--recipe", "w8a8-dynamic", "--out", "r",
                 "--quiet"]) == 0
    assert (tmp_path / "r" / "model.rcm").is_file() and not (tmp_path / "r" / "run.json").exists()


def test_a_recipe_run_writes_a_page_that_chromium_shows(tmp_path, capsys):
    """The Deep Compression example on a model file: report.html with the sizes, the weights under
    their centroids and one stage per step, loaded in Chromium without an error."""
    pytest.importorskip("matplotlib")
    from refcomp.report import load_record
    from tests._support.browser import open_page

    src = save_model(models.digits_mlp(0), tmp_path / "m.safetensors")
    out = tmp_path / "r"
    assert main(["compress", "--model-file", str(src), "--data", "digits", "--out", str(out),
                 "--recipe", str(EXAMPLES / "deep_compression.toml"), "--quiet"]) == 0
    page = load_record(out / "record.json")
    assert [s["name"] for s in page["stages"]] == ["baseline", "1. prune_gradual", "2. cluster",
                                                   "3. finetune_centroids", "4. huffman"]
    assert {w["grid_kind"] for w in page["weights"]} == {"centroids"}
    assert all(len(w["grid"]) <= 32 for w in page["weights"])                  # 5-bit sharing
    assert {entry["name"] for entry in page["layers"]} == {"fc1", "fc2"}
    seen = open_page(out / "report.html", tmp_path / "recipe.png")
    print("screenshot:", tmp_path / "recipe.png")
    assert seen["console_errors"] == [] and seen["page_errors"] == [] and seen["requests"] == []
    assert len(seen["figures"]) == 3 and all(w > 200 and h > 100 for _, w, h in seen["figures"]), seen["figures"]
