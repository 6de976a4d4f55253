"""`refcomp embed` and `refcomp compress --model minilm`: files out, scores, and mistakes refused before any work."""

import json

import numpy as np
import pytest

from refcomp.cli import main


@pytest.fixture
def sentences(tmp_path, minilm_golden, minilm_model):
    p = tmp_path / "s.txt"
    p.write_text("\n".join(minilm_golden["sentences"][:12]) + "\n\n", encoding="utf-8")
    np.save(tmp_path / "ref.npy", minilm_golden["embeddings_unpadded"][:12])
    return p


def test_embed_writes_the_embeddings_and_scores_them(sentences, tmp_path, capsys):
    out = tmp_path / "e.npy"
    assert main(["embed", str(sentences), "--out", str(out), "--compare", str(tmp_path / "ref.npy")]) == 0
    e = np.load(out, allow_pickle=False)
    assert e.shape == (12, 384) and e.dtype == np.float32
    assert "cosine mean 1.00000" in capsys.readouterr().out


def test_compress_then_embed_the_model_file(sentences, tmp_path, capsys, minilm_golden):
    out = tmp_path / "r"
    assert main(["compress", "--model", "minilm", "--recipe", "w8a8-dynamic-per-token-int8-emb", "--out", str(out),
                 "--golden", str(tmp_path / "none")]) == 2          # no golden.npz there: refused first
    assert not (out / "model.rcm").exists()
    small = tmp_path / "golden"                                     # the first 32 golden sentences: quick
    small.mkdir()
    np.savez(small / "golden.npz", **{k: minilm_golden[k][:32] for k in ("input_ids", "attention_mask", "embeddings")})
    assert main(["compress", "--model", "minilm", "--recipe", "w8a8-dynamic-per-token-int8-emb", "--out", str(out),
                 "--export", str(out / "m.onnx"), "--golden", str(small)]) == 0
    printed = capsys.readouterr().out
    assert "on the 32 golden sentences" in printed and f"report: {out / 'report.html'}" in printed
    assert (out / "model.rcm").stat().st_size < 25e6 and (out / "m.onnx").is_file()
    assert main(["embed", str(sentences), "--model-file", str(out / "model.rcm"), "--out", str(tmp_path / "q.npy"),
                 "--compare", str(tmp_path / "ref.npy")]) == 0
    cos = float(capsys.readouterr().out.split("cosine mean ")[1].split(",")[0])
    assert cos >= 0.998
    # refcomp evaluate scores the model file the same way (its ONNX export, with int8 embeddings,
    # is one refcomp.onnx.load does not read: a one-line error, not tested here)
    assert main(["evaluate", str(out / "model.rcm"), "--golden", str(small), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cos_mean"] >= 0.998


@pytest.mark.parametrize("argv, words", [
    (["--out", "{tmp}/e.txt"], "--out"),
    (["--out", "{tmp}/missing/e.npy"], "--out"),
    (["--out", "{tmp}/e.npy", "--batch", "0"], "--batch"),
    (["--out", "{tmp}/e.npy", "--model-file", "{tmp}/nope.rcm"], "--model-file"),
    (["--out", "{tmp}/e.npy", "--compare", "{tmp}/s.txt"], "--compare"),
    (["--out", "{tmp}/e.npy", "--model-file", "{tmp}/s.txt", "--recipe", "w8a8-dynamic"], "--recipe"),
    (["--out", "{tmp}/e.npy", "--recipe", "w8a8-static"], "--calibration-text"),
    (["--out", "{tmp}/e.npy", "--calibration-text", "{tmp}/s.txt"], "--calibration-text"),
])
def test_embed_mistakes_are_refused_without_a_traceback(sentences, tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["embed", str(sentences), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_embed_refuses_an_empty_or_missing_sentence_file(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert main(["embed", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e.npy")]) == 2
    assert main(["embed", str(tmp_path / "none.txt"), "--out", str(tmp_path / "e.npy")]) == 2
    assert capsys.readouterr().err.count("sentences") == 2


def test_embed_of_a_few_sentences_scores_without_nn10(tmp_path, minilm_golden, minilm_model, capsys):
    """NN@10 needs more than 10 sentences: with 3 the cosine is printed alone, and nothing fails."""
    (tmp_path / "s3.txt").write_text("\n".join(minilm_golden["sentences"][:3]), encoding="utf-8")
    np.save(tmp_path / "r3.npy", minilm_golden["embeddings_unpadded"][:3])
    assert main(["embed", str(tmp_path / "s3.txt"), "--out", str(tmp_path / "e3.npy"),
                 "--compare", str(tmp_path / "r3.npy")]) == 0
    out = capsys.readouterr().out
    assert "cosine mean 1.00000" in out and "NN@10" not in out


@pytest.mark.parametrize("argv, words", [
    (["--recipe", "w8a8-static"], "--calibration-text"),
    (["--recipe", "fp32", "--calibration-text", "{tmp}/s.txt"], "--calibration-text"),
    (["--recipe", "w8a8-dynamic", "--export", "{tmp}/m.txt"], "--export"),
    (["--recipe", "w8a8-dynamic", "--data", "digits"], "--data"),
])
def test_compress_minilm_mistakes_are_refused_before_any_work(sentences, tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["compress", "--model", "minilm", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
