"""The demo: runs on its embedded default, prints the tables, and its numbers say what they should."""

import json

import numpy as np
import pytest

from refcomp.cli import main
from refcomp.cli.demo import run_demo, sqnr_db


@pytest.fixture(scope="module")
def result():
    return run_demo(seed=0, out_features=16, in_features=64, batch=64)


def test_rows_and_expected_orderings(result):
    w = {r["scheme"]: r for r in result["weights"]}
    assert len(w) == 10
    # per-channel scales handle the outliers better than one scale for the tensor
    assert w["int8 per-channel symmetric"]["sqnr_db"] > w["int8 per-tensor symmetric"]["sqnr_db"]
    # 8 bits beat 4 bits; int8 is ~4x smaller than float32, int4 ~7-8x
    assert w["int8 per-channel symmetric"]["sqnr_db"] > w["int4 per-channel symmetric"]["sqnr_db"] + 15
    assert 3.5 < w["int8 per-tensor symmetric"]["ratio"] <= 4.0
    assert 6.0 < w["int4 per-channel symmetric"]["ratio"] <= 8.0
    for r in result["weights"]:
        assert r["max_abs_err"] >= r["mean_abs_err"] > 0
    assert {r["observer"] for r in result["activations"]} >= {"min-max", "MSE search", "entropy (KL, TensorRT)"}
    # the integer W8A8 path equals its float simulation up to float32 rounding
    for r in result["layer"]:
        assert r["int_vs_fake_quant"] < 1e-4
        assert r["sqnr_db"] > 15


def test_sqnr():
    x = np.array([3.0, 4.0])
    assert sqnr_db(x, x) == float("inf")
    assert sqnr_db(x, x + np.array([0.3, 0.4])) == pytest.approx(20.0)


def test_cli_prints_tables(capsys):
    assert main(["demo", "--layer-only", "--out-features", "8", "--in-features", "32", "--batch", "32", "--dtype", "int4"]) == 0
    out = capsys.readouterr().out
    assert "int4 per-channel symmetric" in out and "SQNR dB" in out and "int8 per-tensor" not in out


def test_cli_bits_filter(capsys):
    assert main(["demo", "--layer-only", "--bits", "4", "--out-features", "8", "--in-features", "32", "--batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "int4 block 32" in out and "float4_e2m1fn" in out and "float8" not in out


def test_cli_json(capsys):
    assert main(["demo", "--layer-only", "--json", "--out-features", "8", "--in-features", "32", "--batch", "32"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"config", "weights", "activations", "layer"}


def test_cli_bad_option(capsys):
    assert main(["demo", "--dtype", "int7"]) == 2
    assert "--dtype" in capsys.readouterr().err


def test_model_part_compresses_a_trained_network(capsys):
    """The whole-model half: W8A8 integer-only equals its simulation; Deep Compression shrinks >= 8x."""
    assert main(["demo", "--json", "--out-features", "8", "--in-features", "32", "--batch", "32"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["method"].split(" (")[0].split(",")[0]: r for r in data["model"]["rows"]}
    assert rows["float32"]["accuracy"] > 0.95
    assert rows["W8A8 PTQ"]["note"].startswith("integer vs fake-quant simulation: 0 of")
    assert rows["W8A8 PTQ"]["accuracy"] >= rows["float32"]["accuracy"] - 0.01
    assert 3.0 < rows["W8A8 PTQ"]["ratio"] <= 4.0
    assert rows["Deep Compression"]["ratio"] > 8
    assert rows["Deep Compression"]["accuracy"] >= rows["float32"]["accuracy"] - 0.02


def test_cli_bad_epochs():
    assert main(["demo", "--epochs", "0"]) == 2
