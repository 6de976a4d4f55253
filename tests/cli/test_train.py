"""`refcomp train` on digits."""


def test_cli_train_digits(tmp_path, capsys):
    from refcomp.cli import main

    out = tmp_path / "d.safetensors"
    assert main(["train", "--model", "digits_mlp", "--epochs", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" lr ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"] and out.exists()
    assert "test accuracy" in lines[2] and lines[3] == f"saved {out}"
    assert main(["train", "--model", "digits_mlp", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr() == ("", "")                  # --quiet: nothing but errors


def test_cli_train_checks_out_before_training(tmp_path, capsys, monkeypatch):
    """A wrong --out is refused before the data is loaded and the model trained, not after."""
    import refcomp.cli.train as cli_train
    from refcomp.cli import main

    calls = []
    (tmp_path / "d.safetensors").mkdir()
    monkeypatch.setattr(cli_train, "train", lambda *a, **k: calls.append(1))
    for out, why in ((tmp_path / "missing" / "m.safetensors", "existing folder"),
                     (tmp_path / "m.pt", "ending in"),
                     (tmp_path / "d.safetensors", "not a folder")):
        assert main(["train", "--model", "digits_mlp", "--epochs", "1", "--out", str(out)]) == 2
        assert why in capsys.readouterr().err
    assert calls == [] and not (tmp_path / "missing").exists()
