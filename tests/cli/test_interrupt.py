"""Ctrl-C: one line ``refcomp CMD: interrupted``, exit status 130, no partial output file."""

import os
import signal
import subprocess
import sys

import pytest

from refcomp.cli import main

pytest.importorskip("sklearn")


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_sigint_during_training_is_one_line_and_exit_130(tmp_path):
    out = tmp_path / "m.safetensors"
    # SIGINT may be ignored by whoever started the tests (a background job): the child gets the default back
    proc = subprocess.Popen([sys.executable, "-m", "refcomp", "train", "--model", "digits_mlp", "--epochs", "100000",
                             "--out", str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()                         # the first epoch's line: training is under way
        assert "epoch" in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err == "refcomp train: interrupted\n"
    assert os.listdir(tmp_path) == []                          # no model file, no temporary file


def test_ctrl_c_while_the_file_is_written_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    """The worst moment: the bytes are half on disk. The temporary file goes, the target never appears."""
    import refcomp.io.atomic as atomic

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    assert main(["train", "--model", "digits_mlp", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "m.safetensors")]) == 130
    assert capsys.readouterr().err == "refcomp train: interrupted\n"
    assert os.listdir(tmp_path) == []
