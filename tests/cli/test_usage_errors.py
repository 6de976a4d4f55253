"""Every user mistake is an ``error:`` line, a hint and exit status 2, found before any work; never a traceback.

The table runs each bad invocation in-process through ``refcomp.cli.main``: an
exception escaping ``main`` (what would be a traceback) fails the test, and so
does a file or folder the failed command left behind.
"""

import errno
import os

import pytest

from refcomp import models
from refcomp.cli import main
from refcomp.io import save_model

pytest.importorskip("sklearn")

TOML = "prune_rounds = 1\nprune_epochs = 1\nfinetune_epochs = 1\n"

# (argv with {placeholders} filled from the fixture below, a word the error line must name)
BAD = {
    "train --out under a file": (["train", "--model", "digits_mlp", "--out", "{file}/m.safetensors"], "--out"),
    "train --out in a missing folder": (["train", "--model", "digits_mlp", "--out", "{tmp}/no/m.safetensors"],
                                        "mkdir -p"),
    "train --out wrong suffix": (["train", "--model", "digits_mlp", "--out", "{tmp}/m.txt"], ".safetensors"),
    "train --out is a folder": (["train", "--model", "digits_mlp", "--out", "{dir_st}"], "not a folder"),
    "train missing --mnist-dir": (["train", "--model", "lenet5", "--mnist-dir", "{tmp}/none"], "--mnist-dir"),
    "train negative seed": (["train", "--model", "digits_mlp", "--seed", "-1"], "--seed"),
    "train momentum 1.5": (["train", "--model", "digits_mlp", "--momentum", "1.5"], "--momentum"),
    "train unknown model": (["train", "--model", "resnet50"], "invalid choice"),
    "compress --out is a file": (["compress", "--model", "digits_mlp", "--out", "{file}"], "--out"),
    "compress --out under a file": (["compress", "--model", "digits_mlp", "--out", "{file}/r"], "is a file"),
    "compress --baseline a folder": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                      "--baseline", "{dir_st}"], "--baseline"),
    "compress --baseline bad header": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                        "--baseline", "{junk_st}"], "junk.safetensors"),
    "compress --baseline missing": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                     "--baseline", "{tmp}/none.safetensors"], "--baseline"),
    "compress --baseline another model": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                           "--baseline", "{lenet_st}"], "--baseline"),
    "compress --baseline with --baseline-epochs": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                                    "--baseline", "{digits_st}", "--baseline-epochs", "3"],
                                                   "--baseline-epochs"),
    "compress missing --mnist-dir": (["compress", "--model", "lenet5", "--out", "{tmp}/r",
                                      "--mnist-dir", "{tmp}/none"], "--mnist-dir"),
    "compress --baseline-epochs 0": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r",
                                      "--baseline-epochs", "0"], "--baseline-epochs"),
    "compress negative seed": (["compress", "--model", "digits_mlp", "--out", "{tmp}/r", "--seed", "-2"], "--seed"),
    "compress cached baseline is a folder": (["compress", "--model", "digits_mlp", "--out", "{cache_dir}"],
                                             "baseline.safetensors"),
    "compress cached baseline bad header": (["compress", "--model", "digits_mlp", "--out", "{cache_junk}"],
                                            "baseline.safetensors"),
    "compress --export wrong suffix": (["compress", "--onnx", "{junk_onnx}", "--recipe", "w8a8-dynamic",
                                        "--out", "{tmp}/r", "--export", "{tmp}/q.txt"], "--export"),
    "compress --export a folder": (["compress", "--onnx", "{junk_onnx}", "--recipe", "w8a8-dynamic",
                                    "--out", "{tmp}/r", "--export", "{dir_onnx}"], "--export"),
    "compress --onnx --out under a file": (["compress", "--onnx", "{junk_onnx}", "--recipe", "w8a8-dynamic",
                                            "--out", "{file}/r"], "--out"),
    "compress --onnx --sensitivity": (["compress", "--onnx", "{junk_onnx}", "--recipe", "w8a8-dynamic",
                                       "--out", "{tmp}/r", "--sensitivity"], "--sensitivity"),
    "compress --model minilm --out a file": (["compress", "--model", "minilm", "--recipe", "fp32",
                                              "--out", "{file}"], "--out"),
    "demo --bits 3": (["demo", "--bits", "3"], "--bits"),
    "demo --dtype int16": (["demo", "--dtype", "int16"], "--dtype"),
    "demo --dtype int8 --bits 4": (["demo", "--dtype", "int8", "--bits", "4"], "--dtype / --bits"),
    "demo negative seed": (["demo", "--layer-only", "--seed", "-1"], "--seed"),
    "diff a folder": (["diff", "{dir_st}", "{digits_st}", "--data", "digits"], "A:"),
    "diff bad header": (["diff", "{digits_st}", "{junk_st}", "--data", "digits"], "junk.safetensors"),
    "diff missing --mnist-dir": (["diff", "{digits_st}", "{digits_st}", "--data", "mnist",
                                  "--mnist-dir", "{tmp}/none"], "--mnist-dir"),
    "embed --out is a folder": (["embed", "{text}", "--out", "{dir_npy}"], "--out"),
    "embed --out under a file": (["embed", "{text}", "--out", "{file}/e.npy"], "--out"),
    "bench --threads 0": (["bench", "--threads", "0"], "--threads"),
    "bench --output under a file": (["bench", "--output", "{file}/perf.md"], "--output"),
    "bench --output wrong suffix": (["bench", "--output", "{tmp}/perf.txt"], "--output"),
    "bench --which threads without markers": (["bench", "--which", "threads", "--output", "{md}"], "two markers"),
    "unknown command": (["frobnicate"], "invalid choice"),
}


