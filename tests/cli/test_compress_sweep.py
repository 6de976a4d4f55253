"""`refcomp compress --recipe A.toml --recipe B.toml [--grid ...] [--executor ...]`: a recipe sweep writes each
recipe's folder as a single run would, sweep.json and a summary page Chromium shows; every file is checked
before any work (seconds, on digits_mlp)."""

import json
import re
from pathlib import Path

import pytest

from refcomp import datasets, models
from refcomp.cli import main
from refcomp.io import save_model
from refcomp.nn.train import train

pytest.importorskip("sklearn")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DYNAMIC, GPTQ = str(EXAMPLES / "w8a8_dynamic.toml"), str(EXAMPLES / "gptq_w4.toml")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A briefly trained digits_mlp (accuracies worth comparing), as a model file."""
    train_set, _ = datasets.load_split("digits", seed=0)
    model = models.digits_mlp(0)
    train(model, train_set, epochs=3, rng=0, progress=False)
    return str(save_model(model, tmp_path_factory.mktemp("m") / "m.safetensors"))


def _sweep(model_file, out, *extra):
    return main(["compress", "--model-file", model_file, "--data", "digits", "--out", str(out),
                 "--calibration", "100", *extra])


def test_a_sweep_writes_each_recipe_as_a_single_run_and_a_summary_page(model_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from refcomp.report import load_record
    from tests._support.browser import open_page

    out = tmp_path / "s"
    assert _sweep(model_file, out, "--recipe", DYNAMIC, "--recipe", GPTQ) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep of 2 recipes (w8a8-dynamic, gptq-w4) through the serial executor"
    assert [line.split(":")[0] for line in lines[1:3]] == ["w8a8-dynamic", "gptq-w4"]
    assert re.match(r"w8a8-dynamic: test accuracy \d+\.\d\d %, [\d,]+ B \(\d+\.\dx\), ", lines[1]), lines[1]
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["format"] == "refcomp.recipe_sweep" and summary["executor"] == "serial"
    assert [r["name"] for r in summary["recipes"]] == ["w8a8-dynamic", "gptq-w4"]
    for row in summary["recipes"]:
        folder = out / row["folder"]
        assert {p.name for p in folder.iterdir()} == {"model.rcm", "run.json", "report.md", "report.html",
                                                      "record.json"}
        run = json.loads((folder / "run.json").read_text())
        assert run["final"]["accuracy"] == row["accuracy"] and run["final"]["file_bytes"] == row["file_bytes"]
        assert run["baseline"] == summary["baseline"]
    single = tmp_path / "one"                                # the same recipe alone: the same model and record
    assert _sweep(model_file, single, "--recipe", GPTQ, "--quiet") == 0
    alone = json.loads((single / "run.json").read_text())
    swept = json.loads((out / "gptq-w4" / "run.json").read_text())
    assert (swept["final"]["accuracy"], swept["final"]["bytes"]) == (alone["final"]["accuracy"],
                                                                     alone["final"]["bytes"])
    assert (out / "gptq-w4" / "model.rcm").read_bytes() == (single / "model.rcm").read_bytes()
    page = load_record(out / "record.json")
    assert [(s["name"], s["bytes"], s["metric"]) for s in page["stages"]] == [
        ("baseline", summary["baseline"]["bytes"], summary["baseline"]["accuracy"]),
        *((r["name"], r["bytes"], r["accuracy"]) for r in summary["recipes"])]
    seen = open_page(out / "report.html", tmp_path / "sweep.png")
    assert seen["console_errors"] == [] and seen["page_errors"] == [] and seen["requests"] == []
    assert len(seen["figures"]) >= 1 and all(w > 200 and h > 100 for _, w, h in seen["figures"]), seen["figures"]


def test_a_grid_through_worker_processes_with_json(model_file, tmp_path, capsys, monkeypatch):
    import refcomp.cli.compress_sweep as sweep_cli

    asked = []
    real = sweep_cli.run_sweep
    monkeypatch.setattr(sweep_cli, "run_sweep", lambda *a, **k: asked.append(k["executor"]) or real(*a, **k))
    out = tmp_path / "g"
    assert _sweep(model_file, out, "--recipe", GPTQ, "--grid", "quantize_weights.bits=[4, 8]",
                  "--executor", "process", "--json") == 0
    doc = json.loads(capsys.readouterr().out)                       # stdout: the one document
    assert doc["route"] == "recipe_sweep" and doc["executor"] == "process" and asked == ["process"]
    names = [r["name"] for r in doc["recipes"]]
    assert names == ["gptq-w4-bits-4", "gptq-w4-bits-8"] and all((out / n / "model.rcm").is_file() for n in names)
    four, eight = doc["recipes"]
    assert four["bytes"] < eight["bytes"] and four["ratio"] > eight["ratio"]
    assert set(doc) == {"route", "out", "executor", "baseline", "recipes", "record", "report"}
    summary = json.loads(Path(doc["record"]).read_text())
    assert summary["recipes"] == doc["recipes"] and "--grid" in summary["command"]
    assert json.loads((out / names[1] / "run.json").read_text())["recipe"]["steps"][0]["bits"] == 8


@pytest.mark.parametrize("route", ["model", "model-file"])
def test_a_bad_key_in_the_second_recipe_is_one_error_line_before_any_work(route, model_file, tmp_path, capsys,
                                                                          monkeypatch):
    import refcomp.cli.compress as compress_cli
    import refcomp.cli.compress_recipe as recipe_cli

    def no_data(*a, **k):
        raise AssertionError("data loaded before every recipe was checked")

    monkeypatch.setattr(compress_cli, "load_split", no_data)
    monkeypatch.setattr(recipe_cli, "load_split", no_data)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[step]]\nname = "quantize_weights"\nbitz = 4\n')
    src = ["--model", "digits_mlp"] if route == "model" else ["--model-file", model_file, "--data", "digits"]
    assert main(["compress", *src, "--out", str(tmp_path / "r"), "--recipe", DYNAMIC, "--recipe", str(bad),
                 "--executor", "process"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and re.match(r"refcomp compress: error: step 1 \(quantize_weights\): bitz: expected a key "
                                      r"among", err[0]), err
    assert err[1].startswith("refcomp compress: hint: ") and "docs/recipes.md" in err[1]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "{dyn}", "--recipe", "w8a8-dynamic"], "--recipe: expected recipe files (.toml) in a sweep"),
    (["--recipe", "{dyn}", "--recipe", "{dyn}"], "expected recipes of distinct names (each writes --out/NAME/), "
                                                "got 2 recipes named 'w8a8-dynamic'"),
    (["--recipe", "{dyn}", "--executor", "process"], "--executor: expected --sensitivity or a recipe sweep"),
    (["--grid", "1.bits=[4]"], "--grid: expected a --recipe FILE to expand"),
    (["--recipe", "{dyn}", "--recipe", "{gptq}", "--grid", "1.bits=[4]"], "--grid: expected one --recipe"),
    (["--recipe", "{gptq}", "--grid", "bits=[4, 8]"], "--grid: expected STEP.KEY=[V, ...]"),
    (["--recipe", "{gptq}", "--grid", "1.bits=[4, 8"], "not a TOML value"),
    (["--recipe", "{gptq}", "--grid", "1.bits=4"], "--grid: expected STEP.KEY=[V, ...]"),
    (["--recipe", "{gptq}", "--grid", "1.bits=[4, 9]"], "--grid: step 1 (quantize_weights): bits: expected"),
    (["--recipe", "{gptq}", "--grid", "2.bits=[4, 8]"], "--grid: steps.2: expected a step number 1..1"),
    (["--recipe", "{dyn}", "--recipe", "{gptq}", "--sensitivity"], "--sensitivity: expected not with --recipe"),
    (["--recipe", "{dyn}", "--recipe", "{named}"], "a recipe name that can name its folder in --out"),
])
def test_sweep_flags_are_checked_before_any_work(argv, message, tmp_path, capsys):
    named = tmp_path / "odd.toml"
    named.write_text('name = "a/b"\n[[step]]\nname = "quantize_dynamic"\n')
    argv = [a.format(dyn=DYNAMIC, gptq=GPTQ, named=named) for a in argv]
    assert main(["compress", "--model", "digits_mlp", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 2 and "--grid: --grid" not in err, err
    assert not (tmp_path / "r").exists()


def test_a_sweep_on_a_local_dask_cluster_writes_what_the_serial_one_does(model_file, tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    tuned = tmp_path / "tuned.toml"            # one recipe that trains (its seed in the file)
    tuned.write_text('name = "prune-tune"\n[[step]]\nname = "prune"\nsparsity = 0.6\n'
                     '[[step]]\nname = "fine_tune"\nepochs = 1\nrng = 3\n')
    runs = {}
    for executor in ("serial", "dask"):
        out = tmp_path / executor
        assert _sweep(model_file, out, "--recipe", str(tuned), "--recipe", GPTQ, "--executor", executor,
                      "--quiet") == 0
        summary = json.loads((out / "sweep.json").read_text())
        assert summary["executor"] == executor
        runs[executor] = ([(r["name"], r["accuracy"], r["bytes"]) for r in summary["recipes"]],
                          [(out / r["file"]).read_bytes() for r in summary["recipes"]])
    assert runs["dask"] == runs["serial"] and runs["serial"][0][0][0] == "prune-tune"
