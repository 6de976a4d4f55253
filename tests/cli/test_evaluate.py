"""`refcomp evaluate`: a classifier's test accuracy, an encoder's cosine, and the mistakes refused."""

import json

import numpy as np
import pytest

from refcomp import datasets, models
from refcomp.cli import main
from refcomp.io import save_model
from refcomp.nn import evaluate, train

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    train_set, _ = datasets.load_split("digits", seed=0)
    m = models.digits_mlp(0)
    train(m, train_set, epochs=2, progress=False)
    save_model(m, d / "m.safetensors")
    return d / "m.safetensors", m


def _json(capsys, args):
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_accuracy_on_the_held_out_split(classifier, capsys):
    path, m = classifier
    r = _json(capsys, [str(path), "--data", "digits"])
    want = evaluate(m, datasets.load_split("digits", seed=0)[1])
    assert set(r) == {"model", "task", "data", "split_seed", "samples", "accuracy", "loss"}
    assert r["task"] == "classification" and r["samples"] == 360 and r["split_seed"] == 0
    assert r["accuracy"] == want["accuracy"] and r["loss"] == pytest.approx(want["loss"])
    other = _json(capsys, [str(path), "--data", "digits", "--seed", "1", "--samples", "50"])
    want = evaluate(m, tuple(a[:50] for a in datasets.load_split("digits", seed=1)[1]))
    assert other["samples"] == 50 and other["accuracy"] == want["accuracy"]
    assert main(["evaluate", str(path), "--data", "digits"]) == 0
    assert capsys.readouterr().out == f"{path}: test accuracy {100 * r['accuracy']:.2f} % on 360 digits samples " \
                                      f"(loss {r['loss']:.4f})\n"


def test_an_onnx_classifier(classifier, tmp_path, capsys):
    pytest.importorskip("onnx")
    from refcomp import onnx as rc_onnx

    path, m = classifier
    rc_onnx.export(m, tmp_path / "m.onnx", style="float", input_shape=(1, 64))
    a = _json(capsys, [str(path), "--data", "digits"])
    b = _json(capsys, [str(tmp_path / "m.onnx"), "--data", "digits"])
    assert b["accuracy"] == a["accuracy"]


def test_an_encoder_against_its_golden_set(tmp_path, capsys, minilm_golden, minilm_model):
    small = tmp_path / "golden"
    small.mkdir()
    np.savez(small / "golden.npz", **{k: minilm_golden[k][:12] for k in ("input_ids", "attention_mask", "embeddings")})
    save_model(minilm_model, tmp_path / "fp32.rcm", format="compact")
    r = _json(capsys, [str(tmp_path / "fp32.rcm"), "--golden", str(small)])
    assert r["task"] == "embedding" and r["samples"] == 12 and set(r) >= {"cos_mean", "cos_min", "nn10"}
    assert r["cos_min"] > 0.9999                          # the fp32 model against its own fp32 reference
    assert main(["evaluate", str(tmp_path / "fp32.rcm"), "--golden", str(small), "--samples", "4"]) == 0
    assert "on the 4 golden sentences, against fp32: cosine mean 1.0000" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "fp32.rcm"), "--data", "digits"]) == 2
    assert main(["evaluate", str(tmp_path / "fp32.rcm"), "--golden", str(tmp_path)]) == 2
    assert "golden.npz" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["{m}"], "--data: expected digits or mnist"),
    (["{m}", "--data", "digits", "--golden", "{tmp}"], "--golden: expected no --golden for a classifier"),
    (["{m}", "--data", "digits", "--samples", "0"], "--samples"),
    (["{m}", "--data", "digits", "--seed", "-1"], "--seed"),
    (["{tmp}/missing.safetensors", "--data", "digits"], "MODEL"),
    (["{tmp}", "--data", "digits"], "MODEL"),
    (["{tmp}/junk.rcm", "--data", "digits"], "junk.rcm"),
])
def test_mistakes_are_one_error_line(classifier, tmp_path, capsys, argv, words):
    (tmp_path / "junk.rcm").write_bytes(b"RCM\x01" + b"\x00" * 40)
    args = [a.format(m=classifier[0], tmp=tmp_path) for a in argv]
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "hint:" in err and "Traceback" not in err and words in err


def test_data_the_model_does_not_take(classifier, capsys, mnist_dir):
    assert main(["evaluate", str(classifier[0]), "--data", "mnist", "--mnist-dir", str(mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert "--data: expected inputs the model takes, got mnist inputs of shape (1, 28, 28)" in err
