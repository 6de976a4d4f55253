"""`refcomp train` on digits."""


def test_cli_train_digits(tmp_path, capsys):
    from refcomp.cli import main

    out = tmp_path / "d.safetensors"
    assert main(["train", "--model", "digits_mlp", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out and out.exists()
