"""`refcomp compress` end to end on scikit-learn's digits (a few seconds), and its bad input."""

import json

import pytest

from refcomp.cli import main

pytest.importorskip("sklearn")

TOML = """
prune_rounds = 2
prune_epochs = 2
finetune_epochs = 1
layout = "rows"
[sparsity]
fc1 = 0.75
fc2 = 0.5
[weight_bits]
fc1 = 4
fc2 = 4
[index_bits]
fc1 = 4
fc2 = 3
"""


def test_compress_cli_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    out = tmp_path / "report"
    args = ["compress", "--model", "digits_mlp", "--out", str(out), "--config", str(cfg), "--baseline-epochs", "8",
            "--sensitivity"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "dense baseline trained" in printed
    report = (out / "report.md").read_text()
    assert "| **total** | 9,472 | 28.4% |" in report          # kept (0.25·8192 + 0.5·1280) / 9472
    res = json.loads((out / "results.json").read_text())
    acc = res["accuracy"]
    assert set(acc) == {"dense", "pruned", "clustered", "compressed", "compressed_csr", "from_file"}
    assert acc["compressed"] == acc["compressed_csr"] == acc["from_file"] and acc["compressed"] > 0.85
    # the file holds what the table counts, plus its header and 32-bit row pointers, plus the biases
    assert res["file_bytes"] == (out / "model.rcm").stat().st_size
    assert res["weights_pqh_bytes"] + res["bias_bytes"] < res["file_bytes"] < res["weights_pqh_bytes"] + 3000
    assert sum(res["file_parts"].values()) == res["file_bytes"]
    assert "compressed model:" in printed and "File `model.rcm`" in report
    # the compressed model is a model file: load_model runs it without being given the model
    from refcomp import datasets
    from refcomp.formats import RelativeIndexCSR
    from refcomp.io import load_model
    from refcomp.nn.train import evaluate

    back = load_model(out / "model.rcm")
    assert isinstance(back["fc1"].weight, RelativeIndexCSR) and isinstance(back["fc2"].weight, RelativeIndexCSR)
    assert evaluate(back, datasets.load_split("digits", seed=0)[1])["accuracy"] == acc["from_file"]
    assert res["config"]["index_bits"] == {"fc1": 4, "fc2": 3} and res["config"]["layout"] == "rows"
    assert res["weights_ratio"] == pytest.approx(9472 * 32 / (8 * res["weights_pqh_bytes"]), rel=1e-3)
    assert res["table"][-1]["row_pointer_bits"] > 0
    assert "## Pruning sensitivity" in report and "| fc2 |" in report
    if pytest.importorskip("matplotlib"):
        assert (out / "sizes.png").stat().st_size > 1000
    # the run record and its page: the table's bytes, the centroids, the sensitivity, the command
    from refcomp.report import load_record

    record = load_record(out / "record.json")
    assert [(la["name"], la["bytes_before"]) for la in record["layers"]] == [("fc1", 32768), ("fc2", 5120)]
    assert sum(la["bytes_after"] for la in record["layers"]) == res["weights_pqh_bytes"]
    assert [len(w["grid"]) for w in record["weights"]] == [16, 16] and set(record["sensitivity"]) == {"fc1", "fc2"}
    assert record["stages"][-1] == {"name": "Huffman-coded (P+Q+H)", "bytes": res["weights_pqh_bytes"],
                                    "metric": acc["from_file"]}
    assert record["provenance"]["command"].startswith("refcomp compress --model digits_mlp --data digits")
    assert record["provenance"]["split"] == "seed-0 split: 1,437 train / 360 test"
    html = (out / "report.html").read_text()
    assert html.count("<figure><svg") == 4 and "[report.html](report.html)" in report
    # second run: the cached baseline is loaded, not retrained; the sweep in worker processes gives the same table
    assert main(args + ["--quiet", "--executor", "process"]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads((out / "results.json").read_text())["seconds"].get("baseline_load") is not None
    again = (out / "report.md").read_text()
    assert _section(again, "## Pruning sensitivity") == _section(report, "## Pruning sensitivity")
    assert "--sensitivity --executor process" in again


def _section(markdown: str, heading: str) -> str:
    return markdown.split(heading, 1)[1].split("\n## ", 1)[0]


def test_compress_cli_executor_mistakes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    args = ["compress", "--model", "digits_mlp", "--out", str(out)]
    assert main(args + ["--executor", "process"]) == 2
    assert "--executor: expected --sensitivity" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "dask.distributed", None)   # dask not installed
    assert main(args + ["--sensitivity", "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert "refcomp[dask]" in err and "hint: pip install 'refcomp[dask]'" in err and not out.exists()


@pytest.mark.parametrize("toml, message", [
    ("prune_round = 2\n", "config: expected keys among"),
    ("[sparsity]\nfc1 = 1.0\nfc2 = 0.5\n", r"sparsity\['fc1'\]: expected a real number in \[0, 1\)"),
    ("[weight_bits]\nfc1 = 9\nfc2 = 4\n", r"weight_bits\['fc1'\]: expected an integer in \[1, 8\]"),
    # the override's table is named, not a preset table the user did not write
    ("[sparsity]\nfc1 = 0.5\nfc9 = 0.5\n", r"sparsity\['fc9'\]: expected a layer of the preset.*"
                                         "missing from weight_bits and index_bits"),
    ("prune_rounds = [\n", "not valid TOML"),
    ('criterion = "random"\n', "criterion: expected one of"),
])
def test_compress_cli_bad_config(tmp_path, capsys, toml, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["compress", "--model", "digits_mlp", "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "refcomp compress: error:" in err
    import re
    assert re.search(message, err), err


def _metadata(path):
    from refcomp.cli.compress import _cached_metadata

    return _cached_metadata(path)


def test_the_cached_baseline_is_keyed_by_what_made_it(tmp_path, capsys):
    """<out>/baseline.safetensors is reused only if model, data, split, epochs, seed, training settings and
    refcomp version all match; otherwise the command is refused and the cache left as it was."""
    from refcomp import __version__, models
    from refcomp.io import save_model

    cfg = tmp_path / "c.toml"
    cfg.write_text("prune_rounds = 1\nprune_epochs = 1\nfinetune_epochs = 1\n")
    out = tmp_path / "r"
    args = ["compress", "--model", "digits_mlp", "--out", str(out), "--config", str(cfg), "--quiet"]
    assert main(args + ["--baseline-epochs", "1"]) == 0
    cache = out / "baseline.safetensors"
    meta = _metadata(cache)
    assert {k: meta[k] for k in ("model", "data", "epochs", "seed", "refcomp_version")} == {
        "model": "digits_mlp", "data": "digits", "epochs": 1, "seed": 0, "refcomp_version": __version__}
    assert meta["split"] == {"seed": 0, "train": 1437, "test": 360}
    saved = cache.read_bytes()
    capsys.readouterr()
    for extra, differs in ((["--baseline-epochs", "2"], "epochs 1 in the file, 2 here"),
                           (["--baseline-epochs", "1", "--seed", "1"], "seed 0 in the file, 1 here")):
        assert main(args + extra) == 2
        err = capsys.readouterr().err
        assert "cached baseline" in err and differs in err and f"delete {cache}" in err
        assert cache.read_bytes() == saved                    # refused, not retrained over
    assert main(args + ["--baseline-epochs", "1"]) == 0     # the same command reuses it
    # a cache of another model, and one without a key (written before keys existed), are refused too
    save_model(models.lenet_300_100(0), cache, metadata={**meta, "model": "lenet_300_100"})
    assert main(args + ["--baseline-epochs", "1"]) == 2
    assert "model 'lenet_300_100' in the file, 'digits_mlp' here" in capsys.readouterr().err
    save_model(models.digits_mlp(0), cache, metadata={"model": "digits_mlp", "data": "digits", "epochs": 1})
    assert main(args + ["--baseline-epochs", "1"]) == 2
    assert "refcomp_version '(missing)' in the file" in capsys.readouterr().err


def _session_size(sid: int) -> int:
    """Processes of session ``sid`` (Linux /proc): the command, its forkserver and the pool's workers."""
    import os

    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[3]) == sid:      # field 6: the session id
            n += 1
    return n


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux /proc")
def test_ctrl_c_during_a_process_sweep_is_one_line(tmp_path):
    """A terminal's Ctrl-C goes to every process of the group: the workers stay silent, the command exits 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    args = ["--model", "digits_mlp", "--out", str(tmp_path / "r"), "--config", str(cfg), "--sensitivity",
            "--baseline-epochs", "2"]
    # the baseline first, so that the interrupted run goes straight to the sweep
    assert main(["compress", *args, "--quiet"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "refcomp", "compress", *args, "--executor", "process"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # as from a terminal: a suite started in the background inherits SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while _session_size(proc.pid) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)                     # until the pool's workers exist (command, tracker, server, workers)
        assert proc.poll() is None, "the command ended before its workers started"
        os.killpg(proc.pid, signal.SIGINT)       # what a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and err == "refcomp compress: interrupted\n"