@pytest.fixture
def places(tmp_path):
    """Files and folders the bad invocations point at."""
    (tmp_path / "file").write_text("a plain file\n")
    (tmp_path / "d.safetensors").mkdir()
    (tmp_path / "d.onnx").mkdir()
    (tmp_path / "d.npy").mkdir()
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    (tmp_path / "s.txt").write_text("one sentence\n")
    (tmp_path / "perf.md").write_text("# Performance\n")
    save_model(models.digits_mlp(0), tmp_path / "digits.safetensors")
    save_model(models.lenet_300_100(0), tmp_path / "lenet.safetensors")
    (tmp_path / "cache_dir" / "baseline.safetensors").mkdir(parents=True)
    (tmp_path / "cache_junk").mkdir()
    (tmp_path / "cache_junk" / "baseline.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    return {"tmp": tmp_path, "file": tmp_path / "file", "dir_st": tmp_path / "d.safetensors",
            "dir_onnx": tmp_path / "d.onnx", "dir_npy": tmp_path / "d.npy", "junk_st": tmp_path / "junk.safetensors",
            "junk_onnx": tmp_path / "junk.onnx", "text": tmp_path / "s.txt", "md": tmp_path / "perf.md",
            "digits_st": tmp_path / "digits.safetensors", "lenet_st": tmp_path / "lenet.safetensors",
            "cache_dir": tmp_path / "cache_dir", "cache_junk": tmp_path / "cache_junk"}


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("argv, needle", list(BAD.values()), ids=list(BAD))
def test_a_bad_invocation_is_an_error_line_a_hint_and_exit_2(places, capsys, argv, needle):
    argv = [a.format(**places) for a in argv]
    before = _tree(places["tmp"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    error_lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(error_lines) == 1 and error_lines[0].startswith("refcomp")
    assert needle in err
    assert "Traceback" not in err
    # a hint follows: ours, or argparse's usage line
    assert "hint:" in err or "usage:" in err
    assert _tree(places["tmp"]) == before                # nothing created, not even an empty folder


def test_an_os_error_is_an_error_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    """A full disk (or any OSError) while writing is reported like any other mistake."""
    import refcomp.cli.train as cli_train

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "m.safetensors"))

    monkeypatch.setattr(cli_train, "save_model", full_disk)
    assert main(["train", "--model", "digits_mlp", "--epochs", "1", "--quiet", "--out",
                 str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"refcomp train: error: No space left on device: {tmp_path / 'm.safetensors'}"
    assert err[1].startswith("refcomp train: hint:")


def test_deprecated_model_names_still_work_with_a_warning(capsys):
    """lenet300 / digits were compress-only names: accepted by both commands, mapped to the canonical ones."""
    from refcomp.cli import _common, build_parser

    args = build_parser().parse_args(["compress", "--model", "digits", "--out", "x"])
    assert args.model == "digits_mlp"
    args = build_parser().parse_args(["train", "--model", "lenet300"])
    assert args.model == "lenet_300_100"
    assert capsys.readouterr().err.count("deprecated") == 2
    assert set(_common.MODELS) == set(models.MODELS)


@pytest.mark.parametrize("case", ["train --out under a file", "compress --baseline bad header"])
def test_the_real_command_prints_no_traceback(places, case):
    """The same through `python -m refcomp` (the installed entry point's path): stderr as a user sees it."""
    import subprocess
    import sys

    argv, needle = BAD[case]
    proc = subprocess.run([sys.executable, "-m", "refcomp", *[a.format(**places) for a in argv]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and ": error: " in lines[0] and needle in lines[0] + lines[1] and ": hint: " in lines[1]
